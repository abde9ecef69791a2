"""The dashboards' style (docs/dashboards.md#style), checked on the generated JSON, which is exactly what
Grafana draws. Each rule is a function from the dashboards to a list of problems; each holds on the
committed JSON and reports a copy broken the way a hand edit or a careless builder would break it."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import pytest

from mixin.config import CONFIG
from mixin.dashboards.common import LEGEND_CALCS, SOURCES, UIDS, VALUE_UNITS, WHEN
from panels import DASHBOARDS, panels

pytestmark = pytest.mark.unit

Dashboards = dict[str, dict]
# Grafana's own data link variables (docs: configure data links, data link variables).
LINK_BUILTINS = re.compile(r"__url_time_range|__field\.labels\.\w+|__value\.(raw|text|numeric)|__data\.fields\.\w+")


def every_panel(dashboards: Dashboards):
    for d in dashboards.values():
        for panel in panels(d):
            yield d, panel, f"{d['title']} / {panel['title']}"


def legends(dashboards: Dashboards) -> list[str]:
    """Every time series and pie chart shows its legend: as a table of last, mean and max where the values
    matter (seconds, money, tokens), as a list elsewhere."""
    problems = []
    for _, panel, where in every_panel(dashboards):
        if panel["type"] not in ("timeseries", "piechart"):
            continue
        shown = (panel.get("options") or {}).get("legend") or {}
        if not shown.get("showLegend"):
            problems.append(f"{where}: legend hidden")
            continue
        if panel["type"] == "timeseries":
            unit = panel["fieldConfig"]["defaults"].get("unit")
            values = unit in VALUE_UNITS or (unit == "short" and "token" in panel["title"].lower())
            if values and (shown.get("displayMode") != "table" or not set(LEGEND_CALCS) <= set(shown.get("calcs", []))):
                problems.append(f"{where}: values matter here, legend is not a table of {LEGEND_CALCS}")
            if not values and shown.get("displayMode") != "list":
                problems.append(f"{where}: legend is not a list")
    return problems


def descriptions(dashboards: Dashboards) -> list[str]:
    """Every panel says what it shows, from which table (or series) and for which day."""
    problems = []
    for _, panel, where in every_panel(dashboards):
        text = panel.get("description") or ""
        if not any(source in text for source in SOURCES):
            problems.append(f"{where}: the description names no source ({text!r})")
        if not any(when in text for when in WHEN):
            problems.append(f"{where}: the description names no day or span ({text!r})")
    return problems


def units(dashboards: Dashboards) -> list[str]:
    """Every panel sets a unit and decimals, and so does every table column it names."""
    problems = []
    for _, panel, where in every_panel(dashboards):
        defaults = panel["fieldConfig"]["defaults"]
        if not defaults.get("unit") or defaults.get("decimals") is None:
            problems.append(f"{where}: unit {defaults.get('unit')!r}, decimals {defaults.get('decimals')!r}")
        if panel["type"] == "table":
            configured = {o["matcher"]["options"]: {p["id"] for p in o["properties"]}
                          for o in panel["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byName"}
            for header in value_headers(panel):
                if not {"unit", "decimals"} <= configured.get(header, set()):
                    problems.append(f"{where}: column {header!r} has no unit and decimals")
    return problems


def _transformation(panel: dict, kind: str) -> dict | None:
    return next((t["options"] for t in panel.get("transformations", []) if t["id"] == kind), None)


def value_headers(panel: dict) -> list[str]:
    """The headers of a table's value columns ("Value #A" with several queries, "Value" with one)."""
    renamed = (_transformation(panel, "organize") or {}).get("renameByName", {})
    names = ["Value"] if len(panel["targets"]) == 1 else [f"Value #{t['refId']}" for t in panel["targets"]]
    return [renamed[name] for name in names if name in renamed]


