"""Configuration: YAML file plus environment overrides, validated into a frozen object."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .anomaly import BASELINES
from .configvalues import (
    float_in,
    int_in,
    one_of,
    optional_float_in,
    optional_path,
    parse_duration,
    parse_listen_address,
    string,
)
from .score import MIN_DAYS_PER_WEEKDAY

ENV_PREFIX = "RAG_EXPORTER_"
# Kept out of the YAML on purpose: a password belongs in the environment or a file.
PASSWORD_ENV = "RAG_EXPORTER_DATABASE_PASSWORD"
DSN_ENV = f"{ENV_PREFIX}DSN"
# What Kubernetes injects for a Service named rag-exporter in the pod's namespace (service links):
# not settings, and not a mistake of the user's.
_SERVICE_LINK = re.compile(rf"^{ENV_PREFIX}(SERVICE_HOST|SERVICE_PORT(_\w+)?"
                           r"|PORT(_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$")


class ConfigError(Exception):
    """A configuration problem; each detail names the key and the reason."""

    def __init__(self, details: list[tuple[str, str]]):
        self.details = details
        super().__init__("; ".join(f"{key}: {reason}" for key, reason in details))


def nearest(name: str, known: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest known name, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class _DuplicateKey(Exception):
    def __init__(self, path: str, first_line: int, second_line: int):
        self.path, self.first_line, self.second_line = path, first_line, second_line


def _check_unique_keys(node: yaml.Node, path: str = "") -> None:
    """Raise _DuplicateKey for a mapping that names a key twice (YAML would silently keep the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            where = f"{path}.{name}" if path else str(name)
            if name is not None and name != "<<":
                if name in seen:
                    raise _DuplicateKey(where, seen[name], key.start_mark.line + 1)
                seen[name] = key.start_mark.line + 1
            _check_unique_keys(value, where)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_unique_keys(item, f"{path}[{i}]")


def parse_yaml(text: str) -> Any:
    """yaml.safe_load that refuses a key given twice in one mapping (raises _DuplicateKey)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_unique_keys(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def not_utf8(exc: UnicodeDecodeError) -> str:
    """The reason a file is refused for a byte that is not UTF-8, and where that byte is."""
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save it as UTF-8"


def load_yaml_file(path: str | Path, prefix: str = "") -> Any:
    """A YAML file's document; a file that cannot be read, does not parse or repeats a key is a ConfigError."""
    try:
        return parse_yaml(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([(str(path), not_utf8(exc))]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([(str(path), f"not valid YAML: {exc}")]) from None
    except _DuplicateKey as exc:
        raise ConfigError([(prefix + exc.path, f"given twice in {path} (lines {exc.first_line} and "
                                               f"{exc.second_line}); remove one")]) from None


def _budgets(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, str):
        # From the environment: the same mapping as in the file, written as YAML flow (or JSON).
        try:
            value = parse_yaml(value) if value.strip() else {}
        except (yaml.YAMLError, _DuplicateKey) as exc:
            detail = f"{exc.path} is given twice" if isinstance(exc, _DuplicateKey) else "not valid YAML"
            raise ValueError(f"must be a mapping such as {{gpt-4o: 120, claude-3-haiku: 15}} ({detail})") from None
        if value is None:
            return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a mapping of model name to USD per day, got {value!r}")
    number = float_in(0, 1e12)
    return {str(model): number(usd) for model, usd in value.items()}


@dataclass(frozen=True)
class Config:
    """Every setting of the exporter; durations are seconds."""

    dsn: str = ""
    password_file: str | None = None
    statement_timeout: float = 10.0
    lock_timeout: float = 2.0
    connect_timeout: float = 5.0
    application_name: str = "rag-analytics-exporter"
    listen_host: str = "0.0.0.0"
    listen_port: int = 9841
    web_config_file: str | None = None
    max_requests: int = 40
    max_connections: int = 512
    refresh_interval: float = 60.0
    chunk_refresh_interval: float = 600.0
    max_data_age: float = 300.0
    lookback_days: int = 30
    min_baseline_days: int = 7
    min_relative_spread: float = 0.01
    baseline: str = "plain"
    slo_period_days: int = 30
    max_components: int = 20
    max_models: int = 20
    max_tags: int = 50
    max_patterns: int = 20
    top_chunks: int = 10
    default_daily_cost_budget_usd: float | None = None
    model_daily_cost_budget_usd: Mapping[str, float] = field(default_factory=dict)

    @property
    def days_read(self) -> int:
        """The days before today a refresh reads of a daily table: the anomaly baseline's and the scored day,
        and the SLO period's for its exact error budget. Top-N labels rank over all of them."""
        return max(self.lookback_days + 1, self.slo_period_days - 1)


# (section, key) -> (Config field, parser). The YAML layout and the environment
# names (RAG_EXPORTER_<SECTION>_<KEY>) both come from this one table.
_SCHEMA: dict[tuple[str, str], tuple[str, Callable[[Any], Any]]] = {
    ("database", "dsn"): ("dsn", string),
    ("database", "password_file"): ("password_file", optional_path),
    ("database", "statement_timeout"): ("statement_timeout", parse_duration),
    ("database", "lock_timeout"): ("lock_timeout", parse_duration),
    ("database", "connect_timeout"): ("connect_timeout", parse_duration),
    ("database", "application_name"): ("application_name", string),
    ("web", "listen_address"): ("listen_address", parse_listen_address),
    ("web", "config_file"): ("web_config_file", optional_path),
    ("web", "max_requests"): ("max_requests", int_in(0, 100_000)),
    ("web", "max_connections"): ("max_connections", int_in(1, 1_000_000)),
    ("refresh", "interval"): ("refresh_interval", parse_duration),
    ("refresh", "chunk_interval"): ("chunk_refresh_interval", parse_duration),
    ("refresh", "max_data_age"): ("max_data_age", parse_duration),
    ("anomaly", "lookback_days"): ("lookback_days", int_in(2, 400)),
    ("anomaly", "min_baseline_days"): ("min_baseline_days", int_in(2, 400)),
    ("anomaly", "min_relative_spread"): ("min_relative_spread", float_in(0.0, 1.0)),
    ("anomaly", "baseline"): ("baseline", one_of(BASELINES)),
    ("slo", "period_days"): ("slo_period_days", int_in(1, 400)),
    ("limits", "components"): ("max_components", int_in(1, 1000)),
    ("limits", "models"): ("max_models", int_in(1, 1000)),
    ("limits", "tags"): ("max_tags", int_in(1, 1000)),
    ("limits", "patterns"): ("max_patterns", int_in(1, 1000)),
    ("limits", "top_chunks"): ("top_chunks", int_in(0, 1000)),
    ("budgets", "default_daily_cost_usd"): ("default_daily_cost_budget_usd", optional_float_in(0, 1e12)),
    ("budgets", "models"): ("model_daily_cost_budget_usd", _budgets),
}


def env_name(section: str, key: str) -> str:
    """The environment variable that overrides one config key."""
    return f"{ENV_PREFIX}{section}_{key}".upper()


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the YAML file (if any), apply environment overrides, validate everything."""
    env = os.environ if env is None else env
    raw: Any = {}
    if path is not None:
        raw = load_yaml_file(path)
        raw = {} if raw is None else raw
    return from_mapping(raw, env)


def from_mapping(raw: Any, env: Mapping[str, str]) -> Config:
    """Validate a parsed YAML document plus environment overrides into a Config."""
    errors: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([("<root>", f"must be a mapping of sections, got {type(raw).__name__}")])
    sections = {section for section, _ in _SCHEMA}
    for section, body in raw.items():
        if section not in sections:
            errors.append((str(section), f"unknown section{nearest(str(section), sections)} "
                                         f"(known: {', '.join(sorted(sections))})"))
            continue
        if body is None:
            continue
        if not isinstance(body, Mapping):
            errors.append((str(section), f"must be a mapping, got {type(body).__name__}"))
            continue
        known = sorted(key for sec, key in _SCHEMA if sec == section)
        for key, value in body.items():
            if (section, key) not in _SCHEMA:
                errors.append((f"{section}.{key}", f"unknown key{nearest(str(key), known)} "
                                                   f"(known in {section}: {', '.join(known)})"))
                continue
            _parse_into(values, errors, f"{section}.{key}", _SCHEMA[section, key], value)
    for (section, key), spec in _SCHEMA.items():
        name = env_name(section, key)
        if name in env:
            _parse_into(values, errors, name, spec, env[name])
    if DSN_ENV in env:
        values["dsn"] = env[DSN_ENV]
    errors += _unknown_variables(env)
    if "listen_address" in values:
        values["listen_host"], values["listen_port"] = values.pop("listen_address")
    if errors:
        raise ConfigError(errors)
    config = Config(**values)
    _check_combinations(config, env)
    return config


def known_variables() -> set[str]:
    """Every RAG_EXPORTER_* environment variable the exporter reads."""
    return {env_name(section, key) for section, key in _SCHEMA} | {DSN_ENV, PASSWORD_ENV}


def _unknown_variables(env: Mapping[str, str]) -> list[tuple[str, str]]:
    # A misspelt override would otherwise leave the default in force while check-config says OK.
    known = known_variables()
    return [(name, f"unknown environment variable{nearest(name, known)}; "
                   "the exporter reads RAG_EXPORTER_<SECTION>_<KEY> for every key of the config file")
            for name in sorted(env) if name.startswith(ENV_PREFIX) and name not in known
            and not _SERVICE_LINK.match(name)]


def _parse_into(values: dict[str, Any], errors: list[tuple[str, str]], where: str,
                spec: tuple[str, Callable[[Any], Any]], value: Any) -> None:
    target, parse = spec
    try:
        values[target] = parse(value)
    except ValueError as exc:
        errors.append((where, str(exc)))


def _check_combinations(config: Config, env: Mapping[str, str]) -> None:
    errors = []
    if config.baseline == "weekday" and config.lookback_days < 7 * MIN_DAYS_PER_WEEKDAY:
        errors.append(("anomaly.lookback_days", f"{config.lookback_days} is too short for anomaly.baseline weekday, "
                                                f"which needs {MIN_DAYS_PER_WEEKDAY} days of every weekday "
                                                f"(at least {7 * MIN_DAYS_PER_WEEKDAY})"))
    if config.min_baseline_days > config.lookback_days:
        errors.append(("anomaly.min_baseline_days",
                       f"{config.min_baseline_days} is more than anomaly.lookback_days ({config.lookback_days})"))
    if config.max_data_age < config.refresh_interval:
        errors.append(("refresh.max_data_age",
                       f"{config.max_data_age:g}s is shorter than refresh.interval ({config.refresh_interval:g}s): "
                       "every scrape would find the data stale"))
    if config.chunk_refresh_interval < config.refresh_interval:
        errors.append(("refresh.chunk_interval", "must not be shorter than refresh.interval"))
    if config.statement_timeout >= config.refresh_interval:
        errors.append(("database.statement_timeout",
                       f"{config.statement_timeout:g}s must be shorter than refresh.interval "
                       f"({config.refresh_interval:g}s)"))
    if PASSWORD_ENV in env and config.password_file:
        file_env = env_name("database", "password_file")
        errors.append((PASSWORD_ENV, f"set together with database.password_file ({file_env}): choose one"))
    if errors:
        raise ConfigError(errors)


def resolve_password(config: Config, env: Mapping[str, str] | None = None) -> str | None:
    """The database password from RAG_EXPORTER_DATABASE_PASSWORD or database.password_file, if any."""
    env = os.environ if env is None else env
    if config.password_file:
        try:
            return Path(config.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError([("database.password_file",
                                f"cannot read {config.password_file}: {exc.strerror}")]) from None
        except UnicodeDecodeError as exc:
            raise ConfigError([("database.password_file", f"{config.password_file}: {not_utf8(exc)}")]) from None
    return env.get(PASSWORD_ENV)
