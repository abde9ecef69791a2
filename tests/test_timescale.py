"""The demo's time-scaled rules: windows, offsets and `for:` divided, nothing else touched."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest
import yaml

from conftest import REPO
from rag_analytics_exporter.timescale import (
    CALENDAR_OFFSETS,
    ScalingError,
    divided,
    parse_duration,
    rewrite_durations,
    scaled_rules,
    write_scaled_rules,
)

TWO_MINUTES = timedelta(minutes=2)


def demo(kind: str, value: timedelta) -> timedelta:
    """The demo's rewrite: calendar offsets to two minutes, everything else divided by 30."""
    return TWO_MINUTES if kind == "offset" and value in CALENDAR_OFFSETS else divided(value, 30)


@pytest.mark.parametrize(("expr", "expected"), [
    ("increase(rag_component_errors[1h])", "increase(rag_component_errors[2m])"),
    ("sum(increase(x[15m])) / sum(increase(x[15m] offset 1w))",
     "sum(increase(x[30s])) / sum(increase(x[30s] offset 2m))"),
    ("increase(x[1d] offset 1d)", "increase(x[48m] offset 2m)"),
    ("increase(x[3d])", "increase(x[2h24m])"),
    ("max_over_time(rate(x[5m])[1h:1m])", "max_over_time(rate(x[10s])[2m:2s])"),
    ("max_over_time(x[6h:])", "max_over_time(x[12m:])"),
    ("x offset 2h", "x offset 4m"),
    ("x offset -1h", "x offset -2m"),
    ("rate(x [ 1h ] OFFSET 1w)", "rate(x [ 2m ] OFFSET 2m)"),
    ("x[1h30m]", "x[3m]"),
    ("rate(x[5m] @ start() offset 1d)", "rate(x[10s] @ start() offset 2m)"),
])
@pytest.mark.unit
def test_windows_and_offsets_are_scaled(expr, expected):
    assert rewrite_durations(expr, demo) == expected


@pytest.mark.parametrize("expr", [
    # Durations inside strings, label values, regexes and comments are not PromQL durations.
    'label_replace(increase(x{a="[5m]", b="offset 1d"}[1h]), "w", "[1h]", "c", "offset 1w")',
    "increase(x{a=~'.*[1-5]m'}[1h]) # compare with [1d] offset 1w",
    "increase(x{a=`[30m]`}[1h])",
    # Metric names that contain 'offset' or colons, and a subquery right after a colon-named metric.
    "sum(increase(job:offset:ratio[1h])) > 0.5",
    "max_over_time(level:offset_seconds[1h:5m])",
    # Numbers that look like durations only where PromQL has no duration.
    "sum(increase(x[1h])) > 5 and on() vector(1)",
])
@pytest.mark.unit
def test_nothing_but_the_durations_changes(expr):
    result = rewrite_durations(expr, demo)
    # Every character outside the rewritten range stays as it was: put the old duration back.
    assert result.replace("[2m]", "[1h]").replace("[2m:10s]", "[1h:5m]") == expr


@pytest.mark.unit
def test_a_scaling_that_goes_wrong_is_an_error_not_a_rule():
    with pytest.raises(ScalingError, match="not a Prometheus duration"):
        parse_duration("5 minutes")
    with pytest.raises(ScalingError, match="cannot parse"):
        rewrite_durations("sum(increase(x[1h])", demo)


@pytest.mark.unit
def test_durations_never_reach_zero_and_keep_their_sign():
    assert divided(timedelta(seconds=10), 30) == timedelta(seconds=1)
    assert divided(timedelta(hours=-1), 30) == timedelta(minutes=-2)


@pytest.mark.unit
def test_for_group_interval_and_labels():
    document = {"groups": [{"name": "g", "interval": "1m", "rules": [
        {"alert": "A", "expr": "increase(x[1h]) > 0", "for": "15m", "keep_firing_for": "5m",
         "labels": {"severity": "critical", "window": "1h"}, "annotations": {"summary": "over [1h] offset 1w"}},
        {"record": "r:x:increase1h", "expr": "increase(x[1h])"}]}]}
    scaled = scaled_rules(document, 30, TWO_MINUTES)
    group = scaled["groups"][0]
    assert group["interval"] == "2s"
    alert, record = group["rules"]
    assert (alert["for"], alert["keep_firing_for"], alert["expr"]) == ("30s", "10s", "increase(x[2m]) > 0")
    assert alert["labels"] == {"severity": "critical", "window": "1h"}
    assert alert["annotations"] == {"summary": "over [1h] offset 1w"}
    assert record == {"record": "r:x:increase1h", "expr": "increase(x[2m])"}


@pytest.mark.unit
def test_waiting_only_leaves_the_expressions_as_committed():
    document = {"groups": [{"name": "g", "interval": "1m", "rules": [
        {"alert": "A", "expr": "increase(x[1h] offset 1w) > 0", "for": "15m"}]}]}
    (alert,) = scaled_rules(document, 30, TWO_MINUTES, windows=False)["groups"][0]["rules"]
    assert (alert["for"], alert["expr"]) == ("30s", "increase(x[1h] offset 1w) > 0")


def test_the_committed_rules_scale_and_promtool_accepts_them(tmp_path, promtool):
    sources = sorted((REPO / "alerting" / "rules").glob("*.yml"))
    written = write_scaled_rules(sources, tmp_path, 30, TWO_MINUTES)
    result = subprocess.run([promtool, "check", "rules", *map(str, written)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for source, target in zip(sources, written, strict=True):
        original, scaled = yaml.safe_load(source.read_text()), yaml.safe_load(target.read_text())
        for group, scaled_group in zip(original["groups"], scaled["groups"], strict=True):
            for rule, scaled_rule in zip(group["rules"], scaled_group["rules"], strict=True):
                assert scaled_rule.get("labels") == rule.get("labels")
                assert scaled_rule.get("annotations") == rule.get("annotations")
                if "for" in rule:
                    assert parse_duration(scaled_rule["for"]) == divided(parse_duration(rule["for"]), 30)
