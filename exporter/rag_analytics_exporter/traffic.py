"""The simulated traffic of one day, for the live writer: incidents, the daily shape, the running totals.

Traffic follows a daily shape (a diurnal curve, quieter weekends) with noise, and every number stays
consistent with what was written before: counts only grow, `avg_time_ms` is the weighted mean of all
of today's requests (so `mean x requests` grows by exactly the new requests' time), and the `total`
component is the whole request across the stages. A request that fails in a stage goes no further,
so a stage runs for the requests the previous one passed on, and `total` counts each failure once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np

from .seed import BASE_ERROR_RATIO, COMPONENTS, FEEDBACK_SHARE, MODELS, PATTERNS, REQUESTS_PER_DAY, TAGS

STAGES = tuple(COMPONENTS)  # in pipeline order: a request runs them one after the other
INCIDENTS = ("error-burst", "outage", "latency", "feedback", "traffic-stop")
NEGATIVE_SHARE = 0.10  # of feedback, normally
CITATION_SHARES = (0.12, 0.25, 0.30, 0.33)  # answers citing 0, 1, 2, 3+ chunks
PATTERN_FEEDBACK_SHARE = 0.12


@dataclass(frozen=True)
class Incident:
    """What goes wrong and where, from a real moment (unix seconds) on."""

    name: str
    started_at: float
    component: str = "search"  # of error-burst and outage; latency always slows llm

    def __post_init__(self) -> None:
        if self.name not in INCIDENTS:
            raise ValueError(f"unknown incident {self.name!r}: choose one of {', '.join(INCIDENTS)}")
        if self.component not in STAGES:
            raise ValueError(f"unknown component {self.component!r}: choose one of {', '.join(STAGES)}")

    def error_ratio(self, component: str) -> float:
        """The share of a stage's requests that fail."""
        if component == self.component and self.name == "outage":
            return 1.0
        if component == self.component and self.name == "error-burst":
            return 0.30
        return BASE_ERROR_RATIO[component]

    def time_factor(self, component: str) -> float:
        """How many times its usual time a stage takes."""
        return 3.0 if self.name == "latency" and component == "llm" else 1.0

    @property
    def negative_share(self) -> float:
        return 0.60 if self.name == "feedback" else NEGATIVE_SHARE

    @property
    def traffic_factor(self) -> float:
        return 0.0 if self.name == "traffic-stop" else 1.0


def _level(day: date) -> float:
    return 0.55 if day.weekday() >= 5 else 1.0


def traffic_shape(at: datetime) -> float:
    """Relative request rate at a moment: about 1.0 on a weekday's average.

    Quietest about 03:00 UTC, busiest about 15:00, weekends at 55 %. The weekend level changes
    smoothly over the six hours around midnight, so that traffic never falls below three quarters
    of the hour before: the demo compares traffic with a short time earlier (it has no week of
    history), and a step would look like an incident.
    """
    hours = at.hour + at.minute / 60 + at.second / 3600
    diurnal = 1 + 0.6 * math.sin(2 * math.pi * (hours - 9) / 24)
    today = at.date()
    if hours >= 21:
        weight = (hours - 21) / 6
        level = _level(today) * (1 - weight) + _level(today + timedelta(days=1)) * weight
    elif hours < 3:
        weight = (hours + 3) / 6
        level = _level(today - timedelta(days=1)) * (1 - weight) + _level(today) * weight
    else:
        level = _level(today)
    return diurnal * level


def stage_time_ms(rng: np.random.Generator, requests: int, mean_ms: float, sigma: float) -> float:
    """The summed time of `requests` log-normal request times of the given mean (normal approximation)."""
    if requests == 0:
        return 0.0
    spread = mean_ms * math.sqrt(requests * (math.exp(sigma**2) - 1))
    return max(float(rng.normal(requests * mean_ms, spread)), requests * mean_ms * 0.2)


@dataclass
class Stage:
    """One component's totals for the day: requests, errors and their summed time in ms."""

    requests: int = 0
    errors: int = 0
    time_ms: float = 0.0

    @property
    def mean_ms(self) -> float | None:
        return self.time_ms / self.requests if self.requests else None


@dataclass
class Model:
    calls: int = 0
    prompt: int = 0
    completion: int = 0
    cost_usd: float = 0.0


