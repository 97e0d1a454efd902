"""``chia bypass validate --module``, ``chia run --strict`` and ``chia tools serve`` (no cluster)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from chia.cli._exit import ExitCode
from chia.cli.main import main

LOOP = """
from chia.base.ChiaFunction import ChiaFunction


@ChiaFunction(num_cpus=1)
def simulate(config):
    return config


@ChiaFunction(num_cpus=1)
def build(config):
    return config


if __name__ == "__main__":
    raise SystemExit("the loop's main must not run")
"""


@pytest.fixture
def with_bypass() -> None:
    """The ``chia bypass``/``chia run --bypass`` tests need chia-bypass-cache (the ``[bypass]`` extra)."""
    pytest.importorskip("chia.base.bypass", reason="chia-bypass-cache is not installed")


def write_loop(tmp_path: Path) -> Path:
    """A loop file with a module name of its own (imported in this process)."""
    loop = tmp_path / f"loop_{uuid.uuid4().hex[:10]}.py"
    loop.write_text(LOOP)
    return loop


@pytest.mark.usefixtures("with_bypass")
def test_validate_module_fails_on_a_key_naming_no_function_of_the_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = write_loop(tmp_path)
    config = tmp_path / "chia.yaml"
    config.write_text("bypass:\n  simulat: true\ncache:\n  build: true\n  buidl: true\n")
    assert main(["bypass", "validate", str(config)]) == ExitCode.OK  # without the loop: the format only
    capsys.readouterr()
    assert main(["bypass", "validate", str(config), "--module", str(loop)]) == ExitCode.NOT_FOUND
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"Error: {config}: function 'simulat': ")
    assert "section 'bypass': key 'simulat' names no @ChiaFunction" in err and "did you mean 'simulate'?" in err
    assert "section 'cache': key 'buidl'" in err and "did you mean 'build'?" in err
    assert f"(loop: {loop})" in err


@pytest.mark.usefixtures("with_bypass")
def test_validate_module_accepts_keys_of_the_loop_by_name_and_qualname(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = write_loop(tmp_path)
    config = tmp_path / "chia.yaml"
    config.write_text(f"bypass:\n  simulate: true\n  {loop.stem}.build: false\n")
    assert main(["bypass", "validate", str(config), "--module", str(loop)]) == ExitCode.OK
    assert capsys.readouterr().out == f"{config}: valid for {loop}\n"


@pytest.mark.usefixtures("with_bypass")
def test_validate_module_by_module_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = write_loop(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "chia.yaml"
    config.write_text("bypass:\n  simulate: true\n")
    assert main(["bypass", "validate", str(config), "--module", loop.stem]) == ExitCode.OK
    assert main(["bypass", "validate", str(config), "--module", "no_such_loop_module"]) == ExitCode.NOT_FOUND
    assert "--module 'no_such_loop_module': no module of that name" in capsys.readouterr().err


@pytest.mark.usefixtures("with_bypass")
def test_validate_module_that_is_missing_or_fails_to_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "chia.yaml"
    config.write_text("bypass:\n  simulate: true\n")
    assert main(["bypass", "validate", str(config), "--module", str(tmp_path / "absent.py")]) == ExitCode.NOT_FOUND
    broken = tmp_path / f"broken_{uuid.uuid4().hex[:10]}.py"
    broken.write_text("import json\njson.loads('{')\n")
    assert main(["bypass", "validate", str(config), "--module", str(broken)]) == ExitCode.ERROR
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"Error: --module {str(tmp_path / 'absent.py')!r}: no such file"
    assert err[1].startswith(f"Error: --module {str(broken)!r}: importing it failed: JSONDecodeError: ")


def test_run_strict_needs_a_bypass_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loop = write_loop(tmp_path)
    assert main(["run", "--strict", str(loop)]) == ExitCode.USAGE
    assert "--strict applies to the --bypass YAML" in capsys.readouterr().err


def test_tools_serve_is_the_serve_program_under_its_documented_name(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("chia.base.tools.serve", reason="chia-tools is not installed (the [tools] extra)")
    assert main(["tools", "serve", "--help"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.startswith("usage: chia tools serve ") and "--find-free-port" in out
    assert main(["tools", "serve", "no_such_module:Tool", "t"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("chia tools serve: error: ") and "no_such_module" in err
    assert main(["tools", "serve", "chia.base.tools.BashTool:BashTool", "b", "--port", "70000"]) == ExitCode.USAGE
    assert "--port" in capsys.readouterr().err
