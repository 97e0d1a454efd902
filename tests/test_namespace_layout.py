"""Guards the PEP 420 layout.

`chia` and `chia.base` are namespace packages shared by the distributions. One
stray __init__.py there would hide every other distribution's modules at run
time (mypy would not notice).
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = ["chia-dispatch", "chia-bypass-cache", "chia-placement", "chia-tools", "chia-ops"]
TEST_SUPPORT = "chia-testing"  # private; outside the chia namespace, never in the meta-package

# Every module path of the API reference, and the distribution that owns it.
REFERENCE_MODULES = {
    "chia.base.ChiaFunction": "chia-dispatch",
    "chia.base.dispatch_hooks": "chia-dispatch",
    "chia.base.dispatch_proxy": "chia-dispatch",
    "chia.base.chia_wait": "chia-dispatch",
    "chia.base.pid_registry": "chia-dispatch",
    "chia.base.bypass": "chia-bypass-cache",
    "chia.base.cache": "chia-bypass-cache",
    "chia.base.colocated": "chia-placement",
    "chia.base.chia_kv_store": "chia-placement",
    "chia.base.llm_call": "chia-tools",
    "chia.base.tools.ChiaTool": "chia-tools",
    "chia.base.tools.ChiaToolTemplate": "chia-tools",
    "chia.base.tools.BashTool": "chia-tools",
    "chia.base.tools.AsyncBashTool": "chia-tools",
    "chia.base.tools.AsyncJobTool": "chia-tools",
    "chia.base.tools.util": "chia-tools",
    "chia.trace.profiler": "chia-ops",
    "chia.trace.export": "chia-ops",
    "chia.cli.main": "chia-ops",
}


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_no_init_in_namespace_directories(dist: str) -> None:
    src = ROOT / "packages" / dist / "src"
    assert (src / "chia").is_dir()
    assert not (src / "chia" / "__init__.py").exists()
    assert not (src / "chia" / "base" / "__init__.py").exists()


# PEP 561 markers, unshared so that no two wheels ship the same path
# (uninstalling one would delete another's marker). mypy accepts the first
# py.typed on the way down from `chia/`: chia-tools' `chia/py.typed` covers
# chia.base.llm_call when it is installed alone; chia-bypass-cache and
# chia-placement sit under chia-dispatch's `chia/base/py.typed`, a hard
# dependency of both; chia-ops marks each of its two packages.
PY_TYPED: dict[str, list[str]] = {
    "chia-dispatch": ["chia/base/py.typed"],
    "chia-tools": ["chia/py.typed"],
    "chia-ops": ["chia/cli/py.typed", "chia/trace/py.typed"],
    "chia-bypass-cache": [],
    "chia-placement": [],
}


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_each_distribution_has_unshared_py_typed_markers_and_its_own_version(dist: str) -> None:
    package = ROOT / "packages" / dist
    markers = sorted(p.relative_to(package / "src").as_posix() for p in (package / "src").rglob("py.typed"))
    expected = PY_TYPED[dist]
    assert markers == expected
    if not expected:
        deps = tomllib.loads((package / "pyproject.toml").read_text())["project"]["dependencies"]
        assert any(dep.startswith("chia-dispatch") for dep in deps)
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert project["name"] == dist and project["version"]


def test_chia_and_chia_base_are_namespace_packages() -> None:
    chia = importlib.import_module("chia")
    base = importlib.import_module("chia.base")
    assert getattr(chia, "__file__", None) is None
    assert getattr(base, "__file__", None) is None


@pytest.mark.parametrize("module", sorted(REFERENCE_MODULES))
def test_every_reference_module_imports_from_its_distribution(module: str) -> None:
    imported = importlib.import_module(module)
    assert imported.__file__ is not None
    owner = REFERENCE_MODULES[module]
    assert f"packages/{owner}/src/" in Path(imported.__file__).as_posix() or "site-packages" in imported.__file__


def test_meta_package_depends_on_every_part_with_compatible_ranges() -> None:
    meta = tomllib.loads((ROOT / "packages" / "chia" / "pyproject.toml").read_text())["project"]
    deps = {dep.split(">")[0].split("=")[0].strip(): dep for dep in meta["dependencies"]}
    assert set(deps) == set(DISTRIBUTIONS)
    assert all("<" in spec for spec in deps.values())


def test_the_test_support_is_private_outside_the_namespace_and_not_in_the_meta_package() -> None:
    package = ROOT / "packages" / TEST_SUPPORT
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert project["name"] == TEST_SUPPORT and project["version"]
    assert "Private :: Do Not Upload" in project["classifiers"]
    assert project["entry-points"]["pytest11"] == {"chia_testing": "chia_testing.plugin"}
    assert not any(dep.startswith("chia") for dep in project["dependencies"])  # chia-tools' tests run without dispatch
    assert sorted(p.name for p in (package / "src").iterdir()) == ["chia_testing"]  # ships nothing under chia/
    assert (package / "src" / "chia_testing" / "py.typed").is_file()
    meta = tomllib.loads((ROOT / "packages" / "chia" / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith(TEST_SUPPORT) for dep in meta["dependencies"])
