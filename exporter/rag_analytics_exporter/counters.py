"""True counters from the tables' daily running totals: they only grow within a process.

The ETL upserts today's running totals (requests, errors, tokens, ...) every few minutes. Read as a
Prometheus counter, any dip in such a total (an error counted one write late, a re-aggregation, a
whole-millisecond mean) is taken for a reset by increase(), which then replays the whole day. The
exporter is the one place that sees every write and knows each row's date, so it owns the counters:

* a counter advances by each write's increase over the last value this process saw for that row
  (table, date, key): a new day is a new row, told by its date, not by a drop in value;
* a decrease is a correction: the counter holds, and the amount is added to `corrections`; the next
  write counts from the lowered value (stage time, from a rounded mean, from its highest value instead);
* a row's label (a model folded into `other`) is fixed on the day's first sight of the row, so that
  counts never move between series mid-day;
* yesterday's rows are still read after midnight, so the ETL's last write of a day still counts;
* the first read of a table after start is the baseline: counters start at 0 then, with a created
  timestamp, as every client library's do. A series that first appears later is published at 0 and
  takes its first amount one refresh later, so that increase() sees it.

Pure: plain values in, a new immutable `Counters` out; the refresh job stores it in the snapshot.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from . import tables
from .frozen import frozen_mapping, midnight_utc

Series = tuple[str, tuple[str, ...]]  # (family name, label values)


@dataclass(frozen=True)
class Running:
    """One row's running totals as the last write left them, by quantity (a validated column name)."""

    day: date
    key: str  # the row's own key (a component, a model); "" for tables with one row a day
    labels: tuple[str, ...]  # the label values it is published under (its top-N label)
    values: Mapping[str, float]


@dataclass(frozen=True)
class Spec:
    """One counter series kind: which table's quantity it sums, under which labels."""

    name: str
    table: str
    quantity: str
    label_names: tuple[str, ...]
    fixed: tuple[str, ...]  # label values of its own, after the row's (token_type, sentiment, ...)
    help: str
    # Advance only past the highest value seen, not the last: for a quantity that oscillates around its
    # true value (mean x requests from a mean stored in whole milliseconds), a step down and back up would
    # otherwise count the step again at every oscillation.
    high_water: bool = False


def _specs() -> tuple[Spec, ...]:
    latency, usage = tables.LATENCY_METRICS.name, tables.TOKEN_USAGE_DAILY.name
    feedback, citations = tables.FEEDBACK_DAILY.name, tables.CITATION_DAILY.name
    specs = [
        Spec("rag_component_requests_total", latency, "request_count", ("component",), (),
             "Requests that ran this component (latency_metrics.request_count)"),
        Spec("rag_component_errors_total", latency, "error_count", ("component",), (),
             "Requests that failed in this component (latency_metrics.error_count)"),
        Spec("rag_component_stage_seconds_total", latency, "stage_seconds", ("component",), (),
             "Time spent in this component by its requests, in seconds (latency_metrics.avg_time_ms x "
             "request_count)", high_water=True),
        *(Spec("rag_model_tokens_total", usage, f"{kind}_tokens", ("model", "token_type"), (kind,),
               "Tokens used by this model; token_type is prompt or completion (token_usage_daily.prompt_tokens, "
               "completion_tokens)") for kind in ("prompt", "completion")),
        Spec("rag_model_cost_usd_total", usage, "estimated_cost_usd", ("model",), (),
             "Estimated cost of this model in USD (token_usage_daily.estimated_cost_usd)"),
        *(Spec("rag_feedback_total", feedback, f"{sentiment}_count", ("sentiment",), (sentiment,),
               "User feedback by sentiment (feedback_daily)") for sentiment in ("positive", "negative")),
        Spec("rag_responses_total", citations, "responses_total", (), (),
             "Answers given (citation_daily.responses_total)"),
        *(Spec("rag_citation_responses_total", citations, column, ("citations",), (label,),
               "Answers by how many retrieved chunks they cited: 0, 1, 2 or 3+ (citation_daily)")
          for column, label in (("zero_citations", "0"), ("one_citation", "1"), ("two_citations", "2"),
                                ("three_plus_citations", "3+"))),
    ]
    return tuple(specs)


SPECS = _specs()
# A day's rows written this long after the day ended are a re-run or a correction of a closed day, not
# the ETL's catch-up pass just after midnight (builders.day_finished reads the same bound).
LATE_WRITE_SECONDS = 3600.0
TABLES = tuple(dict.fromkeys(spec.table for spec in SPECS))
_BY_TABLE = {table: tuple(s for s in SPECS if s.table == table) for table in TABLES}


