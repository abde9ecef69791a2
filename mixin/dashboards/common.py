"""Shared dashboard pieces: the datasource and deployment variables, query shapes and panel builders.

The panel builders (series, single, bars, pie, grid) apply the style of docs/dashboards.md#style
themselves: a description from about() is required, units get decimals, legends are shown, blank
deployment labels are trimmed from names, tables name their columns, and link() keeps the variables.

Query conventions, so that backfilled history and live data draw alike (docs/backfill.md):
* instantaneous values over time: last_over_time(x[1h]) (history has one sample an hour);
* one bar per day: max_over_time(x[1d]) with a 1-day interval (the per-day gauges restart at
  midnight UTC, so the day's maximum is its total);
* current values (stat, bar gauge, table): the raw series, instant;
* series that exist only live (exporter health, process, recording rules): max/last_over_time(x[$__interval]),
  because Grafana's last point may lie up to one step after now.
Deployments (mixin.config): every query is scoped by the deployment variables, de-duplicates exporter
replicas (`max without (instance, pod)`) before anything else, and keeps deployments apart in every
aggregation, so that selecting several deployments shows them side by side and never adds them up.
Alert thresholds come from mixin/config.py, as the alert rules' do, and are drawn as threshold lines
across the whole range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, piechart, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.piechart import PieChartLegendValues, PieChartType
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from ..config import CONFIG
from ..promql import one, selector

# Every panel and query names the datasource through the variable; the provisioned uid is only its default.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# The dashboard uids: alert annotations (dashboard_url) link to these.
UIDS = {
    "overview": "rag-overview", "latency": "rag-latency", "usage": "rag-usage", "retrieval": "rag-retrieval",
    "feedback": "rag-feedback", "anomalies": "rag-anomalies", "exporter": "rag-exporter",
}
# Legends start with the deployment, so that several selected deployments stay told apart.
DEPLOYMENT_LEGEND = " ".join(f"{{{{{label}}}}}" for label in CONFIG.deployment_labels)


# The alert thresholds the panels draw, from the config the alert rules are built from.
T = {"zscore_warning": CONFIG.zscore_warning, "zscore_critical": CONFIG.zscore_critical,
     "error_ratio": CONFIG.error_budget, "negative_feedback_ratio": CONFIG.feedback_negative_ratio,
     "token_runaway_factor": CONFIG.token_runaway_factor}


def m(metric: str, *matchers: str) -> str:
    """metric scoped to our job and the selected deployments."""
    return selector(metric, *matchers, scoped=True)


def v(metric: str, *matchers: str, over: str | None = None) -> str:
    """One series per deployment (replicas de-duplicated); over="last_over_time(%s[1h])" wraps the selector."""
    inner = m(metric, *matchers)
    return one(over % inner if over else inner)


def hourly(metric: str, *matchers: str) -> str:
    return v(metric, *matchers, over="last_over_time(%s[1h])")


def hourly_level(level: str, mean: str, *matchers: str) -> str:
    """The baseline's usual day (hourly), or the _mean an exporter older than the level gauge serves, as the rules
    read it (mixin.promql.baseline_level)."""
    return f"({hourly(level, *matchers)} or {hourly(mean, *matchers)})"


def daily(metric: str, *matchers: str) -> str:
    return v(metric, *matchers, over="max_over_time(%s[1d])")


def legend(text: str = "") -> str:
    return f"{DEPLOYMENT_LEGEND} {text}".strip()


# --- the style: every builder below applies it, so that a panel cannot be made without it ---------------

# Where a number comes from: a description names one of these (the tables of docs/tables.md, or the
# exporter's own series, or what Prometheus itself computes) ...
SOURCES = ("latency_metrics", "token_usage_daily", "citation_daily", "chunk_retrieval_stats", "feedback_daily",
           "feedback_tags_daily", "follow_up_patterns_daily", "the exporter", "Prometheus", "recording rule",
           "alert rule")
# ... and for which day or span it holds.
TODAY = "today so far"
YESTERDAY = "yesterday, scored"
PER_DAY = "one bar per UTC day, each day's final total"
OVER_TIME = "over the time range, each day's value so far at that moment"
RANGE_DAYS = "the complete UTC days in the time range"
NOW = "now"
LAST_5M = "last 5 minutes"
LAST_HOUR = "last hour"
PER_STEP = "per step of the time range"
CUMULATIVE = "the whole table, cumulative (not per day)"
WEEK_AGO = "against the same time a week ago"
SLO_WINDOW = "over the SLO window"
LIVE = "over the last minutes that the title names, from today's running totals"
WHEN = (TODAY, YESTERDAY, PER_DAY, OVER_TIME, RANGE_DAYS, NOW, LAST_5M, LAST_HOUR, PER_STEP, CUMULATIVE, WEEK_AGO,
        SLO_WINDOW, LIVE)

# Decimals by unit, so that no field is left to Grafana's guess (which changes with the value).
DECIMALS = {"s": 1, "percentunit": 1, "percent": 1, "currencyUSD": 2, "short": 1, "locale": 0, "none": 2,
            "bytes": 1, "bool_yes_no": 0, "reqps": 2}
# Legends as a table with last, mean and max where the values matter (seconds, money, and tokens: pass
# values=True); as a list elsewhere.
VALUE_UNITS = ("s", "currencyUSD")
LEGEND_CALCS = ["lastNotNull", "mean", "max"]
# Legend text starts with the deployment labels, empty in a single-deployment install (the demo): the
# display names are trimmed, and a gap left by one empty label closed, so no name starts with a blank.
TRIM_NAMES = [DataTransformerConfig(id_val="renameByRegex", options={"regex": r"/^\s+|\s+$/g", "renamePattern": ""}),
              DataTransformerConfig(id_val="renameByRegex", options={"regex": r"/\s{2,}/g", "renamePattern": " "})]
# Table headers of the deployment labels, which lead every table.
DEPLOYMENT_HEADERS = {label: label.replace("_", " ").capitalize() for label in CONFIG.deployment_labels}


def about(what: str, source: str, when: str) -> str:
    """A panel description: what it shows, from which table (or series), for which day.

    `source` names one of SOURCES (more text around it is fine); `when` is one of WHEN."""
    if not any(name in source for name in SOURCES):
        raise ValueError(f"panel description {what!r}: source {source!r} names none of {', '.join(SOURCES)}")
    if when not in WHEN:
        raise ValueError(f"panel description {what!r}: when {when!r} is not one of {', '.join(WHEN)}")
    return f"{what.rstrip('.')}. From {source}; {when}."


def _decimals(unit: str, decimals: int | None) -> int:
    if decimals is not None:
        return decimals
    if unit not in DECIMALS:
        raise ValueError(f"no default decimals for unit {unit!r}: pass decimals=")
    return DECIMALS[unit]


class DataLink:
    """A data link (Grafana's field `links`: title and url). The SDK's data_links() takes builders of
    dashboard links, whose other fields mean nothing to a data link; this builds just the two."""

    def __init__(self, title: str, url: str) -> None:
        self.title, self.url = title, url

    def build(self) -> dict[str, str]:
        return {"title": self.title, "url": self.url}


def link(key: str, title: str, **pinned: str) -> DataLink:
    """A data link to dashboard `key` that keeps the time range, the datasource and the deployment
    variables; `pinned` sets the target's own variables, e.g. component="${__field.labels.component}"."""
    kept = ["${__url_time_range}", "${datasource:queryparam}",
            *(f"${{{label}:queryparam}}" for label in CONFIG.deployment_labels)]
    params = kept + [f"var-{name}={value}" for name, value in pinned.items()]
    return DataLink(title, f"/d/{UIDS[key]}?{'&'.join(params)}")


def to_component(title: str = "Open this component's latency") -> DataLink:
    """A series or bar of one component opens the latency dashboard on that component."""
    return link("latency", title, component="${__field.labels.component}")


def to_model(title: str = "Open this model's tokens and cost") -> DataLink:
    """A series or bar of one model opens the usage dashboard on that model."""
    return link("usage", title, model="${__field.labels.model}")


def q(expr: str, legend_format: str | None = None, instant: bool = False, table_format: bool = False) -> Any:
    query = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    if legend_format:
        query = query.legend_format(legend_format)
    if instant:
        query = query.instant()
    if table_format:
        query = query.format(PromQueryFormat.TABLE)
    return query


def _targets(panel: Any, queries: list[Any]) -> Any:
    for i, query in enumerate(queries):
        panel = panel.with_target(query.ref_id(chr(ord("A") + i)))
    return panel


def _styled(panel: Any, title: str, unit: str, decimals: int | None, description: str, w: int, h: int,
            links: list[DataLink] | None, trim: bool = True) -> Any:
    """What every panel has: a description, a unit and decimals, the datasource variable, its data links."""
    if not description.strip():
        raise ValueError(f"panel {title!r} has no description")
    panel = (panel.title(title).description(description).unit(unit).decimals(_decimals(unit, decimals))
             .datasource(DATASOURCE).height(h).span(w))
    if links:
        panel = panel.data_links(links)
    for transformation in TRIM_NAMES if trim else []:
        panel = panel.with_transformation(transformation)
    return panel


def thresholds(*steps: tuple[float | None, str]) -> Any:
    return db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=value, color=color) for value, color in steps])


