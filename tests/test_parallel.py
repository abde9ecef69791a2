"""parallel.in_order's workers: one BLAS thread each, whatever the start method and whenever BLAS loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

# A process of its own per start method: set_start_method is once per process. The workers import this file
# (PYTHONPATH) for blas_threads, as spawn and forkserver pickle a function by its module and name.
SCRIPT = """
import multiprocessing, sys
import numpy  # loaded before the workers start, as the backtest has it: a fork copies it loaded
multiprocessing.set_start_method(sys.argv[1])
from rag_analytics_exporter.parallel import in_order
from test_parallel import blas_threads
print(list(in_order(blas_threads, range(6), 2)))
"""


def blas_threads(item: int) -> tuple[int, int]:
    """The item, and the most threads any BLAS loaded in this worker may run, scipy's own included."""
    import numpy  # noqa: F401  (spawn and forkserver load it only now, after the worker's initializer)
    import scipy.stats  # noqa: F401  (scipy's BLAS loads on its first import)
    from threadpoolctl import threadpool_info

    return item, max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_every_worker_runs_one_blas_thread_and_results_keep_their_order(method):
    # With a BLAS thread per core, the workers' idle BLAS threads spin on the cores the other workers need.
    # (On a one-core machine BLAS starts one thread anyway, and this cannot tell.)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", SCRIPT, method], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str([(i, 1) for i in range(6)])
