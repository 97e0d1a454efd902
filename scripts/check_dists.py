"""Build every distribution's sdist and wheel and prove each wheel stands alone.

Every sdist and every wheel (built from its sdist, as an installer does) must
carry the repository's LICENSE: at the sdist's root, and in the wheel's
``.dist-info/licenses/`` and named by a ``License-File`` line of its METADATA.
For each distribution: a fresh virtual environment gets its wheel and the
wheels of its declared chia dependencies only (third-party dependencies from
the index), then every module it ships is imported from there, a mypy
--strict consumer snippet type-checks against the installed markers, and the
package's own tests run against the installed wheel (not the source tree).
Finally all wheels go into one environment: no two distributions may ship the
same file, and ``pip check`` must be clean.

chia-testing, the private test support, is built and checked alone like the
others; a package's tests get its wheel next to theirs (as the hatch test
environments install it), and the meta-package ``chia`` must never require it.

``scripts/dev test`` passes ``--no-tests``: there each package's tests run in
its hatch matrix instead (oldest and newest Ray), where the package and its
chia dependencies are likewise built and installed as wheels, alone.

    .venv/bin/python scripts/check_dists.py [--only chia-tools ...] [--no-tests]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["chia-dispatch", "chia-bypass-cache", "chia-placement", "chia-tools", "chia-ops"]
DISTRIBUTIONS = [*PARTS, "chia"]  # the meta-package ships no modules but its licence all the same
LICENSE = ROOT / "LICENSE"
TEST_SUPPORT = "chia-testing"  # private: every package's tests use it, no user installs it
PRIVATE_CLASSIFIER = "Private :: Do Not Upload"


def run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def chia_dependencies(dist: str) -> list[str]:
    """The chia distributions ``dist`` needs, itself first, transitively."""
    order = [dist]
    for name in order:
        project = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())["project"]
        for requirement in project.get("dependencies", []):
            dep = requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip()
            if dep.startswith("chia") and dep not in order:
                order.append(dep)
    return order


def wheel_of(dist_dir: Path, dist: str) -> Path:
    matches = sorted(dist_dir.glob(dist.replace("-", "_") + "-*.whl"))
    if len(matches) != 1:
        raise SystemExit(f"expected one wheel for {dist} in {dist_dir}, found {matches}")
    return matches[0]


def shipped_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return [name for name in archive.namelist() if ".dist-info/" not in name and not name.endswith("/")]


def modules_of(wheel: Path) -> list[str]:
    modules = []
    for name in shipped_files(wheel):
        if name.endswith(".py"):
            module = name[: -len(".py")].replace("/", ".")
            modules.append(module.removesuffix(".__init__"))
    return sorted(modules)


def licence_problems(dist_dir: Path) -> list[str]:
    """What keeps a built distribution from carrying LICENSE; empty when each does."""
    expected = LICENSE.read_bytes()
    problems = []
    for dist in DISTRIBUTIONS:
        stem = dist.replace("-", "_")
        wheels = sorted(dist_dir.glob(f"{stem}-*.whl"))
        sdists = sorted(dist_dir.glob(f"{stem}-*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            problems.append(f"{dist}: expected one wheel and one sdist in {dist_dir}, found {wheels + sdists}")
            continue
        with zipfile.ZipFile(wheels[0]) as wheel:
            info = next(n.split("/")[0] for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
            names = wheel.namelist()
            if f"{info}/licenses/LICENSE" not in names or wheel.read(f"{info}/licenses/LICENSE") != expected:
                problems.append(f"{wheels[0].name}: no {info}/licenses/LICENSE identical to {LICENSE}")
            elif "License-File: LICENSE" not in wheel.read(f"{info}/METADATA").decode().splitlines():
                problems.append(f"{wheels[0].name}: its METADATA has no 'License-File: LICENSE' line")
        with tarfile.open(sdists[0]) as sdist:
            top = sdists[0].name.removesuffix(".tar.gz")
            member = next((m for m in sdist.getmembers() if m.name == f"{top}/LICENSE"), None)
            stream = sdist.extractfile(member) if member is not None and member.isfile() else None
            if stream is None or stream.read() != expected:
                problems.append(f"{sdists[0].name}: no regular file {top}/LICENSE identical to {LICENSE}")
    return problems


def venv(path: Path, uv: str) -> Path:
    run([uv, "venv", "--quiet", "--python", sys.executable, str(path)])
    return path / "bin" / "python"


def check_alone(dist: str, dist_dir: Path, work: Path, uv: str, tests: bool, pytest_args: list[str]) -> None:
    print(f"\n=== {dist} alone", flush=True)
    python = venv(work / f"venv-{dist}", uv)
    wheels = [str(wheel_of(dist_dir, name)) for name in chia_dependencies(dist)]
    run([uv, "pip", "install", "--quiet", "--python", str(python), *wheels, "pytest>=8", "mypy>=1.11"])
    installed = subprocess.run(
        [uv, "pip", "list", "--python", str(python), "--format", "freeze"], check=True, capture_output=True, text=True
    ).stdout
    foreign = sorted(
        line.split("==")[0]
        for line in installed.splitlines()
        if line.startswith("chia") and line.split("==")[0] not in chia_dependencies(dist)
    )
    if foreign:
        raise SystemExit(f"{dist}: unexpected chia distributions installed: {foreign}")
    modules = modules_of(wheel_of(dist_dir, dist))
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert 'site-packages' in (module.__file__ or ''), (name, module.__file__)\n"
        f"print('imported {len(modules)} modules of {dist} from site-packages')\n"
    )
    run([str(python), "-c", probe], cwd=work)
    # The consumer imports every public module, chia-ops' command modules too
    # (chia.cli.cache, .kv, .bypass), though the distributions behind its extras
    # are not installed here: those modules import them only inside their
    # commands, and mypy reports no errors inside installed packages, so the
    # unresolved optional imports are not the consumer's type errors, while a
    # missing py.typed marker still is. Kept that way rather than skipping them:
    # a user without the extras imports them too. Their typing against the real
    # distributions is checked by chia-ops' hatch `test` environment.
    snippet = work / f"typed_{dist.replace('-', '_')}.py"
    # The public modules only: none of their dotted parts is private (``chia.base._bypass_cache.*`` is not).
    public = [name for name in modules if not any(part.startswith("_") for part in name.split("."))]
    snippet.write_text("".join(f"import {name}\n" for name in public))
    run([str(python), "-m", "mypy", "--strict", "--config-file", os.devnull, str(snippet)], cwd=work)
    if tests:
        if dist != TEST_SUPPORT:  # the tests' own support, installed after the import and type checks above
            run([uv, "pip", "install", "--quiet", "--python", str(python), str(wheel_of(dist_dir, TEST_SUPPORT))])
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
        # The repository root is the rootdir (pytest config) but not on the
        # path for `chia`: importlib mode imports chia from the installed wheel.
        cmd = [str(python), "-m", "pytest", f"packages/{dist}/tests", "-q", "-p", "no:cacheprovider", *pytest_args]
        print("+", " ".join(cmd), flush=True)
        status = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        if status not in (0, 5):
            raise SystemExit(f"{dist}: its tests failed against the installed wheel (exit {status})")


def metadata(wheel: Path) -> list[str]:
    """The lines of a wheel's METADATA file."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        return archive.read(name).decode().splitlines()