def red_above(value: float) -> Any:
    return thresholds((None, "green"), (value, "red"))


def series(title: str, unit: str, *queries: Any, description: str, decimals: int | None = None,
           values: bool | None = None, links: list[DataLink] | None = None, w: int = 12, h: int = 8,
           bars: bool = False, stacked: bool = False, interval: str | None = None, hidden: str | None = None,
           dashed: str | None = None, lines: list[tuple[float, str]] | None = None) -> Any:
    """A time series panel. values: legend as a table of last/mean/max (default: for seconds and money);
    hidden: a regex of series shown in the tooltip only; dashed: series drawn dashed; lines: alert
    thresholds drawn as dashed horizontal lines across the whole range (value, colour)."""
    as_table = unit in VALUE_UNITS if values is None else values
    shown = (common_builders.VizLegendOptions().show_legend(True).placement(common.LegendPlacement.BOTTOM)
             .display_mode(common.LegendDisplayMode.TABLE if as_table else common.LegendDisplayMode.LIST)
             .calcs(LEGEND_CALCS if as_table else []))
    panel = (_styled(timeseries.Panel(), title, unit, decimals, description, w, h, links)
             .fill_opacity(60 if bars else 10).legend(shown)
             .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                      .sort(common.SortOrder.DESCENDING)))
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS)
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if interval:
        panel = panel.interval(interval)
    if hidden:
        panel = panel.override_by_regexp(hidden, [DynamicConfigValue(
            id_val="custom.hideFrom", value={"viz": True, "legend": True, "tooltip": False})])
    if lines:
        # GraphTresholdsStyleMode (sic) is the SDK's own spelling.
        panel = (panel.thresholds(thresholds((None, "transparent"), *lines))
                 .thresholds_style(common_builders.GraphThresholdsStyleConfig()
                                   .mode(common.GraphTresholdsStyleMode.DASHED)))
    if dashed:
        panel = panel.override_by_regexp(dashed, [
            DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"})])
    return _targets(panel, list(queries))


def single(title: str, unit: str, query: Any, *, description: str, decimals: int | None = None,
           links: list[DataLink] | None = None, w: int = 4, h: int = 4, thresholds: Any = None) -> Any:
    """A stat panel: one value per deployment (or replica), side by side."""
    panel = _styled(stat.Panel(), title, unit, decimals, description, w, h, links).graph_mode(
        common.BigValueGraphMode.NONE)
    if thresholds is not None:
        panel = panel.thresholds(thresholds).color_mode(common.BigValueColorMode.BACKGROUND)
    return _targets(panel, [query])


def bars(title: str, unit: str, *queries: Any, description: str, decimals: int | None = None,
         links: list[DataLink] | None = None, w: int = 12, h: int = 8) -> Any:
    """A horizontal bar gauge: one bar per series, named by its legend."""
    panel = (_styled(bargauge.Panel(), title, unit, decimals, description, w, h, links)
             .orientation(common.VizOrientation.HORIZONTAL).display_mode(common.BarGaugeDisplayMode.GRADIENT))
    return _targets(panel, list(queries))


def pie(title: str, unit: str, query: Any, *, description: str, decimals: int | None = None,
        links: list[DataLink] | None = None, w: int = 12, h: int = 8) -> Any:
    """A donut of the parts of a whole, its legend on the right with each part's value and share."""
    panel = (_styled(piechart.Panel(), title, unit, decimals, description, w, h, links)
             .pie_type(PieChartType.DONUT)
             .legend(piechart.PieChartLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.TABLE)
                     .placement(common.LegendPlacement.RIGHT)
                     .values([PieChartLegendValues.VALUE, PieChartLegendValues.PERCENT])))
    return _targets(panel, [query])


@dataclass(frozen=True)
class Column:
    """One value column of a table: its header, an instant query, the unit and decimals. shown=False
    keeps the query (for its labels) and leaves its value out, e.g. ALERTS, whose value is always 1."""

    header: str
    expr: str
    unit: str
    decimals: int | None = None
    shown: bool = True


def grid(title: str, *columns: Column, description: str, keys: dict[str, str], w: int = 24, h: int = 8,
         links: dict[str, DataLink] | None = None) -> Any:
    """A table of instant queries merged on their labels, with exactly these columns in this order: the
    deployment labels, `keys` (label -> header), then one per Column. links: header -> a link on its cells."""
    values = [f"Value #{chr(ord('A') + i)}" if len(columns) > 1 else "Value" for i in range(len(columns))]
    headers = DEPLOYMENT_HEADERS | keys | {value: column.header for value, column in zip(values, columns, strict=True)
                                           if column.shown}
    panel = (_styled(table.Panel(), title, "short", None, description, w, h, None, trim=False)
             .with_transformation(DataTransformerConfig(id_val="merge", options={}))
             .with_transformation(DataTransformerConfig(id_val="filterFieldsByName",
                                                        options={"include": {"names": list(headers)}}))
             .with_transformation(DataTransformerConfig(id_val="organize", options={
                 "renameByName": headers, "indexByName": {name: i for i, name in enumerate(headers)}})))
    for column in columns:
        if column.shown:
            panel = panel.override_by_name(column.header, [
                DynamicConfigValue(id_val="unit", value=column.unit),
                DynamicConfigValue(id_val="decimals", value=_decimals(column.unit, column.decimals))])
    for header, target in (links or {}).items():
        panel = panel.override_by_name(header, [DynamicConfigValue(id_val="links", value=[target.build()])])
    return _targets(panel, [q(column.expr, instant=True, table_format=True) for column in columns])


def query_variable(name: str, label: str, metric: str) -> Any:
    """A variable of the label values of a metric in the selected deployments."""
    return (db.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query(f"label_values({m(metric)}, {name})").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True).include_all(True).sort(VariableSort.ALPHABETICAL_ASC))


