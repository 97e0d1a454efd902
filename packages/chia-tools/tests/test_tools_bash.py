"""BashTool and AsyncBashTool deployed as Ray actors, driven through a real MCP client."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastmcp.exceptions import ToolError

from chia.base.tools.AsyncBashTool import AsyncBashTool
from chia.base.tools.BashTool import BashTool
from chia.base.tools.ChiaTool import ToolServerConfig
from chia.base.tools.serve import serve
from chia_testing import running, wait_until

Deployer = Any
MCP = Any


def _read_pid(path: Path) -> int:
    wait_until(lambda: path.exists() and path.read_text().strip() != "", message=f"a pid in {path}")
    return int(path.read_text())


def _finished(mcp: MCP, url: str, tool: str) -> Callable[[], dict[str, Any] | None]:
    """A predicate for wait_until: the tool's job status once done (each call long-polls up to 5 s)."""

    def done() -> dict[str, Any] | None:
        status: dict[str, Any] = mcp.call(url, tool, {"wait_seconds": 5})
        return status if status.get("done") else None

    return done


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bash")


@pytest.fixture(scope="module")
def bash(deploy_module: Deployer, workdir: Path) -> BashTool:
    tool: BashTool = deploy_module(BashTool, "sh", work_dir=str(workdir), timeout_seconds=3, max_output_bytes=1000)
    return tool


@pytest.fixture(scope="module")
def abash(deploy_module: Deployer, workdir: Path) -> AsyncBashTool:
    tool: AsyncBashTool = deploy_module(AsyncBashTool, "job", work_dir=str(workdir), env={"GREETING": "hello"})
    return tool


def test_bash_tool_lists_its_command_tool(bash: BashTool, mcp: MCP) -> None:
    schemas = mcp.tools(bash.url)
    assert list(schemas) == ["sh_run_command"]
    assert schemas["sh_run_command"]["properties"] == {"command": {"type": "string"}}


def test_bash_tool_returns_stdout_then_stderr_in_work_dir(bash: BashTool, mcp: MCP, workdir: Path) -> None:
    # Issue 13 point 21, chialoops' layout: stdout; then "STDERR:" and stderr; then the exit code if not 0.
    out = mcp.call(bash.url, "sh_run_command", {"command": "pwd; echo err >&2; echo out"})
    assert out == f"{workdir}\nout\nSTDERR:\nerr\n"
    assert mcp.call(bash.url, "sh_run_command", {"command": "echo only-out"}) == "only-out\n"
    assert mcp.call(bash.url, "sh_run_command", {"command": "printf e >&2"}) == "STDERR:\ne"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("echo no; exit 7", "no\n[exit code: 7]"),
        ("echo no; echo why >&2; exit 3", "no\nSTDERR:\nwhy\n[exit code: 3]"),
        ("printf partial; exit 1", "partial\n[exit code: 1]"),
        ("exit 2", "[exit code: 2]"),
    ],
)
def test_bash_tool_reports_a_failing_exit_code_last(bash: BashTool, mcp: MCP, command: str, expected: str) -> None:
    assert mcp.call(bash.url, "sh_run_command", {"command": command}) == expected


def test_bash_timeout_kills_the_whole_process_group(bash: BashTool, mcp: MCP, workdir: Path) -> None:
    pidfile = workdir / "timeout.pid"
    command = f"sleep 300 & echo $! > {pidfile}; sleep 300"
    out = mcp.call(bash.url, "sh_run_command", {"command": command})
    assert "timed out after 3s" in out
    child = _read_pid(pidfile)
    wait_until(lambda: not running(child), message=f"background child {child} to be gone")


def test_bash_output_is_capped_keeping_the_tail(bash: BashTool, mcp: MCP) -> None:
    out = mcp.call(bash.url, "sh_run_command", {"command": "head -c 50000 /dev/zero | tr '\\0' a; echo END"})
    assert out.startswith("[... ") and "bytes of earlier output truncated" in out
    assert out.endswith("aaaaEND\n")
    assert len(out) < 1100


