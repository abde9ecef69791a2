"""Simulated traffic of a RAG service, minute by minute, and promtool run over scraped series.

What is simulated (numpy, seeded): traffic with a diurnal curve (quiet at 03:00 UTC, peak at 15:00),
weekdays busier than weekends, day-to-day and minute-to-minute noise, for the components search, llm
and total (the whole request); errors as binomial draws around a base ratio, latency as each minute's
mean around a base that rises a little with load, feedback on a share of requests with ~10 %
negative; incidents that change one of them for a while.

bench/replay.py writes that traffic into PostgreSQL as an ETL would and scrapes the real exporter;
`firing()` runs `promtool test rules` on the scrapes (one sample a minute at :30, so that no sample
sits on a window's edge: Prometheus 3's left-open ranges and 2's closed ones read the same) with an
alert check expecting nothing at every watched minute, and parses the alerts promtool reports as
unexpected: the minutes each alert fired.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "alerting" / "rules"
# Base mean seconds and base error ratio: a healthy service, spending half of a 99.5 % budget end to end.
COMPONENTS = {"search": (0.12, 0.001), "llm": (1.8, 0.0015)}
DAY = 1440


@dataclass(frozen=True)
class Incident:
    """A change from `start` (minutes from the simulation's start) for `minutes`."""

    kind: str  # errors, latency, feedback, traffic
    start: int
    minutes: int
    size: float  # error ratio; latency factor; negative ratio; traffic factor
    component: str = "search"


@dataclass
class Shape:
    """The traffic of one simulated service."""

    weekday_requests: float = 60_000  # a weekday's requests; weekends half of it
    weekend_factor: float = 0.5
    feedback_share: float = 0.08
    negative_share: float = 0.10
    day_noise: float = 0.08
    seed: int = 1
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def expected(self, minutes: np.ndarray, start_weekday: int) -> np.ndarray:
        """Expected requests per minute: diurnal curve x weekday factor x a per-day noise factor."""
        hour = (minutes % DAY) / 60
        diurnal = 0.25 + 0.75 * np.exp(-((hour - 15) / 5.0) ** 2)
        days = minutes // DAY
        weekday = (start_weekday + days) % 7
        week = np.where(weekday >= 5, self.weekend_factor, 1.0)
        day_factor = 1 + self.day_noise * self.rng.standard_normal(int(days.max()) + 1)
        per_minute = self.weekday_requests / (diurnal_mean() * DAY)
        return per_minute * diurnal * week * day_factor[days]


def diurnal_mean() -> float:
    hours = np.arange(DAY) / 60
    return float(np.mean(0.25 + 0.75 * np.exp(-((hours - 15) / 5.0) ** 2)))


def traffic(days: int, incidents: Iterable[Incident], shape: Shape, start_weekday: int = 0) -> dict[str, np.ndarray]:
    """Each minute's own requests, errors, stage time and feedback (not running totals), per component."""
    rng = shape.rng
    n = days * DAY
    minutes = np.arange(n)
    expected = shape.expected(minutes, start_weekday)
    traffic = np.ones(n)
    incidents = list(incidents)
    for incident in incidents:
        if incident.kind == "traffic":
            traffic[incident.start:incident.start + incident.minutes] = incident.size
    requests = rng.poisson(expected * traffic).astype(float)
    load = expected / expected.max()
    per_minute: dict[str, np.ndarray] = {}
    total_errors = np.zeros(n)
    total_time = np.zeros(n)
    for name, (mean, error_ratio) in COMPONENTS.items():
        ratio = np.full(n, error_ratio)
        factor = np.ones(n)
        for incident in incidents:
            span = slice(incident.start, incident.start + incident.minutes)
            if incident.component == name and incident.kind == "errors":
                ratio[span] = incident.size
            if incident.component == name and incident.kind == "latency":
                factor[span] = incident.size
        errors = rng.binomial(requests.astype(int), ratio).astype(float)
        # A minute's mean over its requests: per-request spread (CV 0.6) shrinks with their number.
        minute_mean = mean * (1 + 0.1 * load) * factor
        noisy = minute_mean * (1 + 0.6 * rng.standard_normal(n) / np.sqrt(np.maximum(requests, 1)))
        per_minute[f"{name}_requests"] = requests
        per_minute[f"{name}_errors"] = errors
        per_minute[f"{name}_time"] = noisy * requests
        # A request fails end to end when any stage fails it; a stage that fails ends the request,
        # so the stages' failures add up (an outage of one stage fails nearly every request).
        total_errors = np.minimum(total_errors + errors, requests)
        total_time += noisy * requests
    per_minute["total_requests"] = requests
    per_minute["total_errors"] = total_errors
    per_minute["total_time"] = total_time + 0.05 * requests
    negative_share = np.full(n, shape.negative_share)
    for incident in incidents:
        if incident.kind == "feedback":
            negative_share[incident.start:incident.start + incident.minutes] = incident.size
    feedback = rng.binomial(requests.astype(int), shape.feedback_share)
    per_minute["negative"] = rng.binomial(feedback, negative_share).astype(float)
    per_minute["positive"] = feedback - per_minute["negative"]
    return per_minute


_FAILED = re.compile(r"alertname: (\w+), time: ([0-9dhms]+),(.*?)(?=alertname: |\Z)", re.S)
_SEVERITY = re.compile(r'severity="(\w+)"')


def _minutes(text: str) -> int:
    total = 0
    for amount, unit in re.findall(r"(\d+)([dhms])", text):
        total += int(amount) * {"d": 1440, "h": 60, "m": 1, "s": 0}[unit]
    return total


def firing(input_series: list[dict[str, str]], watch: Iterable[int], promtool: str, rule_files: Iterable[str],
           alerts: Iterable[str], workdir: Path | None = None) -> dict[tuple[str, str], list[int]]:
    """Run promtool on these input series (samples at :30 of each minute) and the named rule files; the minutes
    of watch at which each (alert, severity) was firing."""
    alerts = list(alerts)
    test = {
        "rule_files": [str(RULES / name) for name in rule_files],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "30s",
            "input_series": input_series,
            "alert_rule_test": [{"eval_time": f"{minute}m", "alertname": name, "exp_alerts": []}
                                for minute in watch for name in alerts],
        }],
    }
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        path = Path(scratch) / "sim_test.yml"
        path.write_text(json.dumps(test))  # JSON is YAML, and 20 times as fast to write
        result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=3600)
    output = result.stdout + result.stderr
    if result.returncode != 0 and "FAILED:" not in output:
        raise RuntimeError(f"promtool could not run the simulation:\n{output[-2000:]}")
    if "err:" in output:  # a rule that failed to evaluate fires nothing, which must not read as "quiet"
        raise RuntimeError(f"a rule failed to evaluate:\n{output[output.index('err:') - 500:][:2000]}")
    found: dict[tuple[str, str], set[int]] = {}
    for name, when, got in _FAILED.findall(output):
        for severity in set(_SEVERITY.findall(got)):
            found.setdefault((name, severity), set()).add(_minutes(when))
    return {key: sorted(minutes) for key, minutes in found.items()}


def episodes(minutes: list[int]) -> int:
    """How many separate times an alert started firing (runs of consecutive minutes)."""
    return sum(1 for i, minute in enumerate(minutes) if i == 0 or minute != minutes[i - 1] + 1)
