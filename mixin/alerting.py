"""The shape every generated alert shares: mixin annotations, the deployment in the text, dashboard links."""

from __future__ import annotations

from typing import Any

from .config import CONFIG

# Alert texts open with the deployment when its labels are set: "[production/support-bot] ...".
_LABELS = [f"$labels.{label}" for label in CONFIG.deployment_labels]
WHERE = (f"{{{{ if or {' '.join(_LABELS)} }}}}[{'/'.join(f'{{{{ {label} }}}}' for label in _LABELS)}] "
         "{{ end }}")


def dashboard_url(uid: str, *variables: str, deployment: bool = True) -> str:
    """A link to the dashboard showing the alert's deployment (and component, model...); deployment=False
    links to every deployment (the dashboard's defaults), for an alert whose result has no deployment labels."""
    labels = (*(CONFIG.deployment_labels if deployment else ()), *variables)
    query = "?" + "&".join(f"var-{label}={{{{ $labels.{label} }}}}" for label in labels) if labels else ""
    return (f"{{{{ with $externalLabels.grafana_url }}}}{{{{ . }}}}{{{{ else }}}}{CONFIG.grafana_url}{{{{ end }}}}"
            f"/d/{uid}/{uid}{query}")


def alert(name: str, expr: str, duration: str, severity: str, summary: str, description: str, dashboard: str,
          variables: tuple[str, ...] = (), deployment: bool = True, **labels: str) -> dict[str, Any]:
    """One alerting rule with the mixin's labels and annotations (summary, description, runbook, dashboard);
    an empty duration fires at the first evaluation that matches. deployment=False: the expression's result
    carries no deployment labels (absent()), so the dashboard link names none (pint's alerts/template)."""
    return {
        "alert": name, "expr": expr, **({"for": duration} if duration else {}),
        "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary, "description": WHERE + description,
                        "runbook_url": f"{CONFIG.runbook_url}#{name.lower()}",
                        "dashboard_url": dashboard_url(dashboard, *variables, deployment=deployment)},
    }


def percent(ratio: float) -> str:
    """0.005 -> '0.5 %', as the descriptions print a configured ratio."""
    return f"{ratio * 100:g} %"


def number(value: float) -> str:
    """A configured number as PromQL and the texts print it: 14.4, 100000, 0.072."""
    return f"{value:.10g}"
