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


def by_deployment(aggregation: str, expr: str, *labels: str) -> str:
    """An aggregation that keeps deployments apart: `sum by (environment, rag_service, ...) (expr)`."""
    return f"{aggregation} by ({', '.join([*CONFIG.deployment_labels, *labels])}) ({expr})"
