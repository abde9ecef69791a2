"""RAG Token Usage & Cost: daily tokens and cost, budgets and burn rate, per model or for all."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db

from ..promql import by_deployment
from .common import (
    LAST_HOUR,
    OVER_TIME,
    PER_DAY,
    RANGE_DAYS,
    TODAY,
    Column,
    T,
    about,
    daily,
    grid,
    hourly,
    hourly_level,
    legend,
    link,
    m,
    new_dashboard,
    q,
    query_variable,
    series,
    single,
    to_model,
    v,
)


def build() -> Any:
    d = new_dashboard("usage", "RAG Token Usage & Cost",
                      "Daily prompt and completion tokens, estimated cost, budgets and burn rate, per model or "
                      "for all. Replaces the old page's token usage trends and summary.")
    d = d.with_variable(query_variable("model", "Model", "rag_model_tokens"))
    sel, prompt, completion = 'model=~"$model"', 'token_type="prompt"', 'token_type="completion"'

    def over_range(metric: str, *matchers: str, function: str = "sum_over_time") -> str:
        """Per deployment, each complete day's total summed (or averaged) over the dashboard's range.

        The subquery's steps are midnights UTC in the past, and a day's counts only grow until midnight
        (the tables' contract), so a day's total is its last sample: last_over_time(x[1h]) at midnight
        reads one hour of samples where max_over_time(x[1d]) read the day's 5,760 (at a 15 s scrape).
        At 90 days this dashboard went from 1.33 s to 0.77 s on Prometheus (bench/dashboards.py).
        """
        return f"{function}({by_deployment('sum', hourly(metric, sel, *matchers))}[$__range:1d])"

    tokens = over_range("rag_model_tokens")
    d = d.with_row(db.Row("Summary of the complete days in the time range"))
    for panel in (
        single("Total tokens", "short", q(tokens, legend(), instant=True),
               description=about("Prompt + completion tokens of the selected models", "token_usage_daily",
                                 RANGE_DAYS)),
        single("Prompt share of tokens", "percentunit",
               q(f"{over_range('rag_model_tokens', prompt)} / {tokens}", legend(), instant=True),
               description=about("Prompt tokens / all tokens", "token_usage_daily", RANGE_DAYS)),
        single("Completion share of tokens", "percentunit",
               q(f"{over_range('rag_model_tokens', completion)} / {tokens}", legend(), instant=True),
               description=about("Completion tokens / all tokens", "token_usage_daily", RANGE_DAYS)),
        single("Total cost", "currencyUSD", q(over_range("rag_model_cost_usd"), legend(), instant=True),
               description=about("Estimated LLM cost of the selected models", "token_usage_daily", RANGE_DAYS)),
        single("Average daily tokens", "short",
               q(over_range("rag_model_tokens", function="avg_over_time"), legend(), instant=True),
               description=about("Mean of the days' prompt + completion tokens", "token_usage_daily", RANGE_DAYS)),
        single("Tokens today", "short", q(by_deployment("sum", v("rag_model_tokens", sel)), legend(), instant=True),
               description=about("Prompt + completion tokens of the selected models", "token_usage_daily", TODAY)),
    ):
        d = d.with_panel(panel)
    d = d.with_row(db.Row("Per day"))
    d = d.with_panel(series("Daily tokens: prompt vs completion", "short",
                            q(by_deployment("sum", daily("rag_model_tokens", sel), "token_type"),
                              legend("{{token_type}}")),
                            description=about("Prompt and completion tokens of the selected models, stacked",
                                              "token_usage_daily", PER_DAY),
                            values=True, bars=True, stacked=True, interval="1d"))
    d = d.with_panel(series("Estimated cost per day per model", "currencyUSD",
                            q(daily("rag_model_cost_usd", sel), legend("{{model}}")),
                            description=about("Estimated cost per model, stacked", "token_usage_daily", PER_DAY),
                            links=[to_model()], bars=True, stacked=True, interval="1d"))
    d = d.with_row(db.Row("Today"))
    d = d.with_panel(series(
        "Cost today against the daily budget", "currencyUSD",
        q(hourly("rag_model_cost_usd", sel), legend("{{model}}")),
        q(hourly("rag_model_cost_budget_usd", sel), legend("{{model}} budget")),
        description=about("Each model's cost so far that day and its budget (dashed, an exporter setting); "
                          "RagModelCostBudgetExceeded fires when the cost passes the budget",
                          "token_usage_daily", OVER_TIME),
        links=[to_model()], dashed=".* budget"))
    d = d.with_panel(series(
        "Token burn rate (last hour, per day)", "short",
        # A recording rule: already one series per deployment and model.
        q(f"last_over_time({m('model:rag_model_tokens:burn_rate1h_per_day', sel)}[$__interval])", legend("{{model}}")),
        q(f"{hourly_level('rag_model_tokens_baseline_level', 'rag_model_tokens_baseline_mean', sel)}"
          f" * {T['token_runaway_factor']:g}",
          legend("{{model}} runaway threshold")),
        description=about("The last hour's tokens scaled to a day (live only); RagModelTokenRunaway fires above "
                          "the dashed line, the baseline daily level times the runaway factor",
                          "recording rule model:rag_model_tokens:burn_rate1h_per_day", LAST_HOUR),
        values=True, links=[to_model()], dashed=".* runaway threshold"))
    d = d.with_panel(grid(
        "Models today",
        Column("Tokens", by_deployment("sum", v("rag_model_tokens", sel), "model"), "short"),
        Column("LLM calls", by_deployment("max", v("rag_model_requests", sel), "model"), "locale"),
        Column("Estimated cost", by_deployment("max", v("rag_model_cost_usd", sel), "model"), "currencyUSD"),
        description=about("Per model: prompt + completion tokens, LLM calls and estimated cost",
                          "token_usage_daily", TODAY),
        keys={"model": "Model"},
        links={"Model": link("usage", "Open this model's tokens and cost", model="${__value.raw}")}))
    return d
