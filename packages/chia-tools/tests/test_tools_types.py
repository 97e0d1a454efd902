"""Public signatures pinned with assert_type (this module is checked by mypy --strict)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, assert_type

from fastmcp.tools import Tool
from starlette.applications import Starlette

from chia.base.llm_call import LLMCallBase, QueryResult
from chia.base.tools.AsyncBashTool import AsyncBashTool
from chia.base.tools.AsyncJobTool import AsyncJobTool
from chia.base.tools.BashTool import BashTool
from chia.base.tools.ChiaTool import (
    ChiaTool,
    ToolInfo,
    ToolMCP,
    ToolServerConfig,
    resolve_tool_url,
    start_router,
)
from chia.base.tools.ChiaToolTemplate import ChiaToolTemplate
from chia.base.tools.serve import in_process, serve
from chia.base.tools.util import make_router_lifespan
from chia.models.agent_cli import PRESETS, AgentCLILLM, AgentCLIPreset
from chia.models.openai_compat import LLMError, OpenAICompatLLM
from chia.models.scripted import ChatRequest, Reply, ScriptedChatServer


def test_public_signatures() -> None:
    def check(tool: ChiaTool, bash: BashTool, abash: AsyncBashTool, job: AsyncJobTool) -> None:
        assert_type(tool.mcp, ToolMCP)
        assert_type(tool.mcp.add_tool(bash.run_command, name="x_run_command"), Tool)
        assert_type(tool.url, str)
        assert_type(tool.info, ToolInfo)
        assert_type(tool.auth_headers, dict[str, str])
        assert_type(tool.stop(), None)
        assert_type(start_router(tool, "127.0.0.1", base_port=8000, max_tries=100), int)
        assert_type(bash.run_command("ls"), str)
        assert_type(abash.run("ls", wait_seconds=60), dict[str, Any])
        assert_type(abash.run_status(60), dict[str, Any])
        assert_type(job._job_start(lambda: {}), dict[str, Any])
        assert_type(job._job_status(60), dict[str, Any])
        assert_type(resolve_tool_url("http://h:1/x/mcp"), str)
        assert_type(serve(BashTool, "b", work_dir="/tmp"), BashTool)
        with in_process(ToolServerConfig()) as entered:
            assert_type(entered, None)
        assert_type(
            make_router_lifespan([tool.mcp]),
            Callable[[Starlette], AbstractAsyncContextManager[None]],
        )
        assert_type(ChiaToolTemplate("t", 1, task_options={}, x=2), ChiaToolTemplate)

    def llm(call: LLMCallBase) -> None:
        assert_type(call.prompt("hi", []), QueryResult)
        assert_type(call.system_message, str)

    def backends(api: OpenAICompatLLM, cli: AgentCLILLM, error: LLMError, server: ScriptedChatServer) -> None:
        assert_type(api.prompt("hi", [ChiaTool("t")]), QueryResult)
        assert_type(api.endpoint, str)
        assert_type(error.status_code, int | None)
        assert_type(error.attempts, int)
        assert_type(cli.prompt("hi"), QueryResult)
        assert_type(cli.preset, AgentCLIPreset)
        assert_type(PRESETS["codex"], AgentCLIPreset)
        assert_type(server.base_url, str)
        assert_type(server.requests, list[ChatRequest])
        assert_type(Reply.tool_call("x", command="ls"), Reply)
        assert_type(
            OpenAICompatLLM("m", "s", base_url="http://h/v1", api_key="k", timeout_seconds=1.5), OpenAICompatLLM
        )
        assert_type(AgentCLILLM(["agent", ("--model", "{model}"), "{prompt}"], model="m"), AgentCLILLM)

    assert callable(check) and callable(llm) and callable(backends)
    assert ToolInfo("n", 1, "node") == ToolInfo(name="n", port=1, node_id="node")
