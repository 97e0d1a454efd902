"""Pinned public signatures.

mypy checks the assert_type calls in this file (`mypy` of the package includes
tests/), and a snippet with wrong argument types must be rejected by mypy --strict.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, assert_type

import pytest
from ray import ObjectRef

from chia.base.ChiaFunction import (
    ChiaActorHandle,
    ChiaCallRemote,
    ChiaFunction,
    ChiaOptions,
    ChiaWrapped,
    ObjectRefCallback,
    chia_actor,
    get,
)


@ChiaFunction()
def f(x: int, y: str) -> float:
    return x + len(y)


class Tool:
    @ChiaFunction()
    def do_work(self, x: int) -> int:
        return x * 2


@pytest.mark.usefixtures("cluster")
def test_public_signatures_are_pinned() -> None:
    as_protocol: ChiaWrapped[[int, str], float] = f
    assert as_protocol is f
    ref = f.chia_remote(1, "a")
    assert_type(ref, ObjectRef[float])
    assert_type(get(f.chia_remote(1, "a")), float)
    assert_type(get([ref]), list[float])
    assert_type(get(ObjectRefCallback(ref, str)), Any)
    assert_type(f.chia_remote_blocking(1, "ab"), float)
    assert_type(f(1, "a"), float)
    assert_type(ChiaCallRemote(f, 2, "b"), ObjectRef[float])
    handle: ChiaOptions[[int, str], float] = f.options(num_cpus=1)
    assert_type(handle.chia_remote(1, "a"), ObjectRef[float])
    assert_type(f.options(_chia_tag="t").chia_remote(1, "a"), ObjectRef[float])
    tool = Tool()
    assert_type(tool.do_work(3), int)
    assert_type(tool.do_work.chia_remote(tool, x=5), ObjectRef[int])
    assert_type(chia_actor(ChiaActorHandle.__new__(ChiaActorHandle)), ChiaActorHandle) if False else None
    assert get(f.chia_remote(1, "ab")) == 3.0
    assert get(tool.do_work.chia_remote(tool, x=5)) == 10


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    snippet = tmp_path / "snippet.py"
    # The run's shared cache when CI gives one (Ray's modules analysed once), else one of this test's own.
    cache = os.environ.get("MYPY_CACHE_DIR") or str(tmp_path / "mypy-cache")
    snippet.write_text(textwrap.dedent(source))
    return subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--strict", "--config-file=/dev/null", "--no-sqlite-cache"),
            *("--cache-dir", cache, str(snippet)),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )


HEADER = """
    from chia.base.ChiaFunction import ChiaFunction, get

    @ChiaFunction(num_cpus=1)
    def f(x: int, y: str) -> float:
        return 1.0
"""


def test_mypy_accepts_correct_calls_and_rejects_wrong_argument_types(tmp_path: Path) -> None:
    # One mypy run over the three calls (a run costs seconds): errors are told apart by their line.
    calls = {
        "good": "    value: float = get(f.chia_remote(1, 'a'))",
        "bad_arguments": "    other: float = get(f.chia_remote('a', 1))",
        "wrong_result": "    text: str = get(f.chia_remote(1, 'a'))",
    }
    source = textwrap.dedent(HEADER) + "\n" + "\n".join(textwrap.dedent(line) for line in calls.values()) + "\n"
    line_of = {name: source.splitlines().index(textwrap.dedent(line)) + 1 for name, line in calls.items()}
    result = _mypy(tmp_path, source)
    assert result.returncode == 1, result.stdout + result.stderr
    errors: dict[int, str] = {}
    for row in result.stdout.splitlines():
        parts = row.split(":", 3)
        if len(parts) == 4 and parts[0].endswith("snippet.py") and parts[2].strip() == "error":
            errors[int(parts[1])] = errors.get(int(parts[1]), "") + parts[3]
    assert set(errors) == {line_of["bad_arguments"], line_of["wrong_result"]}, result.stdout
    assert (
        'Argument 1 to "chia_remote" of "ChiaWrapped" has incompatible type "str"; expected "int"'
        in errors[line_of["bad_arguments"]]
    )
    assert "incompatible types in assignment" in errors[line_of["wrong_result"]].lower()
