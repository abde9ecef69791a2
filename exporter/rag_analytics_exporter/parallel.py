"""Work spread over processes, results in order: for CPU-bound pure functions that the GIL would serialize."""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

from threadpoolctl import threadpool_limits

T = TypeVar("T")
R = TypeVar("R")

# Items handed to each process ahead of the one whose result is awaited: enough to keep every
# process busy, few enough that a long iterable is never held whole.
AHEAD_PER_JOB = 8


def in_order(function: Callable[[T], R], items: Iterable[T], jobs: int) -> Iterator[R]:
    """function over items, results in the items' order, in `jobs` worker processes (1: in this one).
    For work of milliseconds or more per item (the backtest's windows: tens), where processes pay off;
    function and items must pickle. Items are read as the work goes, not all at once."""
    if jobs <= 1:
        with threadpool_limits(1, user_api="blas"):
            yield from map(function, items)
        return
    with ProcessPoolExecutor(jobs, initializer=_worker) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= AHEAD_PER_JOB * jobs:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def default_jobs() -> int:
    """The CPUs this process may use: its affinity and its container's CPU quota (loky.cpu_count)."""
    from loky import cpu_count  # 50 ms, for the backtest only

    return int(cpu_count())


# What the BLAS libraries read when they load: a worker started by spawn or forkserver (macOS, Python 3.14)
# loads numpy after its initializer, and scipy loads a BLAS of its own on its first import.
_ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                                      "OMP_NUM_THREADS")}


def _worker() -> None:
    # Ctrl-C is the parent's to handle: a worker ignores it and finishes the item in hand.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One BLAS thread per process: BLAS starts one per core, and its idle threads spin on the cores the
    # other workers need (two workers were no faster than one). Small matrices gain nothing from more.
    # The environment for the libraries still to load, threadpoolctl for those a fork brought loaded.
    os.environ.update(_ONE_THREAD)
    threadpool_limits(1, user_api="blas")
