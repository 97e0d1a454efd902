"""Version ranges between the distributions, and scripts/bump.py, which moves them.

Each distribution requires every other chia distribution it uses in the one
compatible-range style ``>=X.Y.Z,<next-breaking`` (the next minor in 0.x, the
next major from 1.0), and that range contains the dependency's current
version. The bump tests run the script for real on a copy of the packages'
pyproject files; nothing here needs Ray. Also: each part's oldest-Ray hatch
cell pins the lower bound of its Ray requirement.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BUMP = ROOT / "scripts" / "bump.py"
PARTS = ["chia-dispatch", "chia-bypass-cache", "chia-placement", "chia-tools", "chia-ops"]

# A made-up pair of distributions with what the real files do not (yet) have:
# extras (chia-ops gets one per command group), extras and markers on a
# requirement, literal strings, an inline table, comments everywhere.
SYNTHETIC = {
    "core": """\
[project]
name = "demo-core"
version = "0.4.2"  # the version
""",
    "ops": """\
[project]
name = "demo-ops"
version = "1.0.0"
dependencies = ["demo-core>=0.4.2,<0.5", 'click>=8']  # one line

[project.optional-dependencies]
# one extra per command group that drives another part
cache = ["demo-core[cache]>=0.4.2,<0.5"]  # chia cache / chia bypass
kv = ['demo-core>=0.4,<0.5; python_version >= "3.11"']
all = [
    "demo-core[cache] >= 0.4.2, < 0.5",  # spaces, as someone wrote it
    "pyyaml",
]

