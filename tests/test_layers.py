"""The package keeps its shape (docs/architecture.md): imports in one direction, no cycles, small modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.unit

PACKAGE = REPO / "exporter" / "rag_analytics_exporter"
NAME = "rag_analytics_exporter"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module the file imports, at any depth (a function-local import is still a dependency)."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            found.add(target)
            # `from . import x` names submodules as well as attributes: count those that are modules.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


GRAPH = {_module(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def _internal(module: str) -> set[str]:
    return {target for target in GRAPH[module] if target in GRAPH and target != module}


def test_the_package_has_no_import_cycle():
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(_internal(module)):
            if state.get(target) == "open":
                cycle = [*trail[trail.index(target):], target] if target in trail else [module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def _reaches(module: str, forbidden: str) -> bool:
    return any(target == forbidden or target.startswith(forbidden + ".") for target in GRAPH[module])


DATA_SIDE = ("tables", "db", "dberrors", "redact", "validate", "anomaly", "builders", "snapshot", "refresh")
SERVING_SIDE = ("collectors", "exposition", "routes", "http")


@pytest.mark.parametrize("layer", DATA_SIDE)
def test_the_data_side_knows_nothing_of_prometheus(layer):
    modules = [m for m in GRAPH if m == f"{NAME}.{layer}" or m.startswith(f"{NAME}.{layer}.")]
    assert modules, layer
    for module in modules:
        for forbidden in ("prometheus_client", f"{NAME}.collectors", f"{NAME}.exposition", f"{NAME}.http"):
            assert not _reaches(module, forbidden), f"{module} imports {forbidden}"


@pytest.mark.parametrize("layer", SERVING_SIDE)
def test_the_serving_side_never_touches_the_database(layer):
    modules = [m for m in GRAPH if m == f"{NAME}.{layer}" or m.startswith(f"{NAME}.{layer}.")]
    assert modules, layer
    for module in modules:
        for forbidden in ("psycopg2", f"{NAME}.db", f"{NAME}.refresh"):
            assert not _reaches(module, forbidden), f"{module} imports {forbidden}"


def test_the_http_server_knows_no_route():
    for module in (m for m in GRAPH if m.startswith(f"{NAME}.http")):
        for forbidden in ("routes", "exposition", "collectors", "snapshot", "config"):
            assert not _reaches(module, f"{NAME}.{forbidden}"), f"{module} imports {forbidden}"


def test_no_module_is_over_350_lines():
    # A module past this size has been doing more than one job every time we looked (issue 22).
    long = {_module(path): n for path in PACKAGE.rglob("*.py") if (n := len(path.read_text().splitlines())) > 350}
    assert not long, f"split these by what they hold: {long}"


def test_the_architecture_page_names_every_module():
    page = (REPO / "docs" / "architecture.md").read_text()
    unnamed = [m for m in GRAPH if m != NAME and f"`{m.split('.')[-1]}" not in page and "._" not in m]
    assert not unnamed, f"docs/architecture.md says nothing of {unnamed}"


def test_the_command_line_starts_without_scipy():
    # scipy.stats takes 1.6 s to import; only the robust baseline needs it (anomaly.py imports robust.py there).
    code = f"import sys, {NAME}.cli, {NAME}.app; sys.exit('scipy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
