"""Simulated days of today's running totals, run through the committed rules with the real promtool.

What is simulated, minute by minute (numpy, seeded):
* traffic with a diurnal curve (quiet at 03:00 UTC, peak at 15:00), weekdays busier than weekends,
  day-to-day and minute-to-minute noise; components search, llm and total (the whole request);
* errors as binomial draws around a base ratio, latency as each minute's mean around a base that
  rises a little with load, feedback on a share of requests with ~10 % negative;
* the ETL writing the day's running totals every `cadence` minutes (a random phase), each write
  holding the traffic up to its own start, the exporter serving the newest write at the next
  scrape, and the new day's first write restarting every total: the increments between the day's
  last write and 00:00 are lost, as in production;
* Prometheus scraping every minute at :30, so that no sample ever sits on a window's edge
  (Prometheus 3's left-open ranges and Prometheus 2's closed ones then read the same samples).

`run()` writes the series as a promtool test whose alert checks expect nothing at every minute of
the watched span, runs `promtool test rules` on the committed rule files, and parses the alerts that
promtool reports as unexpected: the first minute each alert fired.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "alerting" / "rules"
JOB = "rag-analytics-exporter"
# Base mean seconds and base error ratio: a healthy service, spending half of a 99.5 % budget end to end.
COMPONENTS = {"search": (0.12, 0.001), "llm": (1.8, 0.0015)}
# The rule files of the windowed signals; the others read series this simulation does not make.
RULE_FILES = ("live.yml", "slo.yml", "rates.yml")
ALERTS = ("RagComponentErrorBudgetBurn", "RagComponentLatencyHigh", "RagNegativeFeedbackHigh", "RagTrafficDrop")
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


def simulate(days: int, cadence: int, incidents: Iterable[Incident] = (), shape: Shape | None = None,
             start_weekday: int = 0) -> dict[str, np.ndarray]:
    """Per-minute served values of every series (the exporter's view, before Prometheus scrapes it)."""
    shape = shape or Shape()
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
    return _served(per_minute, n, cadence, rng)


def _served(per_minute: dict[str, np.ndarray], n: int, cadence: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The running totals as the exporter serves them at each minute's scrape (at :30)."""
    phase = int(rng.integers(cadence))
    writes = np.arange(phase, n + cadence, cadence)
    # Each write covers traffic up to its own minute (a few seconds of jitter do not cross minutes).
    writes = writes[writes < n]
    served: dict[str, np.ndarray] = {}
    day_of = np.arange(n) // DAY
    for key, values in per_minute.items():
        # The day's running total as of the end of each minute, restarting at 00:00.
        totals = np.zeros(n)
        for day in range(int(day_of.max()) + 1):
            span = slice(day * DAY, (day + 1) * DAY)
            totals[span] = np.cumsum(values[span])
        # A write at minute w (its start) holds the day's traffic up to w, not w's own minute: the
        # total as of the end of minute w - 1, of w's day (a write at 00:02 holds the new day's
        # first two minutes, and the old day's tail is never served). Served at minute m: the
        # newest write at or before m.
        before = np.concatenate(([0.0], totals[:-1]))
        before[np.arange(n) % DAY == 0] = 0.0
        last = np.searchsorted(writes, np.arange(n), side="right") - 1
        served_values = np.where(last >= 0, before[writes[np.maximum(last, 0)]], 0.0)
        served[key] = served_values
    # latency_metrics.updated_at as the exporter serves it: the newest write's time, in seconds.
    last = np.searchsorted(writes, np.arange(n), side="right") - 1
    served["updated"] = np.where(last >= 0, writes[np.maximum(last, 0)] * 60.0, 0.0)
    return served


def series(served: dict[str, np.ndarray], baseline: dict[str, float]) -> list[dict[str, str]]:
    """promtool input_series: one sample a minute at :30 (interval 30s, every other value missing)."""
    target = f'job="{JOB}",instance="exporter:9841"'
    out = []

    def add(name: str, labels: str, values: np.ndarray) -> None:
        text = " ".join(f"_ {v:.10g}" for v in values)
        out.append({"series": f"{name}{{{labels},{target}}}", "values": text})

    for component in (*COMPONENTS, "total"):
        requests = served[f"{component}_requests"]
        add("rag_component_requests", f'component="{component}"', requests)
        add("rag_component_errors", f'component="{component}"', served[f"{component}_errors"])
        mean = np.where(requests > 0, served[f"{component}_time"] / np.maximum(requests, 1), 0.0)
        add("rag_component_latency_seconds", f'component="{component}",statistic="mean"', mean)
        add("rag_component_latency_baseline_mean_seconds", f'component="{component}"',
            np.full(len(requests), baseline[component]))
    for sentiment in ("positive", "negative"):
        add("rag_feedback", f'sentiment="{sentiment}"', served[sentiment])
    add("rag_table_updated_timestamp_seconds", 'table="latency_metrics"', served["updated"])
    return out


def baselines() -> dict[str, float]:
    """The 30-day baseline daily mean latency: the base, raised by the day's mean load."""
    mean_load = diurnal_mean() / 1.0
    base = {name: mean * (1 + 0.1 * mean_load) for name, (mean, _) in COMPONENTS.items()}
    base["total"] = sum(base.values()) + 0.05
    return base


_FAILED = re.compile(r"alertname: (\w+), time: ([0-9dhms]+),(.*?)(?=alertname: |\Z)", re.S)
_SEVERITY = re.compile(r'severity="(\w+)"')


def _minutes(text: str) -> int:
    total = 0
    for amount, unit in re.findall(r"(\d+)([dhms])", text):
        total += int(amount) * {"d": 1440, "h": 60, "m": 1, "s": 0}[unit]
    return total


def run(served: dict[str, np.ndarray], watch: range, promtool: str, workdir: Path | None = None,
        alerts: Iterable[str] = ALERTS) -> dict[tuple[str, str], list[int]]:
    """The minutes (within watch) at which each (alert, severity) was firing, from promtool's report
    of the alerts it did not expect."""
    n = len(served["total_requests"])
    rule_files = [str(RULES / name) for name in RULE_FILES]
    test = {
        "rule_files": rule_files,
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "30s",
            "input_series": series(served, baselines()),
            "alert_rule_test": [{"eval_time": f"{minute}m", "alertname": name, "exp_alerts": []}
                                for minute in watch for name in alerts if minute < n],
        }],
    }
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        path = Path(scratch) / "sim_test.yml"
        path.write_text(yaml.safe_dump(test, width=1 << 30))
        result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=3600)
    output = result.stdout + result.stderr
    if result.returncode != 0 and "FAILED:" not in output:
        raise RuntimeError(f"promtool could not run the simulation:\n{output[-2000:]}")
    firing: dict[tuple[str, str], set[int]] = {}
    for name, when, got in _FAILED.findall(output):
        for severity in set(_SEVERITY.findall(got)):
            firing.setdefault((name, severity), set()).add(_minutes(when))
    return {key: sorted(minutes) for key, minutes in firing.items()}


def episodes(minutes: list[int]) -> int:
    """How many separate times an alert started firing (runs of consecutive minutes)."""
    return sum(1 for i, minute in enumerate(minutes) if i == 0 or minute != minutes[i - 1] + 1)
