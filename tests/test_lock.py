"""constraints.txt, the locked test and demo environment, covers what pyproject.toml asks for."""

from __future__ import annotations

import re

import pytest
import tomllib
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import REPO

pytestmark = pytest.mark.unit


def pins() -> dict[str, list[tuple[Version, Marker | None]]]:
    """Package -> its pinned versions, each with the marker saying for which Pythons or platforms."""
    found: dict[str, list[tuple[Version, Marker | None]]] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            [spec] = requirement.specifier
            assert spec.operator == "==", line
            found.setdefault(canonicalize_name(requirement.name), []).append((Version(spec.version),
                                                                                requirement.marker))
    return found


def test_every_requirement_of_the_test_and_demo_environment_is_pinned_within_its_range():
    # A range changed in pyproject.toml without ./scripts/lock fails here, not at a newcomer's setup.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = [Requirement(r) for r in [*project["dependencies"], *extras["generate"], *extras["test"]]]
    locked = pins()
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name == canonicalize_name(project["name"]):
            continue
        assert name in locked, f"{requirement.name} is not in constraints.txt: run ./scripts/lock"
        for version, _ in locked[name]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"constraints.txt pins {requirement.name} {version}, outside pyproject.toml's {requirement.specifier}:"
                " run ./scripts/lock")


def test_the_lock_pins_one_version_per_environment():
    for name, versions in pins().items():
        if len(versions) > 1:
            assert all(marker is not None for _, marker in versions), f"{name} pinned twice without markers"
            assert len({re.sub(r"\s", "", str(m)) for _, m in versions}) == len(versions), name
