"""A command whose optional distribution is missing says, in one line, which chia-ops extra to install.

The absence is real, whatever is installed here: the ``chia`` command runs in a
subprocess whose import system refuses the distribution's modules (a
``sys.meta_path`` finder installed once the command line is imported, which
itself imports none of them).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

RUN_WITHOUT = """
import sys
from importlib.abc import MetaPathFinder

from chia.cli.main import main

ABSENT = tuple(sys.argv[1].split(","))


class Absent(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(ABSENT):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Absent())
sys.exit(main(sys.argv[2:]))
"""


def chia_without(absent: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``chia ARGS...`` in a subprocess where no module whose name starts with one of ``absent`` (comma-separated) imports."""
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT, absent, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=120,
    )


DISTRIBUTION_OF_EXTRA = {
    "cache": "chia-bypass-cache",
    "bypass": "chia-bypass-cache",
    "kv": "chia-placement",
    "tools": "chia-tools",
}


@pytest.mark.parametrize(
    ("command", "extra", "absent", "args"),
    [
        ("chia cache", "cache", "chia.base.cache", ["cache", "ls"]),
        ("chia cache", "cache", "chia.base.cache", ["cache", "clear", "--yes"]),
        ("chia bypass", "bypass", "chia.base.bypass", ["bypass", "validate", "chia.yaml"]),
        ("chia kv", "kv", "chia.base.chia_kv_store", ["kv", "list", "--name", "k", "--namespace", "n"]),
        ("chia tools serve", "tools", "chia.base.tools", ["tools", "serve", "chia.base.tools.BashTool:BashTool", "b"]),
        ("chia run --bypass", "bypass", "chia.base.bypass", ["run", "--bypass", "chia.yaml", "loop.py"]),
        (
            "chia run --cache-dir",
            "cache",
            "chia.base.cache",
            ["run", "--cache-dir", "c", "--cache-size", "1MB", "loop.py"],
        ),
    ],
)
def test_a_missing_distribution_is_one_line_naming_the_extra(
    tmp_path: Path, command: str, extra: str, absent: str, args: list[str]
) -> None:
    (tmp_path / "chia.yaml").write_text("bypass:\n  f: true\n")
    (tmp_path / "loop.py").write_text("raise SystemExit('must not run')\n")
    result = chia_without(absent, *args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (  # the only line: before any cluster is reached or Ray started
        f"Error: {command} needs {DISTRIBUTION_OF_EXTRA[extra]}: install chia-ops with its [{extra}] extra "
        f"from this repository (pip install './packages/chia-ops[{extra}]')\n"
    )


def test_commands_that_need_no_extra_work_without_them(tmp_path: Path) -> None:
    every_optional = "chia.base.cache,chia.base.bypass,chia.base.chia_kv_store,chia.base.tools"
    helped = chia_without(every_optional, "--help", cwd=tmp_path)
    groups = ("cache", "bypass", "kv", "tools")
    assert helped.returncode == 0 and all(f"  {group} " in helped.stdout for group in groups)
    kv_help = chia_without(every_optional, "kv", "set", "--help", cwd=tmp_path)
    assert kv_help.returncode == 0 and "--if-version N" in kv_help.stdout
    summary = chia_without(every_optional, "profile", "summary", str(tmp_path), cwd=tmp_path)
    assert summary.returncode == 1 and summary.stderr.startswith("Error: no profile logs")


def test_a_broken_installed_distribution_is_not_reported_as_missing(tmp_path: Path) -> None:
    pytest.importorskip("chia.base.bypass", reason="needs chia-bypass-cache installed (the [bypass] extra)")
    (tmp_path / "chia.yaml").write_text("bypass:\n  f: true\n")
    # chia.base.bypass is there, the private modules it imports are not
    result = chia_without("chia.base._", "bypass", "validate", "chia.yaml", cwd=tmp_path)
    assert result.returncode == 1
    last_line = result.stderr.splitlines()[-1]  # the traceback's: which private module failed, not a hint
    assert re.match(r"(ModuleNotFoundError|ImportError): .*'(chia\.base\.)?_\w+'", last_line), result.stderr
    assert "install chia-ops" not in result.stderr