def tables(dashboards: Dashboards) -> list[str]:
    """Tables show exactly the columns they name, in order, with headers; no `Value #` anywhere."""
    problems = []
    for _, panel, where in every_panel(dashboards):
        if panel["type"] != "table":
            continue
        included = ((_transformation(panel, "filterFieldsByName") or {}).get("include") or {}).get("names")
        organize = _transformation(panel, "organize") or {}
        renamed, order = organize.get("renameByName", {}), organize.get("indexByName", {})
        if not included:
            problems.append(f"{where}: no filterFieldsByName: unnamed label columns would show")
            continue
        for name in included:
            if not renamed.get(name):
                problems.append(f"{where}: column {name!r} has no header")
            if name not in order:
                problems.append(f"{where}: column {name!r} has no place in the order")
        headers = [renamed.get(name, name) for name in included]
        if len(set(headers)) != len(headers) or any(h.startswith("Value") for h in headers):
            problems.append(f"{where}: headers {headers}")
        matched = {o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"]}
        if matched - set(headers):
            problems.append(f"{where}: overrides of columns that do not exist: {sorted(matched - set(headers))}")
    for _, panel, where in every_panel(dashboards):
        if "Value #" in json.dumps(panel["fieldConfig"]):
            problems.append(f"{where}: the field config names a `Value #` column")
    return problems


def data_links(panel: dict) -> list[dict]:
    found = list(panel["fieldConfig"]["defaults"].get("links", [])) + list(panel.get("links", []))
    for override in panel["fieldConfig"]["overrides"]:
        found += [link for p in override["properties"] if p["id"] == "links" for link in p["value"]]
    return found


def links(dashboards: Dashboards) -> list[str]:
    """Every link opens a dashboard that exists, sets only variables it has, keeps the time range, the
    datasource and the deployment variables, and uses only variables the panel's own dashboard defines."""
    by_uid = {d["uid"]: {v["name"] for v in d["templating"]["list"]} for d in dashboards.values()}
    kept = ["__url_time_range", "datasource:queryparam",
            *(f"{label}:queryparam" for label in CONFIG.deployment_labels)]
    problems = []
    for d, panel, where in every_panel(dashboards):
        own = {v["name"] for v in d["templating"]["list"]}
        for link in data_links(panel):
            url = link.get("url", "")
            path = re.fullmatch(r"/d/([\w-]+)(/[\w-]*)?", urlsplit(url).path)
            if not link.get("title") or not path or path[1] not in by_uid:
                problems.append(f"{where}: link {link.get('title')!r} to {url!r}: no such dashboard")
                continue
            target = by_uid[path[1]]
            used = re.findall(r"\$\{([^}]+)\}", url)
            for variable in used:
                name, _, form = variable.partition(":")
                if LINK_BUILTINS.fullmatch(variable):
                    continue
                if name not in own or (form == "queryparam" and name not in target):
                    problems.append(f"{where}: link to {path[1]} uses ${{{variable}}}, undefined here or there")
            if [k for k in kept if k not in used]:
                problems.append(f"{where}: link to {path[1]} drops {[k for k in kept if k not in used]}")
            for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True):
                if key.startswith("var-") and key[4:] not in target:
                    problems.append(f"{where}: link sets {key}, which {path[1]} does not have")
    return problems


def drill_downs(dashboards: Dashboards) -> list[str]:
    """Each overview stat links to a dashboard that explains it; a series, bar or table row of one
    component or model links to that component's or model's own view."""
    problems = []
    for d, panel, where in every_panel(dashboards):
        urls = [link.get("url", "") for link in data_links(panel)]
        if d["uid"] == UIDS["overview"] and panel["type"] == "stat" and not urls:
            problems.append(f"{where}: an overview stat without a link")
        formats = " ".join(t.get("legendFormat", "") for t in panel["targets"])
        keys = (_transformation(panel, "filterFieldsByName") or {}).get("include", {}).get("names", [])
        for label, uid in (("component", UIDS["latency"]), ("model", UIDS["usage"])):
            if (f"{{{{{label}}}}}" in formats or label in keys) and not any(
                    url.startswith(f"/d/{uid}") and f"var-{label}=" in url for url in urls):
                problems.append(f"{where}: one {label} per series, and no link to its own view")
    return problems


def _js_regex(pattern: str) -> tuple[re.Pattern, bool]:
    """Grafana's stringToJsRegex: /pattern/flags, or a pattern anchored at both ends."""
    match = re.fullmatch(r"/(.*)/([gimsuy]*)", pattern)
    if match:
        return re.compile(match[1]), "g" in match[2]
    return re.compile(f"^{pattern}$"), False


