"""Guards each package's Ray matrix: the oldest cell tests the oldest Ray the package accepts, on the marked tests.

The newest cell runs every test. The oldest cell pins the lower bound of the
package's Ray requirement and runs `-m 'ray_compat and not slow'`: a package
whose marked tests vanished, or whose pin drifted from its requirement, would
pass that cell while checking nothing about the Ray it claims to support.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = ["chia-dispatch", "chia-bypass-cache", "chia-placement", "chia-tools", "chia-ops"]
OLDEST_SELECTION = "-m 'ray_compat and not slow'"


def pyproject(dist: str) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "packages" / dist / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def ray_lower_bound(dist: str) -> str:
    """The lower bound of the Ray requirement of ``dist``, or of chia-dispatch's when ``dist`` takes Ray from it."""
    for requirement in pyproject(dist)["project"]["dependencies"]:
        found = re.fullmatch(r"ray(\[[a-z,]+\])?>=([0-9.]+),<[0-9]+", requirement)
        if found:
            return found.group(2)
    return ray_lower_bound("chia-dispatch")


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_the_oldest_cell_pins_the_lower_bound_and_runs_the_marked_tests(dist: str) -> None:
    hatch = pyproject(dist)["tool"]["hatch"]["envs"]["test"]
    assert hatch["matrix"] == [{"python": ["3.11"], "ray": ["oldest", "newest"]}]
    overrides = hatch["overrides"]["matrix"]["ray"]
    (pin,) = overrides["dependencies"]
    assert pin["if"] == ["oldest"]
    assert re.fullmatch(r"ray\[default\]==([0-9.]+)", pin["value"]), pin
    assert pin["value"].split("==")[1] in {ray_lower_bound(dist), ray_lower_bound(dist) + ".0"}
    assert overrides["env-vars"] == [{"key": "PYTEST_ADDOPTS", "value": OLDEST_SELECTION, "if": ["oldest"]}]


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_every_package_has_marked_tests_in_several_modules(dist: str) -> None:
    tests = ROOT / "packages" / dist / "tests"
    marked = [path.name for path in sorted(tests.glob("test_*.py")) if "pytest.mark.ray_compat" in path.read_text()]
    assert len(marked) >= 3, f"{dist}: ray_compat tests only in {marked}"
