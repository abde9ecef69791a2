# Front-door commands are ./scripts/demo and ./scripts/test; these are the same plus the benchmark.
.PHONY: demo test benchmark flood bench-dashboards generate lint types check test-fast

demo:
	./scripts/demo

test:
	./scripts/test

# Quick checks while working (./scripts/setup first). ./scripts/test runs all of them too:
# tests/test_lint.py, tests/test_types.py and tests/test_drift.py are part of the suite.
# ruff's formatter is not used: the code keeps its own aligned continuation lines.
lint:
	.venv/bin/ruff check .

# mypy over exporter/ and mixin/ with the settings in pyproject.toml's [tool.mypy].
types:
	.venv/bin/python -m mypy

# Lint, types, and the generated rules, dashboards and Kubernetes objects against mixin/.
check: lint types
	.venv/bin/python -m mixin --check

# The tests marked `unit`: no PostgreSQL, promtool, Prometheus or other binary (tests/conftest.py
# fails a unit test that reaches for one). Arguments: make test-fast PYTEST_ARGS="-k config"
test-fast:
	@basetemp=$$(mktemp -d "$${TMPDIR:-/tmp}/rag-fast.XXXXXX"); trap 'rm -rf "$$basetemp"' EXIT; \
	.venv/bin/python -m pytest -m unit -q --basetemp="$$basetemp" $(PYTEST_ARGS)

# The benchmark (not a test): peers installed here, then bench/run.py prints the figures.
# Arguments: make benchmark BENCH_ARGS="--chunks 100000 --sweep ''"
benchmark:
	./scripts/setup
	@command -v wrk >/dev/null && command -v prometheus-postgres-exporter >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		 wrk prometheus-postgres-exporter >/dev/null)
	@test -x bench/.peers/bin/query-exporter || (python3 -m venv bench/.peers && \
		bench/.peers/bin/pip install -q --disable-pip-version-check 'query-exporter==5.*' psycopg2-binary)
	.venv/bin/python bench/run.py $(BENCH_ARGS)

# Connection floods against ours and postgres_exporter (not a test): make flood FLOOD_ARGS="--bursts 3000"
flood:
	./scripts/setup
	@command -v prometheus-postgres-exporter >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-postgres-exporter >/dev/null)
	.venv/bin/python bench/flood.py $(FLOOD_ARGS)

# Dashboard load times over 7-365 days on Prometheus and VictoriaMetrics (not a test): make bench-dashboards
bench-dashboards:
	./scripts/setup
	.venv/bin/python bench/dashboards.py $(DASHBOARDS_ARGS)

# Rules and dashboards from mixin/ (one config for their selectors), and the Kubernetes objects made from them.
generate:
	.venv/bin/python -m mixin
