"""Shared dashboard pieces: the datasource and deployment variables, query shapes and panel builders.

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

from typing import Any

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, table, timeseries
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
)
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


def daily(metric: str, *matchers: str) -> str:
    return v(metric, *matchers, over="max_over_time(%s[1d])")


def legend(text: str = "") -> str:
    return f"{DEPLOYMENT_LEGEND} {text}".strip()


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


def thresholds(*steps: tuple[float | None, str]) -> Any:
    return db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(value=value, color=color) for value, color in steps])


def red_above(value: float) -> Any:
    return thresholds((None, "green"), (value, "red"))


def series(title: str, unit: str, *queries: Any, description: str = "", w: int = 12, h: int = 8,
           bars: bool = False, stacked: bool = False, interval: str | None = None, hidden: str | None = None,
           dashed: str | None = None, lines: list[tuple[float, str]] | None = None) -> Any:
    """A time series panel. hidden: a regex of series shown in the tooltip only; dashed: series drawn dashed;
    lines: alert thresholds drawn as dashed horizontal lines across the whole range (value, colour)."""
    panel = (timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
             .height(h).span(w).fill_opacity(60 if bars else 10)
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


def single(title: str, unit: str, query: Any, description: str = "", w: int = 4, h: int = 4,
           thresholds: Any = None) -> Any:
    """A stat panel: one value per deployment (or replica), side by side."""
    panel = (stat.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE).height(h).span(w)
             .graph_mode(common.BigValueGraphMode.NONE))
    if thresholds is not None:
        panel = panel.thresholds(thresholds).color_mode(common.BigValueColorMode.BACKGROUND)
    return _targets(panel, [query])


def bars(title: str, unit: str, *queries: Any, description: str = "", w: int = 12, h: int = 8) -> Any:
    panel = (bargauge.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE).height(h)
             .span(w).orientation(common.VizOrientation.HORIZONTAL).display_mode(common.BarGaugeDisplayMode.GRADIENT))
    return _targets(panel, list(queries))


def grid(title: str, *queries: Any, description: str = "", w: int = 24, h: int = 8,
         units: dict[str, str] | None = None, hide: tuple[str, ...] = ("job", "instance")) -> Any:
    """A table of instant queries merged on their labels; units by column regex; `hide`: columns left out."""
    excluded = {"Time": True, "__name__": True} | {name: True for name in hide}
    panel = (table.Panel().title(title).description(description).datasource(DATASOURCE).height(h).span(w)
             .unit("short").with_transformation(DataTransformerConfig(id_val="merge", options={}))
             .with_transformation(DataTransformerConfig(id_val="organize", options={"excludeByName": excluded})))
    for column, unit in (units or {}).items():
        panel = panel.override_by_regexp(column, [DynamicConfigValue(id_val="unit", value=unit)])
    return _targets(panel, list(queries))


def query_variable(name: str, label: str, metric: str) -> Any:
    """A variable of the label values of a metric in the selected deployments."""
    return (db.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query(f"label_values({m(metric)}, {name})").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True).include_all(True).sort(1))


def deployment_variables() -> list[Any]:
    """The datasource variable (default: the provisioned one) and one variable per deployment label,
    each chained to the ones before it. All is `.*`, which also matches series without the label,
    so a Prometheus that scrapes one unlabelled exporter shows it with no setup."""
    variables = [db.DatasourceVariable("datasource").label("Data source").type("prometheus")
                 .current(VariableOption(text="Prometheus (RAG)", value=CONFIG.datasource_uid, selected=True))]
    before: list[str] = []
    for label in CONFIG.deployment_labels:
        scope = selector("up", *(f'{name}=~"${name}"' for name in before))
        variables.append(db.QueryVariable(label).label(label.replace("_", " ").capitalize()).datasource(DATASOURCE)
                         .query(f"label_values({scope}, {label})").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
                         .multi(True).include_all(True).all_value(".*").sort(1)
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