@dataclass
class Pattern:
    frequency: int = 0
    time_ms: float = 0.0
    feedback: int = 0
    positive: int = 0


@dataclass
class Day:
    """One day's running totals, as the tables hold them."""

    day: date
    stages: dict[str, Stage] = field(default_factory=lambda: {name: Stage() for name in (*STAGES, "total")})
    models: dict[str, Model] = field(default_factory=lambda: {name: Model() for name in MODELS})
    citations: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    positive: int = 0
    negative: int = 0
    tags: dict[str, list[int]] = field(default_factory=lambda: {name: [0, 0] for name in TAGS})
    patterns: dict[str, Pattern] = field(default_factory=lambda: {name: Pattern() for name in PATTERNS})


def simulate(day: Day, rng: np.random.Generator, start: datetime, seconds: float, incident: Incident | None,
             requests_per_day: float = REQUESTS_PER_DAY) -> None:
    """Add `seconds` of simulated traffic from `start` on to the day's totals (in place)."""
    rate = traffic_shape(start + timedelta(seconds=seconds / 2)) * (incident.traffic_factor if incident else 1)
    expected = requests_per_day * rate * seconds / 86400 * max(float(rng.normal(1.0, 0.03)), 0.0)
    arriving = int(rng.poisson(expected))
    total = day.stages["total"]
    total.requests += arriving
    passed, reached_llm = arriving, 0
    for component in STAGES:
        mean_ms, sigma = COMPONENTS[component]
        ratio = incident.error_ratio(component) if incident else BASE_ERROR_RATIO[component]
        factor = incident.time_factor(component) if incident else 1.0
        if component == "llm":
            reached_llm = passed
        errors = int(rng.binomial(passed, ratio))
        spent = stage_time_ms(rng, passed, mean_ms * factor, sigma)
        stage = day.stages[component]
        stage.requests += passed
        stage.errors += errors
        stage.time_ms += spent
        # A failed request has spent its time up to the failing stage: the total holds it once.
        total.errors += errors
        total.time_ms += spent
        passed -= errors
    _add_tokens(day, rng, reached_llm)
    _add_answers(day, rng, passed, incident.negative_share if incident else NEGATIVE_SHARE)


def _add_tokens(day: Day, rng: np.random.Generator, calls: int) -> None:
    shares = np.array([share for share, _, _ in MODELS.values()])
    for (name, (_, prompt_price, completion_price)), count in zip(
            MODELS.items(), rng.multinomial(calls, shares / shares.sum()), strict=True):
        prompt = int(rng.normal(1800, 60 / math.sqrt(max(count, 1))) * count)
        completion = int(rng.normal(340, 20 / math.sqrt(max(count, 1))) * count)
        model = day.models[name]
        model.calls += int(count)
        model.prompt += prompt
        model.completion += completion
        model.cost_usd += (prompt * prompt_price + completion * completion_price) / 1e6


def _add_answers(day: Day, rng: np.random.Generator, answered: int, negative_share: float) -> None:
    for i, count in enumerate(rng.multinomial(answered, CITATION_SHARES)):
        day.citations[i] += int(count)
    feedback = int(rng.binomial(answered, FEEDBACK_SHARE))
    negative = int(rng.binomial(feedback, negative_share))
    new_positive = feedback - negative
    day.positive += new_positive
    day.negative += negative
    for name, (share, positive_share) in TAGS.items():
        # A tag's share among positive and among negative feedback, so that the tag's own positive
        # share holds in normal times, and a surge of negative feedback brings the negative tags.
        positive = int(rng.binomial(new_positive, min(share * positive_share / (1 - NEGATIVE_SHARE), 1.0)))
        negative_tagged = int(rng.binomial(negative, min(share * (1 - positive_share) / NEGATIVE_SHARE, 1.0)))
        day.tags[name][0] += positive
        day.tags[name][1] += negative_tagged
    for name, (share, answer_ms, positive_share) in PATTERNS.items():
        frequency = int(rng.binomial(answered, share))
        with_feedback = int(rng.binomial(frequency, PATTERN_FEEDBACK_SHARE))
        pattern = day.patterns[name]
        pattern.frequency += frequency
        pattern.time_ms += stage_time_ms(rng, frequency, answer_ms, 0.4)
        pattern.feedback += with_feedback
        pattern.positive += int(rng.binomial(with_feedback, positive_share))
