"""AsyncJobTool: run one long job in a background thread and let MCP clients poll for it.

A tool call that blocks for minutes can lose its response on the streamable-HTTP
transport; start/status calls that each return within a bounded wait avoid that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from chia.base.tools.ChiaTool import ChiaTool, ToolServerConfig, _base_init

__all__ = ["MAX_WAIT_SECONDS", "AsyncJobTool"]

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 120


class AsyncJobTool(ChiaTool):
    """Stable. Base for MCP tools that run a long job in the background, then poll for it.

    Subclasses register their own start/status tools that delegate to ``_job_start`` and
    ``_job_status``::

        class BuildTool(AsyncJobTool):
            def __init__(self, name, task_options=None):
                super().__init__(name, task_options=task_options)
                self.mcp.add_tool(self.build, name=f"{name}_build")
                self.mcp.add_tool(self.build_status, name=f"{name}_build_status")
                super().__post_init__()

            def build(self, targets: list[str] | None = None) -> dict:
                return self._job_start(lambda: do_build(targets))

            def build_status(self, wait_seconds: int = 60) -> dict:
                return self._job_status(wait_seconds)

    One job runs at a time per tool instance: ``_job_start`` while a job is in flight
    returns ``{"started": False, "running": True}``. The job callable returns a dict whose
    keys are spliced into the status result once ``done=true``. A job that raises (or
    returns something else than a dict) reports ``done=true`` with ``error``: a status
    never reads "running" forever. The setup style works too (define ``setup``).

    The threading primitives are not picklable, so they are dropped in ``__getstate__``
    and recreated in ``__setstate__``; a copy starts with no job.
    """

    @_base_init
    def __init__(
        self,
        name: str,
        task_options: dict[str, Any] | None = None,
        logging_level: int = 10,
        *,
        server_config: ToolServerConfig | None = None,
    ) -> None:
        """Initializes ChiaTool with a name and optional resource requirements."""
        super().__init__(name, task_options=task_options, logging_level=logging_level, server_config=server_config)
        self._init_job_state()

    def _init_job_state(self) -> None:
        self._job_lock = threading.Lock()
        self._job: _Job | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_job_lock", None)
        state.pop("_job", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._init_job_state()

    def _job_start(self, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Stable. Start ``work`` in a daemon thread unless a job is already running."""
        with self._job_lock:
            if self._job is not None and not self._job.done.is_set():
                return {"started": False, "running": True}
            job = self._job = _Job()
        threading.Thread(target=self._run_job, args=(work, job), name=f"chia-job-{self.name}", daemon=True).start()
        return {"started": True, "running": True}

    def _run_job(self, work: Callable[[], dict[str, Any]], job: _Job) -> None:
        job.result = {"error": "job ended without a result"}
        try:
            result = work()
            if not isinstance(result, dict):
                raise TypeError(f"job returned {type(result).__name__}, expected dict")
            job.result = result
        except Exception as exc:
            logger.warning("tool %r: job failed: %s", self.name, exc, exc_info=True)
            job.result = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            job.done.set()

    def _job_status(self, wait_seconds: int = 60) -> dict[str, Any]:
        """Stable. Wait up to ``wait_seconds`` (clamped to 0..120) for the job; report its state.

        ``{"done": True, "running": False, **result}`` once finished (repeatable until
        the next start), ``{"done": False, "running": True}`` while running, and
        ``{"done": False, "running": False, "error": ...}`` if no job was started.
        """
        with self._job_lock:
            job = self._job
        if job is None:
            return {"done": False, "running": False, "error": "no job has been started"}
        if not job.done.wait(max(0, min(wait_seconds, MAX_WAIT_SECONDS))):
            return {"done": False, "running": True}
        return {"done": True, "running": False, **job.result}


class _Job:
    """One background job: set ``result`` first, then ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: dict[str, Any] = {}