@dataclass(frozen=True)
class Correction:
    """A running total that went down between two writes: the counter held."""

    table: str
    counter: str
    day: date
    key: str
    amount: float


@dataclass(frozen=True)
class Counters:
    """Every counter's value, and what the next refresh needs to advance them."""

    values: Mapping[Series, float] = field(default_factory=lambda: frozen_mapping({}))
    created: Mapping[Series, float] = field(default_factory=lambda: frozen_mapping({}))
    # Amounts of series first published this refresh (at 0), added at the next.
    pending: Mapping[Series, float] = field(default_factory=lambda: frozen_mapping({}))
    # (table, day, key) -> (its labels for the day, the last value seen of each quantity)
    seen: Mapping[tuple[str, date, str], tuple[tuple[str, ...], Mapping[str, float]]] = field(
        default_factory=lambda: frozen_mapping({}))
    baselined: frozenset[str] = frozenset()  # tables whose first read since start is taken
    corrections: Mapping[tuple[str, str], float] = field(  # (table, counter) -> amount held back
        default_factory=lambda: frozen_mapping({(spec.table, spec.name): 0.0 for spec in SPECS}))
    today: date | None = None  # the newest day a refresh ran on: a clock stepping back does not reopen days


def advance(state: Counters, observed: Mapping[str, Iterable[Running]], today: date, now: float
            ) -> tuple[Counters, list[Correction]]:
    """The counters after the rows read by one refresh (only the tables it read; a table no counter reads is
    passed over), and the corrections seen.

    Yesterday's rows count until an hour after midnight (the ETL's last run of the day); later changes
    to them are a re-run of a closed day, not traffic of now, and are not counted. Older rows never are.
    """
    today = max(today, state.today or today)
    values = dict(state.values)
    created = dict(state.created)
    pending: dict[Series, float] = defaultdict(float)
    for series, amount in state.pending.items():
        values[series] += amount
    seen = dict(state.seen)
    corrections = dict(state.corrections)
    found: list[Correction] = []
    oldest = today - timedelta(days=1)
    yesterday_closed = now >= midnight_utc(today) + LATE_WRITE_SECONDS

    def add(series: Series, amount: float) -> None:
        if series in values and series not in pending:
            values[series] += amount
        else:  # a new series: published at 0 now, so that increase() sees its first amount
            if series not in values:
                values[series], created[series] = 0.0, now
            pending[series] += amount

    for table, rows in observed.items():
        if table not in _BY_TABLE:
            continue
        baseline = table not in state.baselined
        for row in rows:
            if row.day < oldest:
                continue
            known = (table, row.day, row.key) in seen
            labels, last = seen.get((table, row.day, row.key), (row.labels, {}))
            # Unused quantities are taken as they are: the row's first read, or a closed day's re-run.
            taken = baseline or (row.day < today and yesterday_closed)
            # A count that went down (a de-duplication) takes the time of its requests with it: the time's
            # highest value then no longer applies.
            lowered = any(row.values.get(q, v) < v for q, v in last.items()
                          if not any(s.high_water and s.quantity == q for s in _BY_TABLE[table]))
            latest = dict(last)
            for spec in _BY_TABLE[table]:
                value = row.values.get(spec.quantity)
                if value is None or not math.isfinite(value):
                    continue
                series = (spec.name, labels + spec.fixed)
                first_sight = known and spec.quantity not in last  # a mean that was NULL until now
                before = last.get(spec.quantity, 0.0)
                latest[spec.quantity] = max(value, before) if spec.high_water and not lowered else value
                if taken or first_sight:
                    if series not in values:
                        values[series], created[series] = 0.0, now
                    continue
                change = value - before
                if change < 0:
                    corrections[(table, spec.name)] += -change
                    found.append(Correction(table, spec.name, row.day, row.key, -change))
                elif change > 0 or series not in values:
                    add(series, change)
            seen[(table, row.day, row.key)] = (labels, frozen_mapping(latest))
    seen = {k: v for k, v in seen.items() if k[1] >= oldest}
    # A series no row of today or yesterday feeds any more (a model gone for two days) is dropped, so the
    # exposition does not grow with every label a process has ever seen.
    live = {(spec.name, labels + spec.fixed) for (table, _, _), (labels, _) in seen.items()
            for spec in _BY_TABLE[table]}
    live |= set(pending)
    return Counters(
        values=frozen_mapping({k: v for k, v in values.items() if k in live}),
        created=frozen_mapping({k: v for k, v in created.items() if k in live}), pending=frozen_mapping(pending),
        seen=frozen_mapping(seen), baselined=state.baselined | (frozenset(observed) & frozenset(TABLES)),
        corrections=frozen_mapping(corrections), today=today,
    ), found
