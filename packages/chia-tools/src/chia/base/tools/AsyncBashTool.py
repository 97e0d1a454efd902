"""AsyncBashTool: bash commands that may run for minutes, started and polled over MCP."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import Any

from chia.base.tools._process import (
    DEFAULT_MAX_OUTPUT_BYTES,
    CommandPolicy,
    ProcessGroups,
    run_command,
)
from chia.base.tools.AsyncJobTool import MAX_WAIT_SECONDS, AsyncJobTool
from chia.base.tools.ChiaTool import ToolServerConfig

__all__ = ["AsyncBashTool"]


class AsyncBashTool(AsyncJobTool):
    """Stable. MCP bash tool for commands that may run for minutes, built on AsyncJobTool.

    Like ``BashTool`` it runs shell commands in a working directory, but a single
    command may run long enough (a full build, a test suite) that a synchronous MCP call
    would lose its response, so ``<name>_run`` starts the command in the background and
    waits only a bounded slice for it; if it is still running the result says
    ``done=false`` and the agent polls ``<name>_run_status`` until ``done=true``. Fast
    commands therefore complete inside the single ``run`` call. One command at a time: a
    second ``run`` while one is in flight returns ``started=false``.

    Result on completion: ``{exit_code: int, output: str}`` (stdout+stderr combined,
    tail-truncated to ``max_output_bytes``). ``env`` adds variables to the server's
    environment. ``timeout_seconds`` (default: none) kills the command's whole process
    group; ``shell`` / ``allowed_executables`` behave as in ``BashTool``. Stopping the
    tool kills a command still running. ``work_dir`` and ``env`` pickle normally; the job
    primitives are dropped and recreated by ``AsyncJobTool``.
    """

    def __init__(
        self,
        name: str,
        work_dir: str = "/",
        env: dict[str, str] | None = None,
        task_options: dict[str, Any] | None = None,
        *,
        timeout_seconds: float | None = None,
        shell: bool = True,
        allowed_executables: Iterable[str] | None = None,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        server_config: ToolServerConfig | None = None,
    ) -> None:
        """Initializes ChiaTool with a name and optional resource requirements."""
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds={timeout_seconds} must be > 0 (or None)")
        super().__init__(name, task_options=task_options, server_config=server_config)
        self.work_dir = work_dir
        self.env = dict(env or {})
        self.timeout_seconds = timeout_seconds
        self.policy = CommandPolicy.create(shell, allowed_executables, max_output_bytes)
        self._groups = ProcessGroups()
        self.mcp.add_tool(
            self.run,
            name=f"{name}_run",
            description=(
                self.policy.describe(work_dir, timeout_seconds)
                + " Starts the command in the background and waits up to wait_seconds "
                f"(at most {MAX_WAIT_SECONDS}) for it. If it finished the result has "
                "done=true with exit_code and output; if not, done=false: then call "
                f"{name}_run_status until done=true. One command at a time: if one is "
                "already running the result is started=false; poll the status instead."
            ),
        )
        self.mcp.add_tool(
            self.run_status,
            name=f"{name}_run_status",
            description=(
                f"Wait up to wait_seconds (at most {MAX_WAIT_SECONDS}) for the command "
                f"started by {name}_run. Returns done=true with exit_code and output once "
                "it finished, done=false while it is still running."
            ),
        )
        super().__post_init__()

    def run(self, command: str, wait_seconds: int = 60) -> dict[str, Any]:
        """Stable. Run a bash command in the BACKGROUND, waiting up to wait_seconds (capped at 120).

        If it finishes in time, returns ``done=true`` with ``{exit_code, output}``. If it
        is still running, returns ``done=false``: poll ``<name>_run_status`` until
        ``done=true``. If a command is already running, returns ``started=false``.
        """
        env = {**os.environ, **self.env}
        argv = self.policy.argv(command, self.work_dir, env)
        started = self._job_start(functools.partial(self._execute, argv, env))
        if not started["started"]:
            return started
        return {"started": True, **self._job_status(wait_seconds)}

    def run_status(self, wait_seconds: int = 60) -> dict[str, Any]:
        """Stable. Wait up to wait_seconds (capped at 120) for the running command; report it."""
        return self._job_status(wait_seconds)

    def _execute(self, argv: list[str], env: dict[str, str]) -> dict[str, Any]:
        result = run_command(
            argv,
            work_dir=self.work_dir,
            env=env,
            timeout_seconds=self.timeout_seconds,
            max_output_bytes=self.policy.max_output_bytes,
            groups=self._groups,
        )
        return {"exit_code": result.exit_code, "output": result.output}

    def _on_server_stop(self) -> None:
        self._groups.kill_all()
