"""Rule files for compressed time: every window, offset and `for:` divided by a factor, expressions kept intact.

The demo and the end-to-end tests write the ETL's traffic K times as fast as real time (live.py);
rules whose durations are divided by K then see what they would see in production. A demo has no
week of history, so `offset 1w` and `offset 1d` point instead to a short moment earlier in the
demo's own live data.

The rewrite is PromQL-aware and cannot corrupt an expression: a lexer that knows strings, comments
and identifiers replaces duration tokens only where PromQL has them (inside `[...]`, after
`offset`), and leaves every other character as it was. The result is then parsed
(promql-parser, a port of Prometheus' own parser), and its durations must be exactly the
original's, scaled, in the same order: anything else is an error, never a silently wrong rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import promql_parser
import yaml

# Durations that compare with the same time of another day or week; see replace_offsets.
CALENDAR_OFFSETS = (timedelta(weeks=1), timedelta(days=1))

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_TOKEN = re.compile(r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<comment>\#[^\n]*)
  | (?P<word>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<number>[0-9][0-9a-zA-Z.]*)
  | (?P<space>\s+)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


class ScalingError(ValueError):
    """An expression could not be rewritten exactly (it names the expression and why)."""


def parse_duration(text: str) -> timedelta:
    """A Prometheus duration (1h30m, 500ms, 1w) as a timedelta."""
    if not _DURATION.fullmatch(text):
        raise ScalingError(f"{text!r} is not a Prometheus duration")
    return timedelta(seconds=sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(text)))


def format_duration(value: timedelta) -> str:
    """A timedelta as Prometheus writes durations: 2h24m, 1d, 30s."""
    return promql_parser.display_duration(value)


def divided(value: timedelta, factor: float) -> timedelta:
    """value / factor in whole seconds, at least one (Prometheus needs a non-zero range); keeps the sign."""
    seconds = value.total_seconds()
    return timedelta(seconds=math.copysign(max(1, round(abs(seconds) / factor)), seconds))


def rewrite_durations(expr: str, rewrite: Callable[[str, timedelta], timedelta]) -> str:
    """expr with each duration replaced by rewrite(kind, duration); kind is "range", "step" or "offset".

    Only duration tokens change; strings, label values, comments, metric names and spacing stay
    byte for byte. Raises ScalingError unless the result parses to exactly the rewritten durations.
    """
    out: list[str] = []
    rewritten = 0
    state, negative = None, False  # state: None, "range", "step" (after ':' in brackets) or "offset"
    position = 0
    while position < len(expr):
        if state == "range" and expr[position] == ":":  # a subquery's step follows, not a metric name
            kind, text = "other", ":"
        else:
            match = _TOKEN.match(expr, position)
            assert match is not None  # the last alternative matches any character
            kind, text = str(match.lastgroup), match.group()  # every alternative is a named group
        position += len(text)
        if kind == "space" or kind == "comment":
            pass
        elif kind == "other" and text == "[":
            state = "range"
        elif kind == "other" and text == "]":
            state = None
        elif kind == "other" and text == ":" and state == "range":
            state = "step"
        elif kind == "word" and text.lower() == "offset":
            state, negative = "offset", False
        elif kind == "other" and text == "-" and state == "offset":
            negative = True
        elif kind == "number" and state is not None and _DURATION.fullmatch(text):
            value = -parse_duration(text) if negative else parse_duration(text)
            text = format_duration(abs(rewrite(state, value)))
            rewritten += 1
            state = None if state == "offset" else state
        elif state == "offset":
            state = None
        out.append(text)
    result = "".join(out)
    _check(expr, result, rewrite, rewritten)
    return result


def _durations(expr: str) -> list[tuple[str, timedelta]]:
    """The (kind, duration) pairs of a parsed expression."""
    found: list[tuple[str, timedelta]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.MatrixSelector):
            found.append(("range", node.range))  # its selector's offset is visited with the selector
        elif isinstance(node, promql_parser.VectorSelector) and node.offset is not None:
            found.append(("offset", node.offset))
        elif isinstance(node, promql_parser.SubqueryExpr):
            found.extend((kind, value) for kind, value in
                         (("range", node.range), ("step", node.step), ("offset", node.offset)) if value is not None)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def _check(original: str, result: str, rewrite: Callable[[str, timedelta], timedelta], rewritten: int) -> None:
    try:
        before, after = _durations(original), _durations(result)
    except ValueError as exc:
        raise ScalingError(f"cannot parse {original!r} or its rewrite {result!r}: {exc}") from exc
    intended = sorted((kind, rewrite(kind, value)) for kind, value in before)
    if rewritten != len(before) or sorted(after) != intended:
        raise ScalingError(f"rewriting {original!r} gave {result!r}, whose durations {sorted(after)} are not "
                           f"the intended {intended}")


def scaled_rules(document: dict[str, Any], factor: float, calendar_offset: timedelta, windows: bool = True
                 ) -> dict[str, Any]:
    """A rule file (parsed YAML) with every window and `for:` divided by factor and the calendar offsets
    (`offset 1w`, `offset 1d`) replaced by calendar_offset. Labels and annotations are kept. windows=False
    scales the waiting only (`for:`, group intervals), leaving the expressions as committed."""

    def rewrite(kind: str, value: timedelta) -> timedelta:
        if kind == "offset" and value in CALENDAR_OFFSETS:
            return calendar_offset
        return divided(value, factor)

    for group in document["groups"]:
        if "interval" in group:
            group["interval"] = format_duration(divided(parse_duration(group["interval"]), factor))
        for rule in group["rules"]:
            if windows:
                rule["expr"] = rewrite_durations(str(rule["expr"]), rewrite)
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = format_duration(divided(parse_duration(rule[key]), factor))
    return document


def write_scaled_rules(sources: list[Path], destination: Path, factor: float, calendar_offset: timedelta,
                       windows: bool = True) -> list[Path]:
    """Copies of the rule files in destination, scaled (scaled_rules); returns the written files."""
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        document = scaled_rules(yaml.safe_load(source.read_text()), factor, calendar_offset, windows)
        target = destination / source.name
        target.write_text(yaml.safe_dump(document, sort_keys=False, width=1000))
        written.append(target)
    return written
