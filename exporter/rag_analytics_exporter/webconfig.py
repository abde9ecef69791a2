"""The exporter-toolkit web configuration file (--web.config.file): TLS and basic auth for /metrics."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from .config import ConfigError, load_yaml_file

_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
                 "TLS13": ssl.TLSVersion.TLSv1_3}
# Go's tls.ClientAuthType names; Python's ssl cannot ask for a certificate it does not verify,
# so RequireAnyClientCert has no equivalent here.
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_OPTIONAL,
                "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL, "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}
# Keys of the toolkit's format this server cannot honour: refused rather than silently ignored.
_TLS_UNSUPPORTED = {"cert", "key", "client_ca", "client_allowed_sans", "cipher_suites", "prefer_server_cipher_suites",
                    "curve_preferences"}
_HEADERS = {"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection",
            "Strict-Transport-Security"}
_BCRYPT = re.compile(r"^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$")


@dataclass(frozen=True)
class WebConfig:
    """What the HTTP server enforces: an optional TLS context, response headers, basic auth users."""

    tls: ssl.SSLContext | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    users: Mapping[str, bytes] = field(default_factory=dict)
    # How the file looks cut short, when it does: empty (or only comments), or naming sections
    # without a value, which is what a config tool that truncates before it writes leaves behind.
    blank: str | None = None


def refusal(current: WebConfig, new: WebConfig) -> str | None:
    """Why a reload must keep current rather than apply new, or None: a blank file may not lower security
    (turn TLS off, or remove basic auth users). An intended downgrade says so in a file that is not blank,
    or takes a restart."""
    lowered = []
    if current.tls is not None and new.tls is None:
        lowered.append("turn TLS off")
    if removed := sorted(set(current.users) - set(new.users)):
        lowered.append("turn basic auth off" if not new.users else f"remove basic auth users {', '.join(removed)}")
    if not lowered or new.blank is None:
        return None
    return (f"the file {new.blank}, and applying it would {' and '.join(lowered)}; a file cut short while being "
            "written looks like this. To lower security on purpose, write the settings to keep (the users left, "
            "no tls_server_config key), or restart")


def load_web_config(path: str | Path) -> WebConfig:
    """Parse and check a web config file; every problem is a ConfigError naming the key."""
    raw = load_yaml_file(path, prefix="web config ") or {}
    if not isinstance(raw, Mapping):
        raise ConfigError([(str(path), "must be a mapping")])
    errors: list[tuple[str, str]] = []
    for key in raw:
        if key == "rate_limit":
            errors.append((key, "supported by exporter-toolkit but not by this exporter"))
        elif key not in {"tls_server_config", "http_server_config", "basic_auth_users"}:
            errors.append((str(key), "unknown key (known: tls_server_config, http_server_config, basic_auth_users)"))
    tls = _tls(raw.get("tls_server_config"), errors)
    headers = _headers(raw.get("http_server_config"), errors)
    users = _users(raw.get("basic_auth_users"), errors)
    if errors:
        raise ConfigError([(f"web config {k}", reason) for k, reason in errors])
    return WebConfig(tls=tls, headers=headers, users=users, blank=_blank(raw))


def _blank(raw: Mapping[Any, Any]) -> str | None:
    if not raw:
        return "is empty (or only comments)"
    valueless = [str(key) for key, value in raw.items() if not value]
    return f"names {', '.join(valueless)} without a value" if valueless else None


def _tls(section: Any, errors: list[tuple[str, str]]) -> ssl.SSLContext | None:
    if section is None:
        return None
    if not isinstance(section, Mapping):
        errors.append(("tls_server_config", "must be a mapping"))
        return None
    for key in section:
        if key in _TLS_UNSUPPORTED:
            errors.append((f"tls_server_config.{key}", "supported by exporter-toolkit but not by this exporter"))
        elif key not in _TLS_KEYS:
            errors.append((f"tls_server_config.{key}", f"unknown key (known: {', '.join(sorted(_TLS_KEYS))})"))
    for key in ("cert_file", "key_file"):
        if not section.get(key):
            errors.append((f"tls_server_config.{key}", "required when tls_server_config is set"))
    auth = section.get("client_auth_type", "NoClientCert")
    if auth not in _CLIENT_AUTH:
        errors.append(("tls_server_config.client_auth_type",
                       f"{auth!r} is not one of {', '.join(_CLIENT_AUTH)} (RequireAnyClientCert is not supported)"))
    elif _CLIENT_AUTH[auth] != ssl.CERT_NONE and not section.get("client_ca_file"):
        errors.append(("tls_server_config.client_ca_file", f"required with client_auth_type {auth}"))
    versions: dict[str, ssl.TLSVersion] = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = section.get(key, default)
        if name not in _TLS_VERSIONS:
            errors.append((f"tls_server_config.{key}", f"{name!r} is not one of {', '.join(_TLS_VERSIONS)}"))
        else:
            versions[key] = _TLS_VERSIONS[name]
    if errors:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = versions["min_version"]
        context.maximum_version = versions["max_version"]
        context.load_cert_chain(section["cert_file"], section["key_file"])
        context.verify_mode = _CLIENT_AUTH[auth]
        if section.get("client_ca_file"):
            context.load_verify_locations(section["client_ca_file"])
    except (OSError, ssl.SSLError, ValueError) as exc:
        errors.append(("tls_server_config", f"cannot load the certificate, key or CA: {exc}"))
        return None
    return context


def _headers(section: Any, errors: list[tuple[str, str]]) -> dict[str, str]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        errors.append(("http_server_config", "must be a mapping"))
        return {}
    headers: dict[str, str] = {}
    for key, value in section.items():
        if key == "http2":
            continue  # accepted for compatibility: this server speaks HTTP/1.1
        if key != "headers":
            errors.append((f"http_server_config.{key}", "unknown key (known: headers, http2)"))
            continue
        for name, header in (value or {}).items():
            if name not in _HEADERS:
                errors.append((f"http_server_config.headers.{name}", f"unknown header (known: {', '.join(_HEADERS)})"))
            elif header:
                headers[name] = str(header)
    return headers


def _users(section: Any, errors: list[tuple[str, str]]) -> dict[str, bytes]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        errors.append(("basic_auth_users", "must be a mapping of user name to bcrypt hash"))
        return {}
    users = {}
    for user, hashed in section.items():
        if not isinstance(hashed, str) or not _BCRYPT.match(hashed):
            errors.append((f"basic_auth_users.{user}", "is not a bcrypt hash (htpasswd -nBC 10 \"\" | tr -d ':\\n')"))
        else:
            users[str(user)] = hashed.encode()
    return users


class BasicAuth:
    """Checks Authorization headers against bcrypt hashes; an unknown user costs as much as a known one."""

    def __init__(self, users: Mapping[str, bytes]):
        self._users = dict(users)
        # Hashing against this dummy makes "no such user" take a bcrypt's time too.
        self._dummy = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=_cost(users)))
        # bcrypt is slow on purpose; like exporter-toolkit, remember credentials that passed,
        # keyed by a digest so no password is held in memory.
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether any user is configured (else every request passes)."""
        return bool(self._users)

    def check(self, header: str | None) -> bool:
        """True when the header carries a configured user's password."""
        if not self._users:
            return True
        user, password = _parse_basic(header)
        key = hashlib.sha256(f"{user}\0".encode() + password).digest()
        with self._lock:
            if key in self._verified:
                return True
        hashed = self._users.get(user)
        ok = bcrypt.checkpw(password, hashed if hashed is not None else self._dummy) and hashed is not None
        if ok:
            with self._lock:
                self._verified.add(key)
        return ok


def _cost(users: Mapping[str, bytes]) -> int:
    costs = [int(h.split(b"$")[2]) for h in users.values()]
    return max(costs) if costs else 4


def _parse_basic(header: str | None) -> tuple[str, bytes]:
    if not header or not header.startswith("Basic "):
        return "", b""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return "", b""
    user, _, password = decoded.partition(b":")
    return user.decode("utf-8", "replace"), password
