"""A test marked unit (the `make test-fast` set) fails as soon as it reaches for PostgreSQL or a binary."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.unit

PROBES = '''
import pytest
from conftest import require_binary

@pytest.mark.unit
def test_unit_with_postgres(pg_server):
    pass

@pytest.mark.unit
def test_unit_with_a_binary():
    require_binary("true")

def test_unmarked_with_a_binary():
    require_binary("true")

@pytest.mark.unit
def test_plain_unit():
    pass
'''


def test_a_unit_test_needing_a_binary_fails_and_others_run(tmp_path):
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBES)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                             "-p", "no:cloudcoil", "--basetemp", str(tmp_path / "base"), "test_probe.py"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert "ERROR test_probe.py::test_unit_with_postgres" in out, out
    assert "a test marked unit uses pg_server" in out, out
    assert "FAILED test_probe.py::test_unit_with_a_binary" in out, out
    assert "a test marked unit needs true" in out, out
    assert "PASSED test_probe.py::test_unmarked_with_a_binary" in out, out
    assert "PASSED test_probe.py::test_plain_unit" in out, out
