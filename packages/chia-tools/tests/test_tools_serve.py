"""Serving without Ray: in-process API, the command line, and a venv holding only chia-tools."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chia.base.tools.BashTool import BashTool
from chia.base.tools.ChiaTool import ToolServerConfig
from chia.base.tools.ChiaToolTemplate import ChiaToolTemplate
from chia.base.tools.serve import in_process, main, serve

MCP = Any

REPO = Path(__file__).resolve().parents[3]


class Greeter(ChiaToolTemplate):
    def setup(self, greeting: str = "hello") -> None:
        self.greeting = greeting
        self.mcp.add_tool(self.greet, name=f"{self.name}_greet")

    def greet(self, who: str) -> str:
        return f"{self.greeting} {who}"


def test_serve_runs_a_tool_in_this_process_without_ray(mcp: MCP, tmp_path: Path) -> None:
    bash = serve(BashTool, "local", work_dir=str(tmp_path), server_config=ToolServerConfig(base_port=0))
    try:
        assert bash.node_id == "" and bash.info.node_id == ""
        assert mcp.call(bash.url, "local_run_command", {"command": "pwd"}) == f"{tmp_path}\n"
    finally:
        bash.stop()


def test_in_process_applies_its_config_to_every_tool(mcp: MCP) -> None:
    with in_process(ToolServerConfig(base_port=0, token="shared")):
        one = Greeter("one", greeting="hi")
        two = Greeter("two")
    try:
        assert one.port != two.port
        assert mcp.call(one.url, "one_greet", {"who": "a"}, one.auth_headers) == "hi a"
        assert mcp.call(two.url, "two_greet", {"who": "b"}, two.auth_headers) == "hello b"
    finally:
        one.stop()
        two.stop()


BASH = "chia.base.tools.BashTool:BashTool"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["BashTool", "x"], r"tool class 'BashTool' must look like module\.path:ClassName"),
        (["os.path:join", "x"], "tool class 'os.path:join' is not a ChiaTool subclass"),
        (["no_such_module_xyz:Tool", "x"], "cannot import no_such_module_xyz"),
        (["chia.base.tools.BashTool:Nope", "x"], "chia.base.tools.BashTool has no attribute 'Nope'"),
        ([BASH, "x", "--arg", "novalue"], "--arg 'novalue' must look like KEY=VALUE"),
        (
            [BASH, "x", "--arg", "workdir=/tmp"],
            r"BashTool takes no argument --arg workdir=\.\.\. \(did you mean --arg work_dir=\.\.\.\?\); its --arg names: "
            "work_dir, timeout_seconds",
        ),
        (
            [BASH, "x", "--arg", "timeout_seconds=0"],
            r"BashTool\('x', \.\.\.\) refused its arguments: timeout_seconds=0",
        ),
        ([BASH, "bad name"], r"BashTool\('bad name', \.\.\.\) refused its arguments: invalid ChiaTool name"),
        ([BASH, "x", "--port", "70000"], r"argument --port: 70000 is outside 0\.\.65535"),
        ([BASH, "x", "--find-free-port"], "--find-free-port needs --port"),
        ([BASH, "x", "--port", "9000", "--max-tries", "3"], "--max-tries applies only with --find-free-port"),
        (
            [BASH, "x", "--host", "0.0.0.0"],
            r"refusing to serve on non-loopback --host 0\.0\.0\.0 without a bearer token: put the token in "
            r"\$CHIA_TOOL_TOKEN \(or in the variable named by --token-env NAME\), or pass --allow-unauthenticated",
        ),
    ],
)
def test_command_line_usage_errors_are_one_line_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHIA_TOOL_TOKEN", raising=False)
    assert main(argv, prog="chia tools serve") == 2
    error = capsys.readouterr().err
    last_line = error.splitlines()[-1]
    assert "Traceback" not in error and last_line.startswith("chia tools serve: error: ")
    assert re.search(message, last_line), error
    if not error.startswith("usage:"):  # argparse's own errors come after its usage lines
        assert error.count("\n") == 1


def _serve_command(*options: str) -> list[str]:
    return [sys.executable, "-m", "chia.base.tools.serve", BASH, "busy", *options]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def test_an_explicit_busy_port_fails_loudly_in_one_line(busy_port: int) -> None:
    # Issue 15: no silent move to the next port, and no traceback.
    done = subprocess.run(_serve_command("--port", str(busy_port)), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"python -m chia.base.tools.serve: error: port {busy_port} on 127.0.0.1 is in use (--port {busy_port}); "
        f"pass --port 0 for any free port, or --find-free-port to try the ports after {busy_port}\n"
    )


def test_find_free_port_moves_past_a_busy_port(busy_port: int) -> None:
    proc = subprocess.Popen(
        _serve_command("--port", str(busy_port), "--find-free-port", "--max-tries", "50"),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.rsplit(":", 1)[1].split("/", 1)[0])
        assert line.startswith("chia-tool busy serving at http://127.0.0.1:") and busy_port < port < busy_port + 50
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def tools_only_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with chia-tools (and its dependencies) and nothing else.

    Installed with uv from this repository's lock file and uv's cache: no network needed.
    """
    # The workspace's own uv first: it matches the lock file's format.
    candidates = [str(Path(sys.executable).with_name("uv")), str(REPO / ".venv" / "bin" / "uv"), shutil.which("uv")]
    uv = next((c for c in candidates if c and Path(c).exists()), None)
    if uv is None or not (REPO / "uv.lock").exists():
        pytest.skip("needs uv and the workspace lock file")
    venv = tmp_path_factory.mktemp("tools-only") / "venv"
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    env.pop("UV_NO_SOURCES", None)  # set by the hatch test environments; this sync resolves from the workspace
    subprocess.run(
        [
            uv,
            "sync",
            "--quiet",
            "--package",
            "chia-tools",
            "--no-dev",
            "--frozen",
            "--offline",
            # A wheel built from this tree, rebuilt every time (uv keys local builds on pyproject.toml).
            "--no-editable",
            "--reinstall-package",
            "chia-tools",
        ],
        cwd=REPO,
        env=env,
        check=True,
        timeout=300,
    )
    return venv


