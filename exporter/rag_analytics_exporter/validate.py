"""Row validation: raw database values in, clean typed rows or a rejection reason out."""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .tables import Kind, kinds_of_read_columns

MAX_LABEL_CHARS = 128

# What each column read from a daily table holds, from the declarations of tables.py. Millisecond columns
# are published in seconds under the name with "_ms" replaced by "_s"; they may be NULL (a day with
# no traffic has no percentiles).
_KIND = kinds_of_read_columns()
# Every reason a row or chunk is rejected for, with what it means: the one list of them. The health family
# rag_exporter_rows_rejected serves each at 0 until it occurs, and check-db explains a rejection by it.
# tests/test_validate.py fails when the package rejects for a reason missing here.
REASONS = {
    "null_key": "a NULL date or key",
    "empty_key": "a key that is empty or only blanks",
    "future_date": "a date after today (UTC)",
    "null_value": "a NULL count or cost",
    "negative_value": "a negative count, time or cost",
    "non_finite": "NaN or infinity",
    "wrong_type": "a value of the wrong type (e.g. text where a number belongs)",
    "inconsistent_counts": "a part larger than its whole (error_count > request_count, "
                           "positive_feedback_count > feedback_count)",
    "future_updated_at": "a chunk whose updated_at is in the future beyond clock drift (local time written as UTC?);"
                         " daily rows keep their counts (rag_table_updated_at_unusable_rows)",
    "out_of_range": "a chunk's avg_relevance outside [0, 1]",
    "negative_count": "a chunk with a negative retrieval_count or citation_count",
}
# (part, whole): a row whose part exceeds its whole is inconsistent.
_PART_OF = (("error_count", "request_count"), ("positive_feedback_count", "feedback_count"))


class Rejected(Exception):
    """A row that cannot be used; the reason is a short label value."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def clean_label(value: str) -> str:
    """A label value that any Prometheus parser accepts: no control characters, at most 128 characters."""
    cleaned = "".join("\ufffd" if unicodedata.category(ch) in ("Cc", "Cs") else ch for ch in value)
    if len(cleaned) > MAX_LABEL_CHARS:
        cleaned = cleaned[: MAX_LABEL_CHARS - 1] + "\u2026"
    return cleaned


def _number(value: Any, nullable: bool) -> float | None:
    if value is None:
        if nullable:
            return None
        raise Rejected("null_value")
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise Rejected("wrong_type")
    if isinstance(value, Decimal) and value.is_nan():
        raise Rejected("non_finite")  # float() raises on a signalling NaN instead of returning nan
    number = float(value)
    if not math.isfinite(number):
        raise Rejected("non_finite")
    if number < 0:
        raise Rejected("negative_value")
    return number


def output_name(column: str) -> str:
    """The key a column's value has in a validated row ('avg_time_ms' becomes 'avg_time_s')."""
    return column[:-3] + "_s" if _KIND.get(column) is Kind.MILLISECONDS else column


def validate_row(columns: Sequence[str], row: Sequence[Any], today: date) -> dict[str, Any]:
    """One clean row keyed by output_name(column), or Rejected with the reason."""
    clean: dict[str, Any] = {}
    for column, value in zip(columns, row, strict=True):
        kind = _KIND.get(column)
        if kind is Kind.DATE:
            if value is None:
                raise Rejected("null_key")
            if isinstance(value, datetime) or not isinstance(value, date):  # a timestamp cannot be a day
                raise Rejected("wrong_type")
            if value > today:
                raise Rejected("future_date")
            clean[column] = value
        elif kind is Kind.KEY:
            if value is None:
                raise Rejected("null_key")
            if not isinstance(value, str):
                raise Rejected("wrong_type")
            label = clean_label(value)
            if not label.strip():
                raise Rejected("empty_key")
            clean[column] = label
        elif kind is Kind.COUNT or kind is Kind.USD:
            clean[column] = _number(value, nullable=False)
        elif kind is Kind.MILLISECONDS:
            ms = _number(value, nullable=True)
            clean[output_name(column)] = None if ms is None else ms / 1000.0
        else:
            raise ValueError(f"no validation rule for column {column!r}")
    for part, whole in _PART_OF:
        if part in clean and whole in clean and clean[part] > clean[whole]:
            raise Rejected("inconsistent_counts")
    return clean


def validate_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]], today: date
                  ) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Clean rows and a count of the rejected ones by reason; never raises for bad data."""
    good: list[dict[str, Any]] = []
    rejected: Counter[str] = Counter()
    for row in rows:
        try:
            good.append(validate_row(columns, row, today))
        except Rejected as exc:
            rejected[exc.reason] += 1
    return good, rejected
