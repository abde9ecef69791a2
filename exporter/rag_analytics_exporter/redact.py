"""Database error text made safe to log: no part of the password survives, whatever libpq quoted."""

from __future__ import annotations

import re
from urllib.parse import unquote

import psycopg2.extensions

REDACTED = "***"

# libpq's URI parser takes the user information to end at the first '@' or '/' (conninfo_uri_parse_options).
_URI_USERINFO = re.compile(r"^\s*postgres(?:ql)?://([^@/]*)@", re.IGNORECASE)
_URI_PASSWORD_PARAM = re.compile(r"[?&]password=([^&#]*)", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"]*"')


def redact(text: str, dsn: str, password: str | None) -> str:
    """text with every form of the password (as given, percent-decoded, quoted) replaced by ***.

    When the DSN itself cannot be parsed, libpq's message quotes the offending part of it, and that
    part may be any fragment of the password (an unterminated quote, a token after a space): every
    quoted part is then withheld, since no fragment can be told apart from the password.
    """
    for secret in sorted(_secrets(dsn, password), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    if not well_formed(dsn):
        text = _QUOTED.sub(f'"{REDACTED}"', text)
    return text


def well_formed(dsn: str) -> bool:
    """Whether libpq can parse the connection string (an empty one means the PG* variables)."""
    try:
        psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.Error:
        return False
    return True


def _secrets(dsn: str, password: str | None) -> set[str]:
    found = {password} if password else set()
    if match := _URI_USERINFO.match(dsn):
        _, colon, secret = match.group(1).partition(":")
        if colon:
            found.add(secret)
    found.update(_URI_PASSWORD_PARAM.findall(dsn))
    for value in _KEYWORD_PASSWORD.findall(dsn):
        found.add(value)
        if value.startswith("'"):
            found.add(value[1:-1])
            found.add(re.sub(r"\\(.)", r"\1", value[1:-1]))
    try:
        parsed = psycopg2.extensions.parse_dsn(dsn).get("password")
    except psycopg2.Error:
        parsed = None
    if parsed:
        found.add(parsed)
    found |= {unquote(secret) for secret in found}
    return {secret for secret in found if secret}