def test_bash_returns_when_a_background_child_keeps_the_pipe(bash: BashTool, mcp: MCP, workdir: Path) -> None:
    pidfile = workdir / "bg.pid"
    out = mcp.call(bash.url, "sh_run_command", {"command": f"sleep 30 & echo $! > {pidfile}; echo started"})
    assert out == "started\n"
    os.kill(_read_pid(pidfile), 9)


def test_argv_mode_runs_without_a_shell_and_enforces_the_allowlist(deploy: Deployer, mcp: MCP, workdir: Path) -> None:
    tool = deploy(BashTool, "argv", work_dir=str(workdir), shell=False, allowed_executables=["echo"])
    run = "argv_run_command"
    assert mcp.call(tool.url, run, {"command": "echo $HOME 'a  b' ; ls"}) == "$HOME a  b ; ls\n"
    assert mcp.call(tool.url, run, {"command": "/bin/echo direct"}) == "direct\n"
    with pytest.raises(ToolError, match="'rm' is not allowed"):
        mcp.call(tool.url, run, {"command": "rm -rf nothing"})
    with pytest.raises(ToolError, match="not found"):
        mcp.call(tool.url, run, {"command": "no-such-program-xyz"})


def test_allowlist_requires_argv_mode() -> None:
    with pytest.raises(ValueError, match="shell=False"):
        BashTool("nope", allowed_executables=["ls"])
    with pytest.raises(ValueError, match="timeout_seconds"):
        BashTool("nope", timeout_seconds=0)


def test_async_bash_fast_command_finishes_in_the_run_call(abash: AsyncBashTool, mcp: MCP) -> None:
    assert mcp.call(abash.url, "job_run", {"command": "echo $GREETING", "wait_seconds": 60}) == {
        "started": True,
        "done": True,
        "running": False,
        "exit_code": 0,
        "output": "hello\n",
    }


def test_async_bash_long_command_is_polled_and_blocks_a_second_run(
    abash: AsyncBashTool, mcp: MCP, workdir: Path
) -> None:
    gate = workdir / "gate"
    command = f"while [ ! -e {gate} ]; do sleep 0.05; done; echo finished; exit 3"
    first = mcp.call(abash.url, "job_run", {"command": command, "wait_seconds": 0})
    assert first == {"started": True, "done": False, "running": True}
    assert mcp.call(abash.url, "job_run", {"command": "echo other"}) == {"started": False, "running": True}
    assert mcp.call(abash.url, "job_run_status", {"wait_seconds": 0}) == {"done": False, "running": True}
    gate.touch()
    status = wait_until(_finished(mcp, abash.url, "job_run_status"), message="the job to finish")
    assert status == {"done": True, "running": False, "exit_code": 3, "output": "finished\n"}
    # The finished result stays readable until the next run.
    assert mcp.call(abash.url, "job_run_status", {"wait_seconds": 0}) == status


def test_async_bash_timeout_kills_the_process_group(mcp: MCP, workdir: Path) -> None:
    config = ToolServerConfig(base_port=0)
    tool = serve(AsyncBashTool, "slow", work_dir=str(workdir), timeout_seconds=1, server_config=config)
    try:
        pidfile = workdir / "async-timeout.pid"
        command = f"sleep 300 & echo $! > {pidfile}; sleep 300"
        result = mcp.call(tool.url, "slow_run", {"command": command, "wait_seconds": 60})
        assert result["done"] is True and result["exit_code"] < 0
        assert "timed out after 1s" in result["output"]
        child = _read_pid(pidfile)
        wait_until(lambda: not running(child), message=f"command {child} to be gone")
    finally:
        tool.stop()


def test_stopping_the_tool_kills_a_running_command(deploy: Deployer, mcp: MCP, workdir: Path) -> None:
    tool = deploy(AsyncBashTool, "stopper", work_dir=str(workdir))
    pidfile = workdir / "stopper.pid"
    command = f"sleep 300 & echo $! > {pidfile}; wait"
    assert mcp.call(tool.url, "stopper_run", {"command": command, "wait_seconds": 0})["started"]
    child = _read_pid(pidfile)
    tool.stop()
    wait_until(lambda: not running(child), message=f"command {child} to die with its tool")
