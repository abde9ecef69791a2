"""The seven dashboards, one module each (as the monitoring mixins lay them out), rendered to JSON."""

from __future__ import annotations

import json

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from . import anomalies, exporter, feedback, latency, overview, retrieval, usage

MODULES = (overview, latency, usage, retrieval, feedback, anomalies, exporter)


def render() -> dict[str, str]:
    """Every dashboard as canonical JSON text, keyed by file name."""
    files = {}
    for module in MODULES:
        model = json.loads(json.dumps(module.build().build(), cls=JSONEncoder))
        model["id"] = None  # provisioning assigns ids; a fixed id would collide across Grafanas
        for number, panel in enumerate(model["panels"], start=1):
            panel["id"] = number
        files[f"{model['uid']}.json"] = json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return files