[tool.example]
untouched = { also = "demo-core>=0.4.2,<0.5" }  # not a dependency table
""",
}


def pyprojects(root: Path) -> dict[str, dict[str, Any]]:
    """Every distribution's parsed pyproject.toml under ``root/packages``, by name."""
    found = {}
    for path in sorted((root / "packages").glob("*/pyproject.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        found[data["project"]["name"]] = data
    return found


def requirements(project: dict[str, Any]) -> list[tuple[str, str]]:
    """``(where, requirement as written)`` for every dependency and every extra's requirement."""
    found = [("dependencies", value) for value in project.get("dependencies", [])]
    for extra, values in project.get("optional-dependencies", {}).items():
        found += [(f"extra {extra}", value) for value in values]
    return found


def range_problems(root: Path) -> list[str]:
    """What breaks the rule; empty when every internal range is in the one style and holds the current version."""
    projects = pyprojects(root)
    versions = {canonicalize_name(name): Version(data["project"]["version"]) for name, data in projects.items()}
    problems = []
    for name, data in projects.items():
        for where, written in requirements(data["project"]):
            requirement = Requirement(written)
            dependency = canonicalize_name(requirement.name)
            if dependency not in versions:
                continue  # third-party: its own rules
            label = f"{name} ({where}) requires {written!r}"
            bounds = {spec.operator: spec.version for spec in requirement.specifier}
            if len(requirement.specifier) != 2 or set(bounds) != {">=", "<"}:
                problems.append(f"{label}: not of the form >=X.Y.Z,<next-breaking")
                continue
            lower = Version(bounds[">="])
            breaking = f"0.{lower.minor + 1}" if lower.major == 0 else f"{lower.major + 1}"
            if len(lower.release) != 3 or not written.split(";")[0].endswith(f">={lower},<{breaking}"):
                problems.append(f"{label}: the range must read >=X.Y.Z,<{breaking}")
            elif not requirement.specifier.contains(versions[dependency], prereleases=True):
                problems.append(f"{label}: the range excludes its current version {versions[dependency]}")
    meta = {canonicalize_name(Requirement(written).name) for _, written in requirements(projects["chia"]["project"])}
    problems += [f"the meta-package chia does not require {part}" for part in PARTS if part not in meta]
    return problems


def test_every_internal_range_holds_the_current_version_in_the_one_style() -> None:
    assert range_problems(ROOT) == []


# Each part's hatch `test` matrix: the newest cell runs every test; the oldest pins the lower
# bound of the part's Ray requirement (chia-dispatch's, for a part that takes Ray from it) and
# runs the tests marked ray_compat. A drifted pin, or a selection that lost its marked tests,
# would pass that cell while checking nothing about the Ray the part claims to support.
OLDEST_SELECTION = "-m 'ray_compat and not slow'"


def ray_lower_bound(projects: dict[str, dict[str, Any]], name: str) -> Version:
    for _, written in requirements(projects[name]["project"]):
        requirement = Requirement(written)
        if requirement.name == "ray" and not requirement.marker:
            (lower,) = (Version(spec.version) for spec in requirement.specifier if spec.operator == ">=")
            return lower
    return ray_lower_bound(projects, "chia-dispatch")


@pytest.mark.parametrize("part", PARTS)
def test_the_oldest_cell_pins_the_lower_bound_of_ray_and_runs_the_marked_tests(part: str) -> None:
    projects = pyprojects(ROOT)
    hatch = projects[part]["tool"]["hatch"]["envs"]["test"]
    assert hatch["matrix"] == [{"python": ["3.11"], "ray": ["oldest", "newest"]}]
    overrides = hatch["overrides"]["matrix"]["ray"]
    (pin,) = overrides["dependencies"]
    assert pin["if"] == ["oldest"]
    pinned = Requirement(pin["value"])
    assert pinned.name == "ray" and pinned.extras == {"default"}, pin
    (exact,) = pinned.specifier
    assert exact.operator == "==" and Version(exact.version) == ray_lower_bound(projects, part), pin
    assert overrides["env-vars"] == [{"key": "PYTEST_ADDOPTS", "value": OLDEST_SELECTION, "if": ["oldest"]}]


@pytest.mark.parametrize("part", PARTS)
def test_every_part_has_marked_tests_in_several_modules(part: str) -> None:
    tests = ROOT / "packages" / part / "tests"
    marked = [path.name for path in sorted(tests.glob("test_*.py")) if "pytest.mark.ray_compat" in path.read_text()]
    assert len(marked) >= 3, f"{part}: ray_compat tests only in {marked}"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of every distribution's pyproject.toml, as a repository root."""
    for source in (ROOT / "packages").glob("*/pyproject.toml"):
        target = tmp_path / "packages" / source.parent.name / "pyproject.toml"
        target.parent.mkdir(parents=True)
        shutil.copyfile(source, target)
    return tmp_path


def snapshot(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def bump(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(BUMP), *args, "--root", str(root), "--no-lock"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def requirements_on(root: Path, dist: str) -> dict[str, list[str]]:
    """For each distribution, the requirement strings (as written) naming ``dist``, dependencies and extras."""
    found = {}
    for name, data in pyprojects(root).items():
        named = [w for _, w in requirements(data["project"]) if canonicalize_name(Requirement(w).name) == dist]
        if named:
            found[name] = named
    return found


def comments(text: str) -> list[str]:
    return [line[line.index("#") :] for line in text.splitlines() if "#" in line]


def test_a_stale_range_is_caught(tree: Path) -> None:
    dispatch = tree / "packages" / "chia-dispatch" / "pyproject.toml"
    dispatch.write_text(dispatch.read_text().replace('version = "0.1.0"', 'version = "0.2.0"', 1))
    problems = range_problems(tree)
    for dependent in ["chia-bypass-cache", "chia-placement", "chia-ops", "chia"]:
        assert any(p.startswith(f"{dependent} ") and "excludes its current version 0.2.0" in p for p in problems)


def test_bump_sets_the_version_and_every_dependents_range(tree: Path) -> None:
    before = snapshot(tree)
    result = bump(tree, "chia-dispatch", "0.2.0")
    assert result.returncode == 0, result.stderr
    projects = pyprojects(tree)
    assert projects["chia-dispatch"]["project"]["version"] == "0.2.0"
    on_dispatch = requirements_on(tree, "chia-dispatch")
    assert sorted(on_dispatch) == ["chia", "chia-bypass-cache", "chia-ops", "chia-placement"]
    assert all(values == ["chia-dispatch>=0.2.0,<0.3"] for values in on_dispatch.values())
    for path, old in before.items():
        new = path.read_text(encoding="utf-8")
        assert comments(new) == comments(old.decode())
        changed = {line for line in new.splitlines() if line not in old.decode().splitlines()}
        assert all("chia-dispatch>=0.2.0,<0.3" in line or line == 'version = "0.2.0"' for line in changed), changed
    assert range_problems(tree) == []


def test_bump_rewrites_extras_keeping_their_extras_and_markers(tmp_path: Path) -> None:
    for directory, text in SYNTHETIC.items():
        (tmp_path / "packages" / directory).mkdir(parents=True)
        (tmp_path / "packages" / directory / "pyproject.toml").write_text(text)
    result = bump(tmp_path, "demo-core", "0.5.0")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "packages" / "core" / "pyproject.toml").read_text() == SYNTHETIC["core"].replace(
        "0.4.2", "0.5.0"
    )
    ops = (tmp_path / "packages" / "ops" / "pyproject.toml").read_text()
    expected = (
        SYNTHETIC["ops"]
        .replace('"demo-core>=0.4.2,<0.5", ', '"demo-core>=0.5.0,<0.6", ')
        .replace('"demo-core[cache]>=0.4.2,<0.5"]', '"demo-core[cache]>=0.5.0,<0.6"]')
        .replace("'demo-core>=0.4,<0.5; python_version", "'demo-core>=0.5.0,<0.6; python_version")
        .replace('"demo-core[cache] >= 0.4.2, < 0.5"', '"demo-core[cache]>=0.5.0,<0.6"')
    )
    assert ops == expected


def test_bump_past_one_moves_the_upper_bound_to_the_next_major(tree: Path) -> None:
    result = bump(tree, "chia-tools", "1.0.0")
    assert result.returncode == 0, result.stderr
    assert requirements_on(tree, "chia-tools") == {
        "chia": ["chia-tools>=1.0.0,<2"],
        "chia-ops": ["chia-tools>=1.0.0,<2", "chia-tools>=1.0.0,<2"],  # its [tools] and [all] extras
    }
    assert range_problems(tree) == []


def test_dry_run_prints_the_diff_and_writes_nothing(tree: Path) -> None:
    before = snapshot(tree)
    result = bump(tree, "chia-dispatch", "0.2.0", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert '-version = "0.1.0"' in result.stdout and '+version = "0.2.0"' in result.stdout
    assert '+    "chia-dispatch>=0.2.0,<0.3",' in result.stdout
    assert "+++ packages/chia/pyproject.toml" in result.stdout
    assert snapshot(tree) == before


@pytest.mark.parametrize(
    ("dist", "version", "named"),
    [
        ("chia-foo", "0.2.0", ["'chia-foo'", "chia-dispatch", "chia-ops", "chia-tools"]),
        ("chia-dispatch", "two", ["'two'", "PEP 440"]),
        ("chia-dispatch", "0.1.0", ["'0.1.0'", "current version 0.1.0"]),
        ("chia-dispatch", "0.0.9", ["'0.0.9'", "current version 0.1.0"]),
        ("chia-dispatch", "0.2", ["'0.2'", "X.Y.Z"]),
        ("chia-dispatch", "0.2.0+local", ["'0.2.0+local'", "X.Y.Z"]),
    ],
)
def test_bad_input_is_refused_naming_it(tree: Path, dist: str, version: str, named: list[str]) -> None:
    before = snapshot(tree)
    result = bump(tree, dist, version)
    assert result.returncode == 2
    assert all(text in result.stderr for text in named), result.stderr
    assert snapshot(tree) == before


def test_a_file_it_cannot_edit_stops_the_bump_before_any_write(tree: Path) -> None:
    # chia-placement sorts after chia-bypass-cache: the latter must stay untouched too.
    placement = tree / "packages" / "chia-placement" / "pyproject.toml"
    text = placement.read_text().replace('"chia-dispatch>=0.1.0,<0.2"', '"chia-dispatch @ file:///elsewhere"')
    placement.write_text(text)
    before = snapshot(tree)
    result = bump(tree, "chia-dispatch", "0.2.0")
    assert result.returncode == 2
    assert str(placement) in result.stderr and "by URL" in result.stderr
    assert snapshot(tree) == before
