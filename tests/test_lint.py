"""The code passes the project's ruff rules (pyproject.toml), so style drift fails CI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.unit


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "exporter", "tests", "bench", "mixin", "deploy"],
                            cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
