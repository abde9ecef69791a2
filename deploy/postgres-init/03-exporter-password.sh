#!/bin/sh
# Runs once, on the database's first start (docker-entrypoint-initdb.d), after the schema and
# the read-only role: gives the role its password from the environment, as a psql variable
# so that no quoting in the password can change the statement.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$EXPORTER_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
ALTER ROLE rag_exporter PASSWORD :'pw';
SQL