def check_test_support_private(dist_dir: Path) -> None:
    """chia-testing is marked never to be uploaded, and the meta-package does not require it."""
    print(f"\n=== {TEST_SUPPORT} stays private", flush=True)
    if f"Classifier: {PRIVATE_CLASSIFIER}" not in metadata(wheel_of(dist_dir, TEST_SUPPORT)):
        raise SystemExit(f"{TEST_SUPPORT}: its wheel lacks the classifier {PRIVATE_CLASSIFIER!r}")
    requires = [
        line.split(":", 1)[1].strip()
        for line in metadata(wheel_of(dist_dir, "chia"))
        if line.startswith("Requires-Dist:")
    ]
    leaked = [requirement for requirement in requires if requirement.replace("_", "-").startswith(TEST_SUPPORT)]
    if leaked:
        raise SystemExit(f"the meta-package chia requires the private {TEST_SUPPORT}: {leaked}")
    print(f"{TEST_SUPPORT} is private and not required by chia ({len(requires)} requirements)")


def check_together(dist_dir: Path, work: Path, uv: str) -> None:
    print("\n=== all distributions together", flush=True)
    owners: dict[str, str] = {}
    for wheel in sorted(dist_dir.glob("*.whl")):
        for name in shipped_files(wheel):
            if name in owners:
                raise SystemExit(f"{name} is shipped by both {owners[name]} and {wheel.name}")
            owners[name] = wheel.name
    print(f"{len(owners)} files, each shipped by exactly one wheel")
    python = venv(work / "venv-all", uv)
    run([uv, "pip", "install", "--quiet", "--python", str(python), *map(str, sorted(dist_dir.glob("*.whl")))])
    run([uv, "pip", "check", "--python", str(python)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=[*PARTS, TEST_SUPPORT], choices=[*PARTS, TEST_SUPPORT])
    parser.add_argument("--no-tests", action="store_true", help="skip running package tests in the fresh venvs")
    args = parser.parse_args()
    uv = str(Path(sys.executable).with_name("uv"))
    with tempfile.TemporaryDirectory(prefix="chia-dists-") as tmp:
        work = Path(tmp)
        dist_dir = work / "dist"
        # sdists, then each wheel from its sdist (what an installer given the sdist does)
        run([uv, "build", "--quiet", "--all-packages", "-o", str(dist_dir)], cwd=ROOT)
        failures = licence_problems(dist_dir)
        if not failures:
            print(f"LICENSE in each of the {len(DISTRIBUTIONS)} wheels and sdists", flush=True)
        for dist in args.only:
            try:
                check_alone(dist, dist_dir, work, uv, not args.no_tests, [])
            except (SystemExit, subprocess.CalledProcessError) as failure:
                failures.append(f"{dist}: {failure}")
        try:
            check_test_support_private(dist_dir)
        except SystemExit as failure:
            failures.append(str(failure))
        check_together(dist_dir, work, uv)
    if failures:
        raise SystemExit("distribution checks failed:\n  " + "\n  ".join(failures))
    print("\ndistributions OK")


if __name__ == "__main__":
    main()
