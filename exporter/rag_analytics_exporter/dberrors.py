"""Which database errors mean the connection is gone, and which belong to one table's query."""

from __future__ import annotations

import psycopg2
import psycopg2.extensions

# Class 57P: the server ended the session (admin, crash or fast shutdown, cannot connect now,
# database dropped, idle_session_timeout). 57014 (query_canceled) is class 57 too, but it is a
# statement_timeout or a cancel: one query, not the connection.
_SESSION_ENDED = frozenset({"57P01", "57P02", "57P03", "57P04", "57P05"})


def is_connection_failure(exc: BaseException, conn: psycopg2.extensions.connection | None) -> bool:
    """True when exc means the connection is unusable (nothing more can be read on it).

    Everything else (class 53 out of disk or memory, 58 I/O errors, 40001 standby conflicts,
    42P01 a missing table, 57014 a timeout, a value psycopg2 cannot decode) is the failure of
    the query that raised it: the other tables can still be read on the same connection.
    """
    if conn is not None and conn.closed:
        return True
    if isinstance(exc, psycopg2.InterfaceError):
        return True
    if not isinstance(exc, psycopg2.Error):
        return False
    code = exc.pgcode
    if code is None:
        # No SQLSTATE: libpq itself reported it (the server closed the connection, the network broke).
        return isinstance(exc, psycopg2.OperationalError)
    return code.startswith("08") or code in _SESSION_ENDED


def first_line(exc: BaseException) -> str:
    """The first line of an error's text, named by its type when it is not a database error."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(exc, psycopg2.Error):
        return line or type(exc).__name__
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
