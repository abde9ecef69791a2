"""Dashboard panel queries run the way Grafana runs them, and their results compared across servers."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterator

from conftest import REPO
from mixin.config import CONFIG
from stack import QueryAPI

# Queries that compare with a week or a day earlier read recorded series of that time, which exist
# only where the rules ran live for a week (or a day): no test stack runs that long, so these may be
# empty here, and are still compared wherever they have data. So may the traffic window's requests:
# they count only exporters that have counted the whole window (15 minutes of counter history).
NEEDS_HISTORY = re.compile(r"offset ?1[wd]\b|:increase\w+_whole\b")


def needs_history(target: dict) -> bool:
    """Whether the target reads recorded series that need more history than a test stack has."""
    return bool(NEEDS_HISTORY.search(target["expr"]))

DASHBOARDS = {path.name: json.loads(path.read_text())
              for path in sorted((REPO / "grafana" / "dashboards").glob("*.json"))}


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def escape(value: str) -> str:
    """A value as Grafana writes it into a regex matcher."""
    return re.sub(r"([\\^$.|?*+()\[\]{}-])", r"\\\\\1", value)


def interpolate(text: str, values: dict[str, str]) -> str:
    for key in sorted(values, key=len, reverse=True):  # $model before $m...
        text = text.replace(f"${key}", values[key])
    return text


def variable_choices(prometheus: QueryAPI, variable: dict, values: dict[str, str]) -> list[str]:
    """Each value a user can pick given the variables before it, plus All (a regex of them all)."""
    if variable["type"] == "custom":
        return variable["query"].split(",")
    selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]).groups()
    found = prometheus.label_values(label, interpolate(selector, values))
    assert found, f"variable {variable['name']} has no values for {values}"
    escaped = [escape(v) for v in found]
    return escaped + ([f"({'|'.join(escaped)})"] if variable.get("includeAll") else [])


def every_query(api: QueryAPI, dashboard: dict, deployment: dict[str, str]) -> Iterator[tuple[dict, dict, dict]]:
    """(panel, target, values) for every panel query of the dashboard and every choice of its own variables,
    with the deployment variables as given (their values, in the form Grafana writes them)."""
    own = [v for v in dashboard["templating"]["list"]
           if v["type"] != "datasource" and v["name"] not in CONFIG.deployment_labels]
    choices = [variable_choices(api, v, deployment) for v in own]
    for combination in itertools.product(*choices):
        values = dict(zip((v["name"] for v in own), combination, strict=True))
        for panel in panels(dashboard):
            for target in panel["targets"]:
                yield panel, target, values


Series = dict[tuple[tuple[str, str], ...], dict[float, str]]


def run(prometheus: QueryAPI, panel: dict, target: dict, values: dict[str, str], now: float,
        ceil_end: bool = True, span: tuple[float, float] | None = None) -> Series:
    """The panel query as Grafana sends it: the default 7-day range, ~30-minute steps (1 day where the panel
    says so), start floored and end ceiled to the step, $__rate_interval = step + the 30s scrape interval.
    ceil_end=False ends at the last step before now instead; span=(start, step) is another range ending at
    now (a comparison of stores whose newest seconds differ: VictoriaMetrics holds back the last
    -search.latencyOffset)."""
    step = span[1] if span else 86400 if panel.get("interval") == "1d" else 1800
    expr = interpolate(target["expr"].replace("$__rate_interval", f"{step + 30:g}s").replace("$__range", "7d")
                       .replace("$__interval", f"{step:g}s"), values)
    if target.get("instant"):
        return {tuple(sorted(r["metric"].items())): {now: r["value"][1]} for r in prometheus.query(expr, at=now)}
    start = span[0] if span else now - 7 * 86400
    end = now if span else now - now % step + (step if ceil_end else 0)
    result = prometheus.query_range(expr, start - start % step, end, step)
    return {tuple(sorted(r["metric"].items())): {t: v for t, v in r["values"]} for r in result if r["values"]}


def of_deployment(series: Series, labels: dict[str, str]) -> Series:
    return {key: points for key, points in series.items() if all((k, v) in key for k, v in labels.items())}


def differences(together: Series, alone: Series, instances: list[str], per_replica: bool,
                abs_tol: float = 1e-12) -> list[str]:
    """What differs between a deployment's series in the shared Prometheus and in its own (or between two
    stores: then `together` is one and `alone` the other)."""
    if per_replica:  # one series per replica: all of the deployment's replicas, and nobody else's
        seen = sorted({dict(key).get("instance") for key in together})
        alone_seen = sorted({dict(key).get("instance") for key in alone})
        return ([] if seen == sorted(instances) and alone_seen == instances[:1]
                else [f"replicas {seen} (alone: {alone_seen}), expected {instances}"])
    if together.keys() != alone.keys():
        return [f"series only here: {sorted(together.keys() - alone.keys())[:3]}; "
                f"only alone: {sorted(alone.keys() - together.keys())[:3]}"]
    problems = []
    for key, points in together.items():
        common = points.keys() & alone[key].keys()
        if not common:
            problems.append(f"{dict(key)}: no timestamp in common")
        for t in sorted(common):
            a, b = float(points[t]), float(alone[key][t])
            if not (math.isclose(a, b, rel_tol=1e-9, abs_tol=abs_tol) or (math.isnan(a) and math.isnan(b))):
                problems.append(f"{dict(key)} at {t}: {a} here, {b} alone")
                break
    return problems
