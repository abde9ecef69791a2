"""Log lines in logfmt with UTC RFC 3339 timestamps, as Prometheus' own Go components write them."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TextIO

LOGFMT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)r"


class UTCFormatter(logging.Formatter):
    """Timestamps such as 2026-12-01T19:06:07.123Z: UTC with its offset, whatever TZ the host has."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, timezone.utc)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_handler(stream: TextIO) -> logging.Handler:
    """A handler writing logfmt lines with UTC timestamps to stream."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(UTCFormatter(LOGFMT))
    return handler
