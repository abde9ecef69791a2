"""The quality SLOs' panels (mixin/quality.py), drawn on the dashboards of their tables: the budget left."""

from __future__ import annotations

from typing import Any

from ..config import CONFIG
from ..quality import SLOS, QualitySlo
from .common import SLO_WINDOW, about, legend, m, q, single, thresholds


def _slo(name: str) -> QualitySlo:
    return next(slo for slo in SLOS if slo.name == name)


def budget_left(name: str, source: str, w: int = 6) -> Any:
    """A stat of the share of the SLO period's error budget not yet spent, exact from the exporter's period sums."""
    slo = _slo(name)
    matcher = f'slo="{name}"'
    return single(
        f"{slo.title}: error budget left, {CONFIG.slo_period_days} days", "percentunit",
        q(f"last_over_time({m('slo:period_error_budget_remaining:ratio', matcher)}[5m])", legend(),
          instant=True),
        description=about(f"Share of the {CONFIG.slo_period_days}-day error budget of SLO {name} "
                          f"(at most {slo.budget:.0%} of the {slo.events} {slo.bad}) not yet spent; below 0 it is "
                          f"overspent. Exact from the period's sums ({', '.join(slo.period_families)}); "
                          f"{slo.alert_name} alerts on burns over hours",
                          f"recording rule over {source}", SLO_WINDOW),
        thresholds=thresholds((None, "red"), (0, "orange"), (0.25, "green")), w=w)
