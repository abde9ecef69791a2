-- Least-privilege role for the exporter. Run as a superuser or the tables' owner:
--   psql -v exporter_role=rag_exporter -v schema=public -f readonly-role.sql "$ADMIN_DSN"
-- then set its password out of band:  \password rag_exporter
-- It may SELECT the seven aggregate tables (or the views of docs/tables.md) in `schema` and nothing else,
-- reads them through its search_path, and every session it opens is read-only and cannot hold a statement
-- or a lock for long. The first error stops the script, and psql exits non-zero with it.

\set ON_ERROR_STOP on

\if :{?exporter_role}
\else
  \set exporter_role rag_exporter
\endif
\if :{?schema}
\else
  \set schema public
\endif

SELECT format('CREATE ROLE %I LOGIN', :'exporter_role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'exporter_role') \gexec

ALTER ROLE :"exporter_role" NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE :"exporter_role" CONNECTION LIMIT 3;
ALTER ROLE :"exporter_role" SET default_transaction_read_only = on;
ALTER ROLE :"exporter_role" SET statement_timeout = '10s';
ALTER ROLE :"exporter_role" SET lock_timeout = '2s';
ALTER ROLE :"exporter_role" SET idle_in_transaction_session_timeout = '60s';
-- The exporter names the tables without a schema.
ALTER ROLE :"exporter_role" SET search_path = :"schema";

SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'exporter_role') \gexec
GRANT USAGE ON SCHEMA :"schema" TO :"exporter_role";
GRANT SELECT ON
    :"schema".latency_metrics,
    :"schema".token_usage_daily,
    :"schema".citation_daily,
    :"schema".chunk_retrieval_stats,
    :"schema".feedback_daily,
    :"schema".feedback_tags_daily,
    :"schema".follow_up_patterns_daily
TO :"exporter_role";
