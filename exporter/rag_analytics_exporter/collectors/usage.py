"""Per-model requests, tokens, cost and cost budget of the newest day in token_usage_daily.

    # TYPE rag_model_requests gauge
    rag_model_requests{model="gpt-4o-mini"} 9120.0
    # TYPE rag_model_tokens gauge
    rag_model_tokens{model="gpt-4o-mini",token_type="prompt"} 1.31e+07
    rag_model_tokens{model="gpt-4o-mini",token_type="completion"} 2.2e+06
    # TYPE rag_model_cost_usd gauge
    rag_model_cost_usd{model="gpt-4o-mini"} 3.29
    # TYPE rag_model_cost_budget_usd gauge
    rag_model_cost_budget_usd{model="gpt-4o-mini"} 50.0
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from ..snapshot import USAGE, Snapshot, View
from ._help import gauge


def collect(snapshot: Snapshot, view: View) -> Iterator[Metric]:
    """Requests, tokens by type, cost and budget per model."""
    section = view.current(USAGE)
    if section is None:
        return
    requests = gauge(snapshot, "rag_model_requests",
                     "LLM calls to this model on the newest day, so far (token_usage_daily.request_count)", ["model"])
    tokens = gauge(snapshot, "rag_model_tokens",
                   "Tokens used by this model on the newest day, so far; token_type is prompt or completion "
                   "(token_usage_daily.prompt_tokens, completion_tokens)", ["model", "token_type"])
    cost = gauge(snapshot, "rag_model_cost_usd",
                 "Estimated cost of this model on the newest day, so far, in USD "
                 "(token_usage_daily.estimated_cost_usd)", ["model"])
    # Not table data: the budget comes from the exporter's own config, so its HELP says so instead.
    budget = GaugeMetricFamily(
        "rag_model_cost_budget_usd",
        "Daily cost budget of this model in USD, from the exporter's budgets setting "
        "(budgets.models, else budgets.default_daily_cost_usd); absent when no budget is set.",
        labels=["model"])
    for model in section.data.models:
        requests.add_metric([model.model], model.requests)
        tokens.add_metric([model.model, "prompt"], model.prompt_tokens)
        tokens.add_metric([model.model, "completion"], model.completion_tokens)
        cost.add_metric([model.model], model.cost_usd)
        if model.cost_budget_usd is not None:
            budget.add_metric([model.model], model.cost_budget_usd)
    yield from (requests, tokens, cost, budget)
