"""The LLM-call base: QueryResult and LLMCallBase."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from chia.base.llm_call import LLMCallBase, QueryResult
from chia.base.tools.BashTool import BashTool
from chia.base.tools.ChiaTool import ChiaTool, ToolServerConfig
from chia.base.tools.serve import serve


class EchoLLM(LLMCallBase):
    def prompt(self, user_message: str, tools: Sequence[ChiaTool] | None = ()) -> QueryResult:
        names = ",".join(tool.name for tool in tools or ())
        result = f"{self.system_message}:{user_message}:{names}"
        return QueryResult(result, 0, "", user_message, success=True)


def test_query_result_fields_and_default() -> None:
    result = QueryResult("answer", 0, "", "transcript")
    assert (result.result, result.returncode, result.stderr, result.stream_result) == ("answer", 0, "", "transcript")
    assert result.success is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.success = True  # type: ignore[misc]


def test_llm_call_base_is_abstract_and_subclassable() -> None:
    with pytest.raises(TypeError):
        LLMCallBase("sys")  # type: ignore[abstract]
    assert EchoLLM("sys").prompt("hi").result == "sys:hi:"


def test_mcp_servers_describe_tools_for_an_agent() -> None:
    bash = serve(BashTool, "bash", server_config=ToolServerConfig(base_port=0, token="tok"))
    try:
        assert EchoLLM("s").prompt("x", [bash]).result == "s:x:bash"
        assert LLMCallBase.mcp_servers([bash]) == {
            "bash": {"type": "http", "url": bash.url, "headers": {"Authorization": "Bearer tok"}}
        }
        assert LLMCallBase.mcp_servers(None) == {}
    finally:
        bash.stop()
