"""The peers' configurations: the same aggregate-table queries as a generic SQL exporter user would write them."""

from __future__ import annotations

# name -> (SQL, label columns, value columns). Each reads what the exporter reads: the newest
# day of each daily table, the chunk histogram and top 10, table freshness, and yesterday's
# z-scores against the 30 days before (the part a user of a SQL exporter must write in SQL).
QUERIES: dict[str, tuple[str, list[str], list[str]]] = {
    "latency": ("""SELECT component, avg_time_ms / 1000.0 AS mean_seconds, p50_time_ms / 1000.0 AS p50_seconds,
        p90_time_ms / 1000.0 AS p90_seconds, p95_time_ms / 1000.0 AS p95_seconds, p99_time_ms / 1000.0 AS p99_seconds,
        request_count AS requests, error_count AS errors
        FROM latency_metrics WHERE date = (SELECT max(date) FROM latency_metrics)""",
                ["component"], ["mean_seconds", "p50_seconds", "p90_seconds", "p95_seconds", "p99_seconds",
                                "requests", "errors"]),
    "usage": ("""SELECT model_name AS model, request_count AS requests, prompt_tokens, completion_tokens,
        estimated_cost_usd::float8 AS cost_usd
        FROM token_usage_daily WHERE date = (SELECT max(date) FROM token_usage_daily)""",
              ["model"], ["requests", "prompt_tokens", "completion_tokens", "cost_usd"]),
    "citations": ("""SELECT zero_citations AS zero, one_citation AS one, two_citations AS two,
        three_plus_citations AS three_plus FROM citation_daily
        WHERE date = (SELECT max(date) FROM citation_daily)""", [], ["zero", "one", "two", "three_plus"]),
    "feedback": ("""SELECT positive_count AS positive, negative_count AS negative FROM feedback_daily
        WHERE date = (SELECT max(date) FROM feedback_daily)""", [], ["positive", "negative"]),
    "tags": ("""SELECT tag, positive_count AS positive, negative_count AS negative FROM feedback_tags_daily
        WHERE date = (SELECT max(date) FROM feedback_tags_daily)""", ["tag"], ["positive", "negative"]),
    "patterns": ("""SELECT pattern, frequency, avg_response_time_ms / 1000.0 AS response_seconds,
        positive_feedback_count::float8 / NULLIF(feedback_count, 0) AS positive_ratio
        FROM follow_up_patterns_daily WHERE date = (SELECT max(date) FROM follow_up_patterns_daily)""",
                 ["pattern"], ["frequency", "response_seconds", "positive_ratio"]),
    "chunk_histogram": ("""SELECT least(floor(avg_relevance * 10)::int, 9)::text AS bucket, count(*) AS chunks,
        sum(citation_count)::float8 / NULLIF(sum(retrieval_count), 0) AS citation_ratio
        FROM chunk_retrieval_stats WHERE avg_relevance BETWEEN 0 AND 1 GROUP BY 1""",
                        ["bucket"], ["chunks", "citation_ratio"]),
    "top_chunks": ("""SELECT chunk_id, retrieval_count AS retrievals, avg_relevance AS relevance
        FROM chunk_retrieval_stats ORDER BY retrieval_count DESC LIMIT 10""",
                   ["chunk_id"], ["retrievals", "relevance"]),
    "freshness": ("""SELECT 'latency_metrics' AS tbl, extract(epoch FROM max(updated_at)) AS updated
        FROM latency_metrics
        UNION ALL SELECT 'token_usage_daily', extract(epoch FROM max(updated_at)) FROM token_usage_daily
        UNION ALL SELECT 'chunk_retrieval_stats', extract(epoch FROM max(updated_at)) FROM chunk_retrieval_stats""",
                  ["tbl"], ["updated"]),
    "latency_zscore": ("""WITH y AS (SELECT current_date - 1 AS d)
        SELECT b.component, (s.avg_time_ms - avg(b.avg_time_ms)) / NULLIF(stddev_samp(b.avg_time_ms), 0) AS zscore
        FROM latency_metrics b JOIN latency_metrics s ON s.component = b.component AND s.date = (SELECT d FROM y)
        WHERE b.date BETWEEN (SELECT d FROM y) - 30 AND (SELECT d FROM y) - 1
        GROUP BY b.component, s.avg_time_ms""", ["component"], ["zscore"]),
    "tokens_zscore": ("""WITH y AS (SELECT current_date - 1 AS d)
        SELECT b.model_name AS model,
               (s.total_tokens - avg(b.total_tokens)) / NULLIF(stddev_samp(b.total_tokens), 0) AS zscore
        FROM token_usage_daily b JOIN token_usage_daily s ON s.model_name = b.model_name AND s.date = (SELECT d FROM y)
        WHERE b.date BETWEEN (SELECT d FROM y) - 30 AND (SELECT d FROM y) - 1
        GROUP BY b.model_name, s.total_tokens""", ["model"], ["zscore"]),
}


def query_exporter_config(dsn: str, interval: int | None) -> dict:
    """query-exporter 5: every query on each scrape (interval None) or every `interval` seconds."""
    metrics, queries = {}, {}
    for name, (sql, labels, values) in QUERIES.items():
        for value in values:
            metrics[f"rag_{name}_{value}"] = {"type": "gauge", **({"labels": labels} if labels else {})}
        columns = ", ".join([*labels, *(f"{v} AS rag_{name}_{v}" for v in values)])
        query = {"databases": ["rag"], "metrics": [f"rag_{name}_{v}" for v in values],
                 "sql": f"SELECT {columns} FROM ({sql}) AS q"}
        if interval is not None:
            query["interval"] = interval
        queries[name] = query
    return {"databases": {"rag": {"dsn": dsn}}, "metrics": metrics, "queries": queries}


def postgres_exporter_queries() -> dict:
    """prometheus-postgres-exporter 0.11 --extend.query-path: run on each scrape."""
    document = {}
    for name, (sql, labels, values) in QUERIES.items():
        document[f"rag_{name}"] = {
            "query": sql,
            "metrics": [{label: {"usage": "LABEL", "description": label}} for label in labels]
            + [{value: {"usage": "GAUGE", "description": value}} for value in values],
        }
    return document
