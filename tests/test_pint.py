"""pint (Cloudflare's rule linter, pinned in tools/versions.txt) over alerting/rules/ with the committed .pint.hcl.

Offline: syntax, templates, labels, regexes, ranges, the rules' own conventions. Online, against a
Prometheus 3 holding the demo's data (seed + 59 backfilled days + the live exporter, the committed
rules loaded): series that do not exist, `rate` on a gauge, label mismatches on both sides of a
binary operator, alerts that could never fire. Every check that is off, and every exception, is in
.pint.hcl with its reason: a finding is fixed in mixin/ or explained there, never silenced here.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from datetime import timedelta

import pytest

from conftest import REPO, one_utc_day, pinned_tool, release_binary, scratch_database
from rag_analytics_exporter.app import start_exporter
from rag_analytics_exporter.backfill import backfill
from rag_analytics_exporter.config import Config
from rag_analytics_exporter.db import init_db
from rag_analytics_exporter.seed import DemoScale, seed
from stack import Prometheus, http_json, wait_for

RULES = REPO / "alerting" / "rules"
PINT_CONFIG = REPO / ".pint.hcl"
JOB = "rag-analytics-exporter"


def pint(*flags: str, prometheus_url: str = "http://127.0.0.1:1") -> subprocess.CompletedProcess:
    """`pint lint alerting/rules` from the checkout's root (the config's paths are relative to it).

    --fail-on=warning: pint's default fails only on bugs; a warning here is a finding to fix or to
    explain in .pint.hcl. The offline run gets an address nothing listens on, which it never uses.
    """
    return subprocess.run([pinned_tool("pint"), "--no-color", f"--config={PINT_CONFIG}", *flags, "lint",
                           "--min-severity=info", "--fail-on=warning", str(RULES.relative_to(REPO))],
                          cwd=REPO, env=os.environ | {"PINT_PROMETHEUS_URL": prometheus_url},
                          capture_output=True, text=True, timeout=600)


def test_pint_offline_checks_pass():
    result = pint("--offline")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def demo_prometheus(pg_server, tmp_path_factory):
    """A Prometheus 3 with the demo's data: 60 seeded days, 59 of them backfilled, the exporter scraped live
    (its metadata is what pint reads a metric's type from) and the committed rules evaluated."""
    folder = tmp_path_factory.mktemp("pint")
    with contextlib.ExitStack() as stack:
        dsn = stack.enter_context(scratch_database(pg_server))
        init_db(dsn)
        # pint asks this Prometheus for every series the rules read, today's among them: the fixture and the
        # test must end on the day it seeded (measured 13 s at load 1 to 2.5; four times that, rounded up).
        at = one_utc_day(60)
        seed(dsn, scale=DemoScale(days=60, chunks=3000), anomalies_today=False, at=at)
        # With a daily budget, as a site that wants RagModelCostBudgetExceeded sets one: without it the
        # exporter serves no rag_model_cost_budget_usd, and pint rightly says that alert can never fire.
        config = Config(dsn=dsn, listen_host="127.0.0.1", listen_port=0, refresh_interval=1,
                        chunk_refresh_interval=1, statement_timeout=0.8, max_data_age=60,
                        default_daily_cost_budget_usd=100.0)
        exporter = start_exporter(config, None)
        stack.callback(exporter.stop)
        instance = f"127.0.0.1:{exporter.port}"
        history = folder / "history.om"
        backfill(dsn, None, config, at.date() - timedelta(days=59), history, at=at,
                 target={"job": JOB, "instance": instance})
        subprocess.run([release_binary("promtool", "pinned"), "tsdb", "create-blocks-from", "openmetrics",
                        "--max-block-duration=744h", str(history), str(folder / "prom" / "data")],
                       check=True, capture_output=True, timeout=300)
        prometheus = Prometheus(folder / "prom", instance, sorted(RULES.glob("*.yml")), interval="1s",
                                extra_args=["--storage.tsdb.retention.time=400d"], release="pinned")
        stack.callback(prometheus.stop)
        wait_for("the exporter's metadata", lambda: http_json(
            f"http://{prometheus.address}/api/v1/metadata?metric=rag_exporter_up")["data"], 60)
        wait_for("the recording rules evaluated",
                 lambda: prometheus.query("model:rag_model_tokens:burn_rate1h_per_day"), 60)
        yield prometheus


def test_pint_online_checks_pass_against_prometheus_3_with_the_demo_data(demo_prometheus):
    result = pint(prometheus_url=f"http://{demo_prometheus.address}")
    print(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
