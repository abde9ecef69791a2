-- The seven daily aggregate tables of docs/tables.md (the contract the pipeline fills).
-- Idempotent: `rag-analytics-exporter init-db` may run it any number of times.
-- In production the pipeline's own DDL creates these; the exporter needs only the
-- names and columns, plus (for speed) the two chunk indexes at the end.

CREATE TABLE IF NOT EXISTS latency_metrics (
    date          date             NOT NULL,
    component     text             NOT NULL,
    request_count bigint           NOT NULL DEFAULT 0,
    error_count   bigint           NOT NULL DEFAULT 0,
    avg_time_ms   double precision,
    p50_time_ms   double precision,
    p90_time_ms   double precision,
    p95_time_ms   double precision,
    p99_time_ms   double precision,
    updated_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (date, component)
);

CREATE TABLE IF NOT EXISTS token_usage_daily (
    date               date           NOT NULL,
    model_name         text           NOT NULL,
    request_count      bigint         NOT NULL DEFAULT 0,
    prompt_tokens      bigint         NOT NULL DEFAULT 0,
    completion_tokens  bigint         NOT NULL DEFAULT 0,
    total_tokens       bigint         NOT NULL DEFAULT 0,
    estimated_cost_usd numeric(14, 6) NOT NULL DEFAULT 0,
    updated_at         timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (date, model_name)
);

CREATE TABLE IF NOT EXISTS citation_daily (
    date                 date        PRIMARY KEY,
    responses_total      bigint      NOT NULL DEFAULT 0,
    zero_citations       bigint      NOT NULL DEFAULT 0,
    one_citation         bigint      NOT NULL DEFAULT 0,
    two_citations        bigint      NOT NULL DEFAULT 0,
    three_plus_citations bigint      NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS chunk_retrieval_stats (
    chunk_id          text             PRIMARY KEY,
    document_id       text             NOT NULL,
    chunk_size_chars  integer,
    retrieval_count   bigint           NOT NULL DEFAULT 0,
    citation_count    bigint           NOT NULL DEFAULT 0,
    avg_relevance     double precision,
    last_retrieved_at timestamptz,
    updated_at        timestamptz      NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS feedback_daily (
    date           date        PRIMARY KEY,
    positive_count bigint      NOT NULL DEFAULT 0,
    negative_count bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS feedback_tags_daily (
    date           date        NOT NULL,
    tag            text        NOT NULL,
    positive_count bigint      NOT NULL DEFAULT 0,
    negative_count bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (date, tag)
);

CREATE TABLE IF NOT EXISTS follow_up_patterns_daily (
    date                    date             NOT NULL,
    pattern                 text             NOT NULL,
    frequency               bigint           NOT NULL DEFAULT 0,
    avg_response_time_ms    double precision,
    feedback_count          bigint           NOT NULL DEFAULT 0,
    positive_feedback_count bigint           NOT NULL DEFAULT 0,
    updated_at              timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (date, pattern)
);

-- The daily tables are read by date range, which their primary keys (date first)
-- already serve. The chunk table is large: these two let the top-N chunks and the
-- table's freshness be read without a scan.
CREATE INDEX IF NOT EXISTS chunk_retrieval_stats_retrieval_count_idx
    ON chunk_retrieval_stats (retrieval_count DESC);
CREATE INDEX IF NOT EXISTS chunk_retrieval_stats_updated_at_idx
    ON chunk_retrieval_stats (updated_at);
