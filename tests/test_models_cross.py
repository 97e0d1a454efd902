"""chia-tools' LLM backends dispatched as chia functions (chia-dispatch), on the two-node cluster.

The reference's users subclass a backend and make ``prompt`` a ``@ChiaFunction``, then call
``llm.prompt.chia_remote(llm, message, tools=[tool])``: the LLM object travels to a worker,
the loop runs there, and ``chia_cancel`` of an agent CLI kills the agent's process tree.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import ray

from chia.base.ChiaFunction import ChiaFunction, chia_cancel, get
from chia.base.llm_call import QueryResult
from chia.base.tools.BashTool import BashTool
from chia.base.tools.ChiaTool import ChiaTool, ToolServerConfig
from chia.models.agent_cli import AgentCLILLM
from chia.models.openai_compat import OpenAICompatLLM
from chia.models.scripted import ChatRequest, Reply, ScriptedChatServer, Step

pytestmark = pytest.mark.usefixtures("cluster")

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = ROOT / "packages" / "chia-tools" / "tests" / "agent_stand_in.py"
KEY = "sk-cross-test-0123456789"


class RemoteLLM(OpenAICompatLLM):
    """An OpenAI-compatible model whose agentic loop runs on a worker of node B."""

    @ChiaFunction(num_cpus=0, resources={"node_b": 0.1})
    def prompt(self, user_message: str, tools: Sequence[ChiaTool] | None = ()) -> QueryResult:
        # The base class by name: a zero-arg super() in a @ChiaFunction method of a class
        # pickled by value (a test module, __main__) makes chia-dispatch recurse.
        result = OpenAICompatLLM.prompt(self, user_message, tools)
        node = ray.get_runtime_context().get_node_id()
        return QueryResult(
            f"{result.result} on {node}", result.returncode, result.stderr, result.stream_result, result.success
        )


class RemoteAgent(AgentCLILLM):
    """An agent CLI run by a chia task: its subprocess tree is what chia_cancel kills."""

    @ChiaFunction(num_cpus=0)
    def prompt(self, user_message: str, tools: Sequence[ChiaTool] | None = ()) -> QueryResult:
        return AgentCLILLM.prompt(self, user_message, tools)


def test_openai_compat_llm_runs_its_loop_on_a_worker_with_chia_remote(cluster: Any, tmp_path: Path) -> None:
    tool = BashTool("cross_sim", work_dir=str(tmp_path), server_config=ToolServerConfig(base_port=0, token="t" * 16))
    try:
        script: list[Step] = [
            Reply.tool_call("cross_sim_run_command", command="echo $((6 * 7))"),
            lambda request: Reply.answer(str(request.messages[-1]["content"]).strip()),
        ]
        with ScriptedChatServer(script, api_key=KEY) as server:
            llm = RemoteLLM("scripted", base_url=server.base_url, api_key=KEY)
            result = get(llm.prompt.chia_remote(llm, "What is 6 x 7?", tools=[tool]))
            requests: list[ChatRequest] = server.requests
    finally:
        tool.stop()
    assert result.success and result.result == f"42 on {cluster.node_ids['node_b']}"
    assert [message["role"] for message in requests[1].messages] == ["user", "assistant", "tool"]


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_chia_cancel_kills_an_agent_cli_and_everything_it_started(tmp_path: Path) -> None:
    tool = BashTool("cancel_sim", work_dir=str(tmp_path), server_config=ToolServerConfig(base_port=0, token="c" * 16))
    pid_file = tmp_path / "pids.json"
    template = [sys.executable, str(STAND_IN), "template", "--config", "{mcp_config}", "--prompt", "{prompt}"]
    agent = RemoteAgent(template, timeout_seconds=600)
    try:
        ref = agent.prompt.chia_remote(agent, f"COMMAND: echo started\nHANG: {pid_file}", tools=[tool])
        assert wait_for(pid_file.exists, timeout=180), "the agent never reached its hang"
        pids = json.loads(pid_file.read_text())
        assert not gone(pids["agent"]) and not gone(pids["grandchild"])
        chia_cancel(ref, grace=2.0)
        assert wait_for(lambda: gone(pids["agent"]) and gone(pids["grandchild"]), timeout=60)
        with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError)):
            get(ref, timeout=60)
    finally:
        tool.stop()
