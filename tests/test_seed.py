"""The demo data is deterministic per seed: these digests pin every generated row, so that a change to
seed.generate that alters one number (a refactoring that draws in another order) fails here."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest

from rag_analytics_exporter.seed import DemoScale, generate

AT = datetime(2026, 3, 14, 15, 9, 26, tzinfo=timezone.utc)  # a Saturday afternoon: weekend and partial day


def digest(rows: dict[str, list[tuple]]) -> str:
    """A digest of every table's rows, in order, as repr writes them (floats at full precision)."""
    return hashlib.sha256(repr(sorted(rows.items())).encode()).hexdigest()


# Taken from seed.generate before it was split into small functions (issue 22 item 5).
@pytest.mark.parametrize(
    ("scale", "seed", "anomalies", "anomalies_today", "expected"),
    [
        (DemoScale(days=60), 42, True, True, "dd278f92cffe12e80303cae000da364462decb3dac6449ee04d8208c15245321"),
        (DemoScale(days=14), 7, True, False, "f6032a628197a789d06205c33f3cd02e1691cd8c82543da6dc69e8b028d3c0c6"),
        (DemoScale(days=9), 3, False, False, "4630d972514f72653ff3937936dbd160aa3662e7528eaeaf06f7137f96f927b9"),
        (
            DemoScale(days=5, extra_models=9, extra_tags=4, extra_patterns=3),
            11,
            True,
            True,
            "876b846cfcc4cf18164f9baaed50e5bb378be1df97b4fabf190dfd097bbf1866",
        ),
    ],
    ids=["demo-default", "anomalies-yesterday-only", "no-anomalies", "extra-labels"],
)
def test_generated_rows_are_pinned(
    scale: DemoScale, seed: int, anomalies: bool, anomalies_today: bool, expected: str
) -> None:
    rows = generate(scale, seed, AT, anomalies, anomalies_today)
    assert digest(rows) == expected
