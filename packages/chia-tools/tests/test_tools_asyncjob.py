"""AsyncJobTool: failing jobs report done=true, one job at a time, pickling drops threads."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest
import ray.cloudpickle

from chia.base.tools.AsyncJobTool import AsyncJobTool
from chia_testing import wait_until

Deployer = Any
MCP = Any


class Jobs(AsyncJobTool):
    """Setup style on top of AsyncJobTool: a job that succeeds, raises, or returns junk."""

    def setup(self) -> None:
        self.mcp.add_tool(self.start, name=f"{self.name}_start")
        self.mcp.add_tool(self.status, name=f"{self.name}_status")

    def start(self, kind: str) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            if kind == "raise":
                raise ValueError("the build exploded")
            if kind == "junk":
                return 42  # type: ignore[return-value]
            return {"answer": kind}

        return self._job_start(work)

    def status(self, wait_seconds: int = 60) -> dict[str, Any]:
        return self._job_status(wait_seconds)


def _finish(mcp: MCP, tool: Jobs, kind: str) -> dict[str, Any]:
    assert mcp.call(tool.url, "jobs_start", {"kind": kind}) == {"started": True, "running": True}

    def done() -> dict[str, Any] | None:
        status: dict[str, Any] = mcp.call(tool.url, "jobs_status", {"wait_seconds": 5})
        return status if status.get("done") else None

    return wait_until(done, message=f"the {kind!r} job to finish")


@pytest.fixture(scope="module")
def jobs(deploy_module: Deployer) -> Jobs:
    tool: Jobs = deploy_module(Jobs, "jobs")
    return tool


def test_status_before_any_job(jobs: Jobs, mcp: MCP) -> None:
    assert mcp.call(jobs.url, "jobs_status", {"wait_seconds": 0}) == {
        "done": False,
        "running": False,
        "error": "no job has been started",
    }


def test_successful_job_splices_its_result(jobs: Jobs, mcp: MCP) -> None:
    assert _finish(mcp, jobs, "fine") == {"done": True, "running": False, "answer": "fine"}


def test_a_job_that_raises_reports_done_with_the_error(jobs: Jobs, mcp: MCP) -> None:
    assert _finish(mcp, jobs, "raise") == {
        "done": True,
        "running": False,
        "error": "ValueError: the build exploded",
    }
    # The tool accepts the next job after a failure.
    assert _finish(mcp, jobs, "again")["answer"] == "again"


def test_a_job_returning_a_non_dict_reports_an_error(jobs: Jobs, mcp: MCP) -> None:
    status = _finish(mcp, jobs, "junk")
    assert status["done"] is True and status["error"] == "TypeError: job returned int, expected dict"


class Bare(AsyncJobTool):
    """Never deployed: exercises the job machinery and pickling in-process."""


def test_one_job_at_a_time_and_pickling_recreates_the_primitives() -> None:
    tool = Bare("bare")
    release = threading.Event()
    assert tool._job_start(lambda: {"released": release.wait(60)}) == {"started": True, "running": True}
    assert tool._job_start(lambda: {}) == {"started": False, "running": True}
    assert tool._job_status(wait_seconds=-5) == {"done": False, "running": True}

    for dumps in (pickle.dumps, ray.cloudpickle.dumps):
        copy = pickle.loads(dumps(tool))
        assert copy._job_status(0)["error"] == "no job has been started"
        assert copy._job_start(lambda: {"copy": True}) == {"started": True, "running": True}
        assert copy._job_status(60) == {"done": True, "running": False, "copy": True}

    release.set()
    assert tool._job_status(60) == {"done": True, "running": False, "released": True}
