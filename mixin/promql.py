"""PromQL shapes shared by the rules and the dashboards, built from mixin.config.CONFIG."""

from __future__ import annotations

from .config import CONFIG

DEPLOYMENT = ", ".join(CONFIG.deployment_labels)
REPLICA = ", ".join(CONFIG.replica_labels)
# Dashboards scope every query by one variable per deployment label, named like the label.
DEPLOYMENT_VARIABLES = ", ".join(f'{label}=~"${label}"' for label in CONFIG.deployment_labels)


def selector(metric: str, *matchers: str, scoped: bool = False) -> str:
    """metric{job selector, matchers}; scoped adds the dashboards' deployment variables."""
    parts = [CONFIG.selector, *([DEPLOYMENT_VARIABLES] if scoped else []), *matchers]
    return f"{metric}{{{', '.join(parts)}}}"


def one(expr: str) -> str:
    """One series per deployment where each exporter replica serves its own copy."""
    return f"max without ({REPLICA}) ({expr})"


def baseline_level(level: str, mean: str) -> str:
    """The usual day of the week (the _level gauge), or the _mean an exporter older than that gauge serves.

    In plain mode the two are equal. Without the fallback, rules deployed before the exporter would
    lose their baseline and stay silent until the new exporter was scraped."""
    return f"({one(selector(level))} or {one(selector(mean))})"


def by_deployment(aggregation: str, expr: str, *labels: str) -> str:
    """An aggregation that keeps deployments apart: `sum by (environment, rag_service, ...) (expr)`."""
    return f"{aggregation} by ({', '.join([*CONFIG.deployment_labels, *labels])}) ({expr})"