def display_name(panel: dict, legend_format: str, values: dict[str, str]) -> str:
    """The name Grafana shows for a series of these label values: the legend format filled in, then the
    panel's renameByRegex transformations applied in order."""
    name = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: values.get(m[1], "x"), legend_format)
    for transformation in panel.get("transformations", []):
        if transformation["id"] == "renameByRegex":
            regex, every = _js_regex(transformation["options"]["regex"])
            replacement = re.sub(r"\$(\d+)", r"\\\1", transformation["options"]["renamePattern"])
            name = regex.sub(replacement, name, count=0 if every else 1)
    return name


def blank_labels(dashboards: Dashboards) -> list[str]:
    """With the deployment labels empty (a single unlabelled deployment, as in the demo) or only one of
    them set, no legend or value name starts or ends with a blank, holds a double blank or is a lone
    separator."""
    problems = []
    cases = [dict.fromkeys(CONFIG.deployment_labels, "")] + [
        {label: ("set" if label == only else "") for label in CONFIG.deployment_labels}
        for only in CONFIG.deployment_labels]
    for _, panel, where in every_panel(dashboards):
        for target in panel["targets"]:
            if not target.get("legendFormat"):
                continue
            for values in cases:
                name = display_name(panel, target["legendFormat"], values)
                # Empty is fine: a value named by its deployment alone, with one deployment, needs no name.
                if name != name.strip() or "  " in name or (name and re.fullmatch(r"\W+", name)):
                    problems.append(f"{where}: shows {name!r} with {values}")
    return problems


def titles(dashboards: Dashboards) -> list[str]:
    """A title says what the number is: an age (`time() - timestamp`) is titled "Time since ...", a raw
    counter says since when it counts."""
    problems = []
    for _, panel, where in every_panel(dashboards):
        for target in panel["targets"]:
            if re.match(r"time\(\) - ", target["expr"]) and panel["type"] != "table" and \
                    not panel["title"].startswith("Time since"):
                problems.append(f"{where}: shows an age, titled as something else")
            if re.fullmatch(r"\w+_total\{[^}]*\}", target["expr"]) and "since" not in panel["title"]:
                problems.append(f"{where}: shows a counter's raw value without saying since when")
    return problems


RULES: dict[str, Callable[[Dashboards], list[str]]] = {
    rule.__name__: rule for rule in (legends, descriptions, units, tables, links, drill_downs, blank_labels, titles)}


@pytest.mark.parametrize("rule", RULES)
def test_the_committed_dashboards_keep_the_style(rule):
    problems = RULES[rule](DASHBOARDS)
    assert not problems, "\n".join(problems[:30])


def _panel(dashboards: Dashboards, uid: str, title: str) -> dict:
    d = next(d for d in dashboards.values() if d["uid"] == uid)
    return next(p for p in panels(d) if p["title"] == title)


def _set(path: list, value) -> Callable[[dict], None]:
    def change(panel: dict) -> None:
        node = panel
        for key in path[:-1]:
            node = node[key]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return change


def _retitle_organize(key: str, name: str, value) -> Callable[[dict], None]:
    def change(panel: dict) -> None:
        options = next(t["options"] for t in panel["transformations"] if t["id"] == "organize")
        if value is KeyError:
            del options[key][name]
        else:
            options[key][name] = value
    return change


def _link_url(old: str, new: str) -> Callable[[dict], None]:
    def change(panel: dict) -> None:
        for link in data_links(panel):
            link["url"] = link["url"].replace(old, new)
    return change


def _drop_transformations(kind: str) -> Callable[[dict], None]:
    def change(panel: dict) -> None:
        panel["transformations"] = [t for t in panel["transformations"] if t["id"] != kind]
    return change


