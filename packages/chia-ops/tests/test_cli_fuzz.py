"""Generated ``chia`` argument lists, run in-process with ``main(argv)``: each works or fails in one documented way.

Every case exits with a documented code (0 ok, 1 error, 2 usage, 5 not
found), never with a traceback, and a failure's last line is the one-line
error naming the option, argument or file at fault. No case reaches a
cluster or starts Ray or a server: ``chia run`` always gets an unusable
``--bypass`` file (checked before Ray starts), ``chia profile`` always a
log path (never the live collector), ``chia tools serve`` a tool class that
does not load. Hypothesis runs derandomized and without a deadline.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chia.cli._exit import ExitCode
from chia.cli.main import main
from chia_testing.fuzz import fuzz_settings

DOCUMENTED = {ExitCode.OK, ExitCode.ERROR, ExitCode.USAGE, ExitCode.NOT_FOUND}
ARGUMENT_NAMES = ("SCRIPT", "FILE", "SOURCE", "'A'", "'B'", "'LOG'")

# Paths inside the session's fixture directory, by role.
FILES = tempfile.mkdtemp(prefix="chia-cli-fuzz-")
ROOT = Path(FILES)
LOOP = ROOT / f"fuzzloop_{uuid.uuid4().hex[:8]}.py"
BROKEN_LOOP = ROOT / f"brokenloop_{uuid.uuid4().hex[:8]}.py"
BAD_YAML = ROOT / "bad.yaml"
TYPO_YAML = ROOT / "typo.yaml"
GARBAGE_LOG = ROOT / "garbage.jsonl"
EMPTY_DIR = ROOT / "empty"
MISSING = ROOT / "missing.yaml"


@pytest.fixture(scope="module", autouse=True)
def files() -> Iterator[None]:
    LOOP.write_text(
        "from chia.base.ChiaFunction import ChiaFunction\n\n\n@ChiaFunction()\ndef simulate(x):\n    return x\n"
    )
    BROKEN_LOOP.write_text("raise RuntimeError('the loop does not import')\n")
    BAD_YAML.write_text("bypass:\n  simulate:\n    bypas: true\n")
    TYPO_YAML.write_text("bypass:\n  simulat: true\n")
    GARBAGE_LOG.write_text("not json\n")
    EMPTY_DIR.mkdir(exist_ok=True)
    yield
    shutil.rmtree(ROOT, ignore_errors=True)  # made at import (the strategies name its paths): gone with the module


PATHS = st.sampled_from([str(p) for p in (LOOP, BAD_YAML, TYPO_YAML, GARBAGE_LOG, EMPTY_DIR, MISSING)] + ["", "-"])
NOISE = st.one_of(
    st.sampled_from(["--", "-x", "--nope", "--json", "--yes", "-h", "=", "4XB", "-1", "0", "1e9", "nan", "\x00"]),
    st.text(max_size=8),
)
SIZES = st.one_of(st.sampled_from(["4GB", "4XB", "0B", "-1MB", "1.5kib", "GB", "inf TB", "nan", "1e400MB"]), NOISE)


def option(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return st.one_of(st.tuples(st.just(name), values).map(list), st.just([name]))


def flatten(groups: list[list[str]]) -> list[str]:
    return [token for group in groups for token in group]


# `--bypass` comes first and takes the next token as its file: the generated options fill it. Every
# choice is unusable (the format is invalid, or no file), so no case gets as far as starting Ray.
RUN = st.builds(
    lambda options, script, rest: ["run", "--bypass", *options, script, *rest],
    st.lists(
        st.one_of(
            st.sampled_from([[str(BAD_YAML)], [str(MISSING)], [str(EMPTY_DIR)]]),
            option("--cache-dir", PATHS),
            option("--cache-size", SIZES),
            option("--num-cpus", st.one_of(st.integers(-3, 3).map(str), NOISE)),
            option("--profile", PATHS),
            option("--address", st.sampled_from(["127.0.0.1:1", "nohost", "", ":::", "127.0.0.1:99999"])),
            st.just(["--strict"]),
        ),
        max_size=5,
    ).map(flatten),
    st.one_of(st.just(str(LOOP)), PATHS),
    st.lists(NOISE, max_size=2),
)
VALIDATE = st.builds(
    lambda file, extra: ["bypass", "validate", file, *extra],
    PATHS,
    st.lists(
        st.one_of(
            option(
                "--module", st.sampled_from([str(LOOP), str(BROKEN_LOOP), str(MISSING), "no_such_loop", "json", ""])
            ),
            NOISE.map(lambda token: [token]),
        ),
        max_size=3,
    ).map(flatten),
)
PROFILE = st.builds(
    lambda command, source, extra: ["profile", command, source, *extra],
    st.sampled_from(["summary", "report", "compare", "export"]),
    st.sampled_from([str(GARBAGE_LOG), str(EMPTY_DIR), str(MISSING)]),
    st.lists(
        st.one_of(
            option("--format", st.sampled_from(["chrome", "json", "csv", ""])),
            option("-o", st.sampled_from([str(ROOT / "out.html"), str(EMPTY_DIR), str(MISSING / "x")])),
            option("--baseline", PATHS),
            option("--title", NOISE),
            st.sampled_from([["--json"], [str(GARBAGE_LOG)], [str(MISSING)]]),
        ),
        max_size=3,
    ).map(flatten),
)
SERVE = st.builds(
    lambda tool, extra: ["tools", "serve", tool, "t", *extra],
    st.sampled_from(["no_such_module:Tool", "json:JSONDecoder", "nocolon", ":", "chia.base.tools.BashTool:Nope"]),
    st.lists(
        st.one_of(
            option("--port", st.one_of(st.integers(-5, 70000).map(str), NOISE)),
            option("--host", st.sampled_from(["127.0.0.1", "0.0.0.0", "::1", "nohost", ""])),
            option("--max-tries", st.one_of(st.integers(-2, 5).map(str), NOISE)),
            option("--arg", st.sampled_from(["work_dir=/tmp", "workdir=/tmp", "=", "x", "k={bad json"])),
            st.sampled_from([["--find-free-port"], ["--allow-unauthenticated"], ["--token-env", "NOPE"]]),
        ),
        max_size=4,
    ).map(flatten),
)
HELP = st.sampled_from(
    [["--help"], ["run", "--help"], ["bypass", "validate", "--help"], ["profile", "--help"], ["tools", "--help"]]
)
UNKNOWN = st.lists(NOISE, min_size=1, max_size=3)


def run_chia(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_documented_outcome(argv: list[str]) -> None:
    code, _, err = run_chia(argv)
    assert code in DOCUMENTED, (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code == ExitCode.OK:
        return
    if code == ExitCode.USAGE and err.startswith("Usage: ") and "\nCommands:\n" in err:
        return  # a command group given no command shows its help (click's convention)
    lines = [line for line in err.split("\n") if line.strip()]
    assert lines, (argv, code)
    last = lines[-1]
    assert last.startswith(("Error: ", "chia tools serve: error: ")), (argv, err)
    named = [token for token in argv if len(token) > 1 and token in last] + [n for n in ARGUMENT_NAMES if n in last]
    click_own = ("No such command", "No such option", "unexpected extra argument", "Missing command")
    assert named or any(text in last for text in click_own), (argv, err)


@pytest.mark.parametrize(
    "arguments",
    [RUN, VALIDATE, PROFILE, SERVE, st.one_of(HELP, UNKNOWN)],
    ids=["run", "bypass-validate", "profile", "tools-serve", "commands-and-help"],
)
@fuzz_settings(300)
@given(data=st.data())
def test_generated_arguments(arguments: st.SearchStrategy[list[str]], data: st.DataObject) -> None:
    assert_documented_outcome(data.draw(arguments, label="argv"))
