"""BashTool: an MCP tool that runs bash commands where it is deployed, with hard limits."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from chia.base.tools._process import (
    DEFAULT_MAX_OUTPUT_BYTES,
    CommandPolicy,
    ProcessGroups,
    append_line,
    run_command,
)
from chia.base.tools.ChiaTool import ChiaTool, ToolServerConfig

__all__ = ["BashTool"]


class BashTool(ChiaTool):
    """Stable. MCP tool that executes bash commands in its deployed container.

    Exposes ``<name>_run_command(command) -> str`` in chialoops' layout: stdout; then,
    if the command wrote to stderr, a line ``STDERR:`` followed by it; then, if the exit
    code is not 0, a line ``[exit code: N]``. Each command runs in its own
    process group in ``work_dir``; after ``timeout_seconds`` the whole group is killed
    (SIGTERM, then SIGKILL) and the result ends with a ``[timed out ...]`` line. Each
    stream is capped in memory at ``max_output_bytes`` (the tail is kept). With ``shell=False`` commands run without a shell (argv split with shlex),
    and ``allowed_executables`` (names or paths) restricts which programs may run.
    Stopping the tool kills commands still running.

    When constructed with ``task_options`` the tool is deployed with those options, e.g.
    onto the node of a chia-placement ``ChiaNode``::

        bash = BashTool("sim", work_dir="/workspace", task_options=node.task_options)
        bash.url  # http://<node>:<port>/sim/mcp, tool "sim_run_command"
    """

    def __init__(
        self,
        name: str,
        work_dir: str = "/",
        timeout_seconds: int = 120,
        task_options: dict[str, Any] | None = None,
        *,
        shell: bool = True,
        allowed_executables: Iterable[str] | None = None,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        server_config: ToolServerConfig | None = None,
    ) -> None:
        """Initializes ChiaTool with a name and optional resource requirements."""
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds={timeout_seconds} must be > 0")
        super().__init__(name, task_options=task_options, server_config=server_config)
        self.work_dir = work_dir
        self.timeout_seconds = timeout_seconds
        self.policy = CommandPolicy.create(shell, allowed_executables, max_output_bytes)
        self._groups = ProcessGroups()
        self.mcp.add_tool(
            self.run_command,
            name=f"{name}_run_command",
            description=self.policy.describe(work_dir, timeout_seconds, separate_stderr=True)
            + " A non-zero exit status is reported on the last line as [exit code: N].",
        )
        super().__post_init__()

    def run_command(self, command: str) -> str:
        """Stable. Run ``command`` and return its output (see the class docstring)."""
        env = dict(os.environ)
        result = run_command(
            self.policy.argv(command, self.work_dir, env),
            work_dir=self.work_dir,
            env=env,
            timeout_seconds=self.timeout_seconds,
            max_output_bytes=self.policy.max_output_bytes,
            groups=self._groups,
            separate_stderr=True,
        )
        text = result.output
        if result.stderr:
            text = append_line(append_line(text, "STDERR:"), result.stderr)
        if result.exit_code != 0 and not result.timed_out:
            text = append_line(text, f"[exit code: {result.exit_code}]")
        return text

    def _on_server_stop(self) -> None:
        self._groups.kill_all()
