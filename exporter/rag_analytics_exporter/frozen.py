"""The two helpers the data side shares: read-only mappings for immutable state, and a day's start in UTC."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timezone
from types import MappingProxyType
from typing import Any


def midnight_utc(day: date) -> float:
    """Unix seconds of 00:00 UTC on day (how the exporter publishes dates)."""
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc).timestamp()


def frozen_mapping(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """A read-only copy, so a snapshot (or the counters' state) cannot be changed after it is built."""
    return MappingProxyType(dict(mapping))