@pytest.fixture
def served_from_venv(tools_only_venv: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    python = tools_only_venv / "bin" / "python"
    command = [
        str(python),
        "-m",
        "chia.base.tools.serve",
        "chia.base.tools.BashTool:BashTool",
        "alone",
        "--arg",
        f"work_dir={tmp_path}",
        "--arg",
        "timeout_seconds=30",
        "--port",
        "0",
    ]
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHIA_TOOL_")}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("chia-tool alone serving at http://127.0.0.1:"), line
        yield proc, line.rsplit(" ", 1)[1].strip()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


def test_fresh_venv_with_only_chia_tools_serves_a_bash_tool(
    tools_only_venv: Path, served_from_venv: tuple[subprocess.Popen[str], str], mcp: MCP, tmp_path: Path
) -> None:
    python = str(tools_only_venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import chia.base.ChiaFunction"], capture_output=True, text=True, timeout=120)
    assert probe.returncode != 0 and "No module named 'chia.base.ChiaFunction'" in probe.stderr
    # The backends import without the optional SDK; the OpenAI one names its extra when built.
    backends = "import chia.models.agent_cli, chia.models.scripted, chia.models.openai_compat as m; m.OpenAICompatLLM('m', api_key='x')"
    probe = subprocess.run([python, "-c", backends], capture_output=True, text=True, timeout=120)
    assert probe.returncode != 0 and "ImportError: OpenAICompatLLM needs the OpenAI SDK" in probe.stderr, probe.stderr
    assert "chia-tools[openai]" in probe.stderr
    proc, url = served_from_venv
    assert mcp.call(url, "alone_run_command", {"command": "pwd; echo $((6 * 7))"}) == f"{tmp_path}\n42\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


BLOCK_OPENAI = """
import importlib.abc, sys

class BlockOpenAI(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "openai" or name.startswith("openai."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, BlockOpenAI())
import chia.models.openai_compat as module
try:
    module.OpenAICompatLLM("m", api_key="x")
except ImportError as error:
    print("ImportError:", error)
"""


def test_the_openai_backend_imports_without_the_sdk_and_construction_names_the_extra(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_OPENAI], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "ImportError: OpenAICompatLLM needs the OpenAI SDK: install chia-tools with its "
        "'openai' extra (chia-tools[openai]) or the openai package (>= 1.55.3)"
    )