def deployment_variables() -> list[Any]:
    """The datasource variable (default: the provisioned one) and one variable per deployment label,
    each chained to the ones before it. All is `.*`, which also matches series without the label,
    so a Prometheus that scrapes one unlabelled exporter shows it with no setup."""
    variables: list[Any] = [db.DatasourceVariable("datasource").label("Data source").type("prometheus")
                 .current(VariableOption(text="Prometheus (RAG)", value=CONFIG.datasource_uid, selected=True))]
    before: list[str] = []
    for label in CONFIG.deployment_labels:
        scope = selector("up", *(f'{name}=~"${name}"' for name in before))
        variables.append(db.QueryVariable(label).label(label.replace("_", " ").capitalize()).datasource(DATASOURCE)
                         .query(f"label_values({scope}, {label})").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                         .multi(True).include_all(True).all_value(".*").sort(VariableSort.ALPHABETICAL_ASC)
                         .current(VariableOption(text="All", value="$__all", selected=True)))
        before.append(label)
    return variables


def new_dashboard(key: str, title: str, description: str) -> Any:
    dashboard = (db.Dashboard(title).uid(UIDS[key]).description(description).tags(["rag", "rag-analytics-exporter"])
                 .timezone("utc").refresh("1m").time("now-7d", "now").editable()
                 .links([db.DashboardLink("RAG dashboards").type(DashboardLinkType.DASHBOARDS).tags(["rag"])
                         .as_dropdown(True).include_vars(True).keep_time(True)]))
    for variable in deployment_variables():
        dashboard = dashboard.with_variable(variable)
    return dashboard
