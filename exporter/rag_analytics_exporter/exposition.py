"""The encoded /metrics body, rendered once per snapshot (gzip included)."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterable
from datetime import date

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from .collectors import build_registry
from .snapshot import Snapshot


class Exposition:
    """The encoded /metrics body: snapshot families cached per snapshot, live families on each scrape.

    live: collectors rendered on each scrape besides the process ones (the HTTP layer's counters).
    """

    def __init__(self, source: Callable[[], Snapshot], clock: Callable[[], float] = time.time,
                 live: Iterable[Collector] = ()):
        self._source = source
        self._clock = clock
        # (snapshot, view key, raw, gzip), replaced whole in one assignment: readers never lock,
        # and a scrape never waits for another thread's render.
        self._cache: tuple[Snapshot, tuple[tuple[str, ...], date], bytes, bytes] | None = None
        # Process figures change every second, so they are rendered on each scrape;
        # they are small enough that this costs a fraction of a millisecond.
        self._live = CollectorRegistry(auto_describe=False)
        for make in (ProcessCollector, PlatformCollector, GCCollector):
            make(registry=self._live)
        for collector in live:
            self._live.register(collector)

    def _cached(self) -> tuple[bytes, bytes]:
        snapshot = self._source()
        now = self._clock()
        key = snapshot.view(now).key
        cache = self._cache
        if cache is None or cache[0] is not snapshot or cache[1] != key:
            raw = generate_latest(build_registry(lambda: snapshot, lambda: now))
            cache = (snapshot, key, raw, gzip.compress(raw, compresslevel=6))
            self._cache = cache
        return cache[2], cache[3]

    def warm(self) -> None:
        """Render the current snapshot now (from the refresh thread), so no scrape pays for it."""
        self._cached()

    def body(self, gzipped: bool) -> bytes:
        """The full exposition, as one gzip stream of two members when gzipped (RFC 1952 allows it)."""
        raw, packed = self._cached()
        live = generate_latest(self._live)
        if gzipped:
            return packed + gzip.compress(live, compresslevel=1)
        return raw + live