LATENCY, USAGE, OVERVIEW, EXPORTER = UIDS["latency"], UIDS["usage"], UIDS["overview"], UIDS["exporter"]
BROKEN = [
    ("legends", OVERVIEW, "Requests per component (today so far)", _set(["options", "legend", "showLegend"], False)),
    ("legends", LATENCY, "Latency ($statistic) per component", _set(["options", "legend", "displayMode"], "list")),
    ("legends", USAGE, "Daily tokens: prompt vs completion", _set(["options", "legend", "calcs"], ["lastNotNull"])),
    ("legends", LATENCY, "Share of end-to-end mean latency", _set(["options", "legend", "showLegend"], False)),
    ("descriptions", EXPORTER, "Exporter up", _set(["description"], "")),
    ("descriptions", OVERVIEW, "Requests today", _set(["description"], "End-to-end requests, today so far.")),
    ("descriptions", OVERVIEW, "Requests today", _set(["description"], "End-to-end requests from latency_metrics.")),
    ("units", OVERVIEW, "Cost today", _set(["fieldConfig", "defaults", "unit"], KeyError)),
    ("units", OVERVIEW, "Cost today", _set(["fieldConfig", "defaults", "decimals"], KeyError)),
    ("units", USAGE, "Models today", _set(["fieldConfig", "overrides"], [])),
    ("tables", USAGE, "Models today", _retitle_organize("renameByName", "Value #B", KeyError)),
    ("tables", USAGE, "Models today", _retitle_organize("renameByName", "Value #B", "Value #B")),
    ("tables", USAGE, "Models today", _retitle_organize("indexByName", "model", KeyError)),
    ("tables", EXPORTER, "Tables", _drop_transformations("filterFieldsByName")),
    ("links", OVERVIEW, "Requests today", _link_url("/d/rag-latency", "/d/rag-latncy")),
    ("links", OVERVIEW, "Requests per component (today so far)", _link_url("var-component=", "var-componnet=")),
    ("links", OVERVIEW, "Requests today", _link_url("${environment:queryparam}", "${environmnet:queryparam}")),
    ("links", OVERVIEW, "Requests today", _link_url("&${rag_service:queryparam}", "")),
    ("drill_downs", OVERVIEW, "Cost today", _set(["fieldConfig", "defaults", "links"], [])),
    ("drill_downs", LATENCY, "Latest latency ($statistic) per component", _set(["fieldConfig", "defaults", "links"],
                                                                               [])),
    ("drill_downs", USAGE, "Models today", _set(["fieldConfig", "overrides"], [])),
    ("blank_labels", OVERVIEW, "Requests per component (today so far)", _set(["transformations"], [])),
    ("blank_labels", LATENCY, "Latest latency ($statistic) per component",
     _set(["transformations"], [{"id": "renameByRegex", "options": {"regex": r"/^\s+/g", "renamePattern": ""}}])),
    ("titles", EXPORTER, "Time since last successful refresh", _set(["title"], "Last successful refresh")),
    ("titles", EXPORTER, "Skipped refreshes since the exporter started", _set(["title"], "Skipped refreshes")),
]


@pytest.mark.parametrize(("rule", "uid", "title", "change"), BROKEN,
                         ids=[f"{rule}-{title}-{i}" for i, (rule, _, title, _) in enumerate(BROKEN)])
def test_each_rule_reports_a_broken_copy(rule, uid, title, change):
    broken = copy.deepcopy(DASHBOARDS)
    change(_panel(broken, uid, title))
    assert RULES[rule](broken), f"{rule} did not notice {title!r} broken"


def test_every_rule_has_a_broken_copy():
    assert {rule for rule, *_ in BROKEN} == set(RULES)


def test_the_helpers_refuse_a_panel_outside_the_style():
    """The builders are where the style is made: a description naming no source or no day, an empty one,
    or a unit with no decimals stops the generator, naming what is wrong."""
    from mixin.dashboards.common import TODAY, about, q, series, single

    with pytest.raises(ValueError, match="names none of"):
        about("Requests", "the requests table", TODAY)
    with pytest.raises(ValueError, match="is not one of"):
        about("Requests", "latency_metrics", "lately")
    with pytest.raises(ValueError, match="has no description"):
        single("Requests", "locale", q("up"), description=" ")
    with pytest.raises(ValueError, match="no default decimals for unit 'kbytes'"):
        series("Memory", "kbytes", q("up"), description=about("Memory", "the exporter", TODAY))
    assert about("Requests", "latency_metrics", TODAY) == "Requests. From latency_metrics; today so far."
