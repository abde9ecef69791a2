"""Row validation: each rejection reason, and properties over arbitrary dirty values (hypothesis)."""

from __future__ import annotations

import math
import unicodedata
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import any_text
from rag_analytics_exporter.validate import MAX_LABEL_CHARS, Rejected, clean_label, validate_row, validate_rows

pytestmark = pytest.mark.unit

TODAY = date(2026, 3, 31)
LATENCY = ("date", "component", "request_count", "error_count", "avg_time_ms", "p50_time_ms", "p90_time_ms",
           "p95_time_ms", "p99_time_ms")


def latency(**overrides):
    row = dict(date=TODAY, component="llm", request_count=100, error_count=2, avg_time_ms=1500.0,
               p50_time_ms=1200.0, p90_time_ms=2000.0, p95_time_ms=2500.0, p99_time_ms=4000.0)
    row.update(overrides)
    return tuple(row[c] for c in LATENCY)


def test_a_good_row_is_converted_to_seconds():
    clean = validate_row(LATENCY, latency(), TODAY)
    assert clean["avg_time_s"] == 1.5
    assert clean["p99_time_s"] == 4.0
    assert clean["request_count"] == 100.0


def test_null_percentiles_on_a_day_without_traffic_are_kept_as_none():
    clean = validate_row(LATENCY, latency(request_count=0, error_count=0, avg_time_ms=None, p50_time_ms=None,
                                          p90_time_ms=None, p95_time_ms=None, p99_time_ms=None), TODAY)
    assert clean["avg_time_s"] is None


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"component": None}, "null_key"),
    ({"component": "  "}, "empty_key"),
    ({"component": ""}, "empty_key"),
    ({"date": None}, "null_key"),
    ({"date": date(2026, 4, 2)}, "future_date"),
    ({"request_count": None}, "null_value"),
    ({"request_count": -1}, "negative_value"),
    ({"avg_time_ms": math.nan}, "non_finite"),
    ({"p99_time_ms": math.inf}, "non_finite"),
    ({"p50_time_ms": -3.0}, "negative_value"),
    ({"error_count": 101}, "inconsistent_counts"),
    ({"request_count": "12"}, "wrong_type"),
    # Issue 29 item 9. Before: TypeError (a datetime is a date that cannot be compared with one).
    ({"date": datetime(2026, 4, 1, tzinfo=timezone.utc)}, "wrong_type"),
    ({"date": "2026-04-01"}, "wrong_type"),
])
def test_each_rejection_reason(overrides, reason):
    with pytest.raises(Rejected) as caught:
        validate_row(LATENCY, latency(**overrides), TODAY)
    assert caught.value.reason == reason


def test_numeric_cost_nan_is_rejected():
    columns = ("date", "model_name", "estimated_cost_usd")
    with pytest.raises(Rejected, match="non_finite"):
        validate_row(columns, (TODAY, "m", Decimal("NaN")), TODAY)
    with pytest.raises(Rejected, match="non_finite"):
        validate_row(columns, (TODAY, "m", Decimal("sNaN")), TODAY)  # float() raises on it (found by hypothesis)
    assert validate_row(columns, (TODAY, "m", Decimal("1.250000")), TODAY)["estimated_cost_usd"] == 1.25


def test_huge_counts_are_kept():
    clean = validate_row(LATENCY, latency(request_count=2**63 - 1, error_count=2**62), TODAY)
    assert clean["request_count"] == float(2**63 - 1)


def test_validate_rows_counts_rejections_by_reason():
    rows = [latency(), latency(request_count=-5), latency(component=None), latency(component=None)]
    good, rejected = validate_rows(LATENCY, rows, TODAY)
    assert len(good) == 1
    assert rejected == {"negative_value": 1, "null_key": 2}


def test_clean_label_replaces_control_characters_and_truncates():
    assert clean_label("a\nb\x00c") == "a\ufffdb\ufffdc"
    long = clean_label("x" * 300)
    assert len(long) == MAX_LABEL_CHARS
    assert long.endswith("\u2026")
    assert clean_label('quote " and \\ backslash 🙂') == 'quote " and \\ backslash 🙂'


@given(any_text(max_size=300))
def test_clean_label_property(value):
    label = clean_label(value)
    assert len(label) <= MAX_LABEL_CHARS
    assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in label)
    label.encode("utf-8")  # always valid UTF-8


_dirty_number = st.one_of(
    st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.decimals(allow_nan=True, allow_infinity=True),
    any_text(max_size=3), st.booleans(),
)
_dirty_key = st.one_of(st.none(), any_text(max_size=400), st.integers())
_dirty_date = st.one_of(st.none(), st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 1, 1)))


@given(st.tuples(_dirty_date, _dirty_key, *[_dirty_number] * 7))
def test_any_latency_row_is_either_clean_or_rejected_with_a_reason(row):
    try:
        clean = validate_row(LATENCY, row, TODAY)
    except Rejected as exc:
        assert exc.reason in {"null_key", "empty_key", "future_date", "null_value", "negative_value", "non_finite",
                              "inconsistent_counts", "wrong_type"}
        return
    # What passes is safe to publish: finite, non-negative, a clean short label, a day not in the future.
    assert clean["date"] <= TODAY
    assert len(clean["component"]) <= MAX_LABEL_CHARS and clean["component"].strip()
    for key, value in clean.items():
        if isinstance(value, float):
            assert math.isfinite(value) and value >= 0, key
    assert clean["error_count"] <= clean["request_count"]


def _reasons_in_the_package() -> set[str]:
    """Every reason the package rejects for: Rejected("x"), rejected["x"] += n, and the chunk query's buckets."""
    import ast

    from conftest import REPO
    from rag_analytics_exporter.queries import CHUNK_BUCKET_REASONS

    found = {reason for reason in CHUNK_BUCKET_REASONS.values() if reason != "null_relevance"}  # not a rejection
    for path in (REPO / "exporter" / "rag_analytics_exporter").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if ((isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Rejected")
                    or (isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "rejected")):
                argument = node.args[0] if isinstance(node, ast.Call) else node.slice
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.add(argument.value)
    return found


def test_every_rejection_reason_is_in_the_one_list():
    from rag_analytics_exporter.validate import REASONS

    found = _reasons_in_the_package()
    assert {"null_key", "future_updated_at", "out_of_range"} <= found  # the scan sees all three kinds of site
    assert found <= REASONS.keys(), f"add {sorted(found - REASONS.keys())} to validate.REASONS"
