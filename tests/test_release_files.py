"""What every distribution carries into a release: its licence and its changelog fragments.

The licence: the repository's LICENSE (the unmodified Apache-2.0 text) is
copied into each distribution's directory, declared in ``license-files``, and
lands in the sdist and in the wheel built from that sdist. The changelog:
``towncrier build --draft`` renders each distribution's ``changes/`` fragments.
Both run the real tools (hatchling, towncrier) and need no Ray.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = ["chia-dispatch", "chia-bypass-cache", "chia-placement", "chia-tools", "chia-ops", "chia"]
LICENSE = ROOT / "LICENSE"
APACHE_2_SHA256 = (
    "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"  # apache.org/licenses/LICENSE-2.0.txt
)


def pyproject(dist: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / "packages" / dist / "pyproject.toml").read_text(encoding="utf-8"))


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command} in {cwd}:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_licence_is_the_unmodified_apache_2_text() -> None:
    assert hashlib.sha256(LICENSE.read_bytes()).hexdigest() == APACHE_2_SHA256


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_each_distribution_declares_a_copy_of_the_licence(dist: str) -> None:
    project = pyproject(dist)["project"]
    assert (project["license"], project["license-files"]) == ("Apache-2.0", ["LICENSE"])
    copy = ROOT / "packages" / dist / "LICENSE"
    assert not copy.is_symlink()  # hatchling would store a link in the sdist, dangling once unpacked
    assert copy.read_bytes() == LICENSE.read_bytes()


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_sdist_and_the_wheel_built_from_it_carry_the_licence(dist: str, tmp_path: Path) -> None:
    hatchling = [sys.executable, "-m", "hatchling", "build", "-d", str(tmp_path)]
    run([*hatchling, "-t", "sdist"], cwd=ROOT / "packages" / dist)
    (sdist,) = tmp_path.glob("*.tar.gz")
    top = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as archive:
        member = archive.getmember(f"{top}/LICENSE")
        assert member.isfile()
        archive.extractall(tmp_path / "unpacked", filter="data")
    run([*hatchling, "-t", "wheel"], cwd=tmp_path / "unpacked" / top)
    (wheel,) = tmp_path.glob("*.whl")
    info = f"{top}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(f"{info}/licenses/LICENSE") == LICENSE.read_bytes()
        metadata = archive.read(f"{info}/METADATA").decode().splitlines()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License-File: LICENSE" in metadata


def test_every_distribution_has_the_same_changelog_configuration() -> None:
    configurations = {dist: pyproject(dist)["tool"]["towncrier"] for dist in DISTRIBUTIONS}
    assert all(config == configurations["chia-dispatch"] for config in configurations.values())
    assert configurations["chia-dispatch"]["directory"] == "changes"
    assert configurations["chia-dispatch"]["filename"] == "CHANGELOG.md"


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_towncrier_renders_every_fragment_and_writes_nothing(dist: str) -> None:
    directory = ROOT / "packages" / dist
    config = pyproject(dist)["tool"]["towncrier"]
    sections = {kind["directory"]: kind["name"] for kind in config["type"]}
    name = re.compile(rf"(\+[\w.-]+?|\d+)\.({'|'.join(sections)})(\.\d+)?\.md")
    fragments = sorted(path for path in (directory / "changes").iterdir() if path.name != ".gitkeep")
    before = {path: path.read_bytes() for path in [*fragments, directory / "CHANGELOG.md"]}
    assert all(name.fullmatch(path.name) for path in fragments), [p.name for p in fragments]

    draft = run([sys.executable, "-m", "towncrier", "build", "--draft", "--version", "9.8.7"], cwd=directory).stdout

    assert f"## {dist} 9.8.7 (" in draft
    for fragment in fragments:
        kind = name.fullmatch(fragment.name)
        assert kind is not None
        assert f"### {sections[kind.group(2)]}" in draft
        assert f"- {fragment.read_text(encoding='utf-8').strip()}" in draft
    assert {path: path.read_bytes() for path in before} == before
