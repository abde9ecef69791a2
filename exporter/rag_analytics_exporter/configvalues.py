"""Parsers of single config values (durations, bounded numbers, choices, addresses): each raises ValueError."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a string such as '500ms', '60s', '5m', '1h'."""
    if isinstance(value, bool):
        raise ValueError(f"must be a duration like 60s or 5m, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2) or "s"]
    else:
        raise ValueError(f"must be a duration like 60s or 5m, got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a positive duration, got {value!r}")
    return seconds


def int_in(low: int, high: int) -> Callable[[Any], int]:
    """A parser of whole numbers (or their strings) from low to high."""

    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number, got {value!r}")
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            value = int(value)
        if not isinstance(value, int):
            raise ValueError(f"must be a whole number, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def float_in(low: float, high: float) -> Callable[[Any], float]:
    """A parser of finite numbers (or their strings) from low to high."""

    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError(f"must be a number, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"must be a number, got {value!r}") from None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"must be a number, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return float(value)

    return parse


def optional_float_in(low: float, high: float) -> Callable[[Any], float | None]:
    """float_in, with null or an empty string for none."""
    number = float_in(low, high)
    return lambda value: None if value is None or value == "" else number(value)


def one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    """A parser accepting only the given choices."""

    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def string(value: Any) -> str:
    """value, which must be a string."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return value


def optional_path(value: Any) -> str | None:
    """A path, with null or an empty string for none."""
    if value is None or value == "":
        return None
    return string(value)


def parse_listen_address(value: Any) -> tuple[str, int]:
    """(host, port) from 'HOST:PORT' or '[v6]:PORT'."""
    text = string(value)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT (e.g. 0.0.0.0:9841 or [::1]:9841), got {text!r}")
    return host.strip("[]"), int(port)
