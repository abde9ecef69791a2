"""Config: defaults, overrides, and every kind of mistake named by key (exit 2 from check-config)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conftest import any_text
from rag_analytics_exporter import config
from rag_analytics_exporter.config import ConfigError, from_mapping, load, parse_duration, resolve_password

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]


def keys_of(exc: ConfigError) -> list[str]:
    return [key for key, _ in exc.details]


def test_defaults():
    cfg = from_mapping({}, env={})
    assert cfg.refresh_interval == 60.0
    assert cfg.lookback_days == 30
    assert cfg.listen_port == 9841
    assert cfg.max_data_age == 300.0
    assert cfg.max_connections == 512  # well under the usual soft limit of 1024 open files


def test_the_example_file_is_valid_and_matches_the_defaults():
    assert load(REPO / "config.example.yml", env={}) == from_mapping({}, env={})


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("60s", 60), ("5m", 300), ("1h", 3600), (30, 30),
                                               ("2.5s", 2.5), ("1d", 86400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["abc", "-5s", "0", 0, "5 parsecs", True, None, [], "nan"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(("doc", "key", "reason"), [
    ({"refresh": {"intervall": "60s"}}, "refresh.intervall", "unknown key"),
    ({"refresher": {}}, "refresher", "unknown section"),
    ({"refresh": {"interval": "soon"}}, "refresh.interval", "duration"),
    ({"anomaly": {"lookback_days": "thirty"}}, "anomaly.lookback_days", "whole number"),
    ({"anomaly": {"lookback_days": 1}}, "anomaly.lookback_days", "between"),
    ({"limits": {"models": 1.5}}, "limits.models", "whole number"),
    ({"web": {"listen_address": "9841"}}, "web.listen_address", "HOST:PORT"),
    ({"web": {"max_connections": 0}}, "web.max_connections", "between 1 and"),
    ({"refresh": "60s"}, "refresh", "mapping"),
    ({"budgets": {"models": {"gpt-4o": "lots"}}}, "budgets.models", "number"),
    ({"anomaly": {"lookback_days": 10, "min_baseline_days": 20}}, "anomaly.min_baseline_days", "more than"),
    ({"refresh": {"interval": "60s", "max_data_age": "30s"}}, "refresh.max_data_age", "shorter"),
    ({"database": {"statement_timeout": "2m"}}, "database.statement_timeout", "shorter"),
    ({"anomaly": {"baseline": "seasonal"}}, "anomaly.baseline", "one of plain, weekday"),
    ({"anomaly": {"baseline": "weekday", "lookback_days": 10}}, "anomaly.lookback_days", "too short"),
])
def test_mistakes_name_the_key_and_the_reason(doc, key, reason):
    with pytest.raises(ConfigError) as caught:
        from_mapping(doc, env={})
    assert key in keys_of(caught.value)
    assert reason in str(caught.value)


def test_every_mistake_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        from_mapping({"refresh": {"interval": "x", "bogus": 1}, "limits": {"tags": -1}}, env={})
    assert sorted(keys_of(caught.value)) == ["limits.tags", "refresh.bogus", "refresh.interval"]


def test_environment_overrides_the_file():
    cfg = from_mapping({"refresh": {"interval": "60s"}},
                       env={"RAG_EXPORTER_REFRESH_INTERVAL": "30s", "RAG_EXPORTER_LIMITS_TAGS": "7",
                            "RAG_EXPORTER_DSN": "host=db"})
    assert cfg.refresh_interval == 30.0
    assert cfg.max_tags == 7
    assert cfg.dsn == "host=db"


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError) as caught:
        from_mapping({}, env={"RAG_EXPORTER_LIMITS_TAGS": "many"})
    assert keys_of(caught.value) == ["RAG_EXPORTER_LIMITS_TAGS"]


def test_password_from_env_or_file_but_not_both(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    cfg = from_mapping({"database": {"password_file": str(secret)}}, env={})
    assert resolve_password(cfg, env={}) == "s3cret"
    assert resolve_password(from_mapping({}, env={}), env={config.PASSWORD_ENV: "x"}) == "x"
    with pytest.raises(ConfigError) as caught:
        from_mapping({"database": {"password_file": str(secret)}}, env={config.PASSWORD_ENV: "x"})
    assert config.PASSWORD_ENV in keys_of(caught.value)


def test_unreadable_password_file_is_a_config_error(tmp_path):
    cfg = from_mapping({"database": {"password_file": str(tmp_path / "missing")}}, env={})
    with pytest.raises(ConfigError, match=r"database\.password_file"):
        resolve_password(cfg, env={})


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag_analytics_exporter.cli", *args],
                          capture_output=True, text=True, timeout=60)


def test_check_config_exits_0_on_the_example():
    result = run_cli("check-config", str(REPO / "config.example.yml"))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_config_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"refresh": {"interval": "fast"}, "limits": {"modles": 3}}))
    result = run_cli("check-config", str(bad))
    assert result.returncode == 2
    assert "refresh.interval" in result.stderr
    assert "limits.modles: unknown key" in result.stderr


def test_check_config_exits_2_on_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("refresh: [unclosed\n")
    assert run_cli("check-config", str(bad)).returncode == 2
    assert run_cli("check-config", str(tmp_path / "nope.yml")).returncode == 2


def test_serve_with_a_bad_config_exits_2_before_listening(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("web:\n  listen_address: nowhere\n")
    result = run_cli("serve", "--config", str(bad))
    assert result.returncode == 2
    assert "web.listen_address" in result.stderr


# Issue 29 item 9. Before: UnicodeDecodeError, a traceback and exit 1, for each of the three files.
@pytest.mark.parametrize("which", ["--config", "--web.config.file", "database.password_file"])
def test_a_file_that_is_not_utf8_exits_2_naming_the_file_and_the_byte(tmp_path, which):
    latin1 = tmp_path / "latin1.yml"
    latin1.write_bytes(b"# caf\xe9\nbasic_auth_users:\n")
    args = ["serve", "--dsn", "host=/nonexistent", "--web.listen-address=127.0.0.1:0"]
    if which == "database.password_file":
        args += ["--config", str(tmp_path / "config.yml")]
        (tmp_path / "config.yml").write_text(yaml.safe_dump({"database": {"password_file": str(latin1)}}))
    else:
        args += [f"{which}={latin1}"]
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{latin1}: not UTF-8 text (byte 0xe9 at offset 5)" in result.stderr, result.stderr


_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text(max_size=8),
                    st.lists(st.integers(), max_size=2))


@given(st.dictionaries(st.sampled_from(["database", "web", "refresh", "anomaly", "limits", "budgets", "bogus"]),
                       st.one_of(_values, st.dictionaries(any_text(max_size=20), _values, max_size=4)),
                       max_size=4))
def test_any_document_is_either_a_config_or_a_config_error(doc):
    try:
        cfg = from_mapping(doc, env={})
    except ConfigError as exc:
        assert exc.details and all(key and reason for key, reason in exc.details)
    else:
        assert cfg.refresh_interval > 0


# Issue 20 item 10: check-config makes every check serve makes before it listens.
@pytest.mark.parametrize(("document", "key"), [
    ({"web": {"config_file": "/nonexistent/web.yml"}}, "/nonexistent/web.yml"),
    ({"web": {"config_file": "WEB"}}, "web config basic_auth_users.u"),
    ({"database": {"dsn": "host=/tmp password='unterminated"}}, "database.dsn"),
])
def test_check_config_refuses_what_serve_refuses(tmp_path, document, key):
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({"basic_auth_users": {"u": "plaintext"}}))
    if document.get("web", {}).get("config_file") == "WEB":
        document = {"web": {"config_file": str(web)}}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(document))
    served = run_cli("serve", "--config", str(path), "--web.listen-address", "127.0.0.1:0")
    checked = run_cli("check-config", str(path))
    assert served.returncode == 2, served.stderr
    assert checked.returncode == 2, checked.stdout
    assert key in checked.stderr and key in served.stderr


# Issue 20 item 11: silent config mistakes become errors that name the variable or key, and the nearest name.
def test_a_misspelt_environment_variable_names_the_nearest_known_one(tmp_path):
    with pytest.raises(ConfigError) as caught:
        from_mapping({}, env={"RAG_EXPORTER_REFRESH_INTERVALL": "30s"})
    assert keys_of(caught.value) == ["RAG_EXPORTER_REFRESH_INTERVALL"]
    assert "did you mean RAG_EXPORTER_REFRESH_INTERVAL?" in str(caught.value)
    result = subprocess.run([sys.executable, "-m", "rag_analytics_exporter.cli", "check-config",
                             str(REPO / "config.example.yml")], capture_output=True, text=True, timeout=60,
                            env=os.environ | {"RAG_EXPORTER_REFRESH_INTERVALL": "30s"})
    assert result.returncode == 2
    assert "RAG_EXPORTER_REFRESH_INTERVALL" in result.stderr and "RAG_EXPORTER_REFRESH_INTERVAL?" in result.stderr


def test_kubernetes_service_links_are_not_mistakes():
    links = {"RAG_EXPORTER_SERVICE_HOST": "10.0.0.7", "RAG_EXPORTER_SERVICE_PORT": "9841",
             "RAG_EXPORTER_SERVICE_PORT_METRICS": "9841", "RAG_EXPORTER_PORT": "tcp://10.0.0.7:9841",
             "RAG_EXPORTER_PORT_9841_TCP": "tcp://10.0.0.7:9841", "RAG_EXPORTER_PORT_9841_TCP_ADDR": "10.0.0.7"}
    assert from_mapping({}, env=links) == from_mapping({}, env={})


def test_every_documented_variable_is_known():
    documented = set()
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "docker-compose.yml",
                 *sorted((REPO / "deploy").rglob("*.yaml"))]:
        documented |= set(re.findall(r"RAG_EXPORTER_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    assert documented - config.known_variables() == set()


def test_budgets_models_from_the_environment():
    cfg = from_mapping({"budgets": {"models": {"gpt-4o": 1}}},
                       env={"RAG_EXPORTER_BUDGETS_MODELS": '{gpt-4o: 120, "claude-3-haiku": 15.5}'})
    assert cfg.model_daily_cost_budget_usd == {"gpt-4o": 120.0, "claude-3-haiku": 15.5}
    for bad in ("gpt-4o=120", "{gpt-4o: lots}", "{a: 1, a: 2}", "[1, 2]"):
        with pytest.raises(ConfigError) as caught:
            from_mapping({}, env={"RAG_EXPORTER_BUDGETS_MODELS": bad})
        assert keys_of(caught.value) == ["RAG_EXPORTER_BUDGETS_MODELS"], bad


def test_a_key_given_twice_is_an_error_naming_it_and_both_lines(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("refresh:\n  interval: 60s\n  max_data_age: 5m\n  interval: 15s\n")
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert keys_of(caught.value) == ["refresh.interval"]
    assert "lines 2 and 4" in str(caught.value)
    path.write_text("refresh:\n  interval: 60s\nlimits:\n  tags: 5\nrefresh:\n  chunk_interval: 10m\n")
    result = run_cli("check-config", str(path))
    assert result.returncode == 2 and "refresh: given twice" in result.stderr, result.stderr
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  u: x\n  u: y\n")
    path.write_text(yaml.safe_dump({"web": {"config_file": str(web)}}))
    result = run_cli("check-config", str(path))
    assert result.returncode == 2 and "web config basic_auth_users.u: given twice" in result.stderr, result.stderr


def test_an_unknown_key_names_the_nearest_known_one():
    with pytest.raises(ConfigError) as caught:
        from_mapping({"refresh": {"intervall": "60s"}, "limit": {}}, env={})
    assert "did you mean interval?" in str(caught.value)
    assert "did you mean limits?" in str(caught.value)
