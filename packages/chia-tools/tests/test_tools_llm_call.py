"""The LLM-call base: QueryResult and LLMCallBase."""

from __future__ import annotations

import dataclasses
import pickle
import warnings
from collections.abc import Sequence

import pytest

from chia.base.llm_call import UNSET, LLMCallBase, QueryResult
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


def test_query_result_fields_can_be_set_after_construction_and_it_pickles() -> None:
    # Issue 13 point 19: backends fill the result in as the prompt runs, as in chialoops.
    result = QueryResult("", -1, "", "")
    result.result, result.returncode, result.success = "done", 0, True
    result.stream_result += "turn 1"
    copy = pickle.loads(pickle.dumps(result))
    assert copy == QueryResult("done", 0, "", "turn 1", success=True)
    assert dataclasses.asdict(copy)["success"] is True


class SkippingAgent(LLMCallBase):
    supports_dangerously_skip_permissions = True

    def prompt(self, user_message: str, tools: Sequence[ChiaTool] | None = ()) -> QueryResult:
        return QueryResult(repr((self.dangerously_skip_permissions, self.config)), 0, "", "")


def test_optional_options_default_to_unset_and_are_kept() -> None:
    # Issue 13 point 19: LLMCallBase(system_message, dangerously_skip_permissions=UNSET, config=UNSET).
    plain = EchoLLM("sys")
    assert plain.dangerously_skip_permissions is UNSET and plain.config is UNSET
    assert not UNSET and repr(UNSET) == "UNSET"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a supported option passed: no warning
        agent = SkippingAgent("sys", dangerously_skip_permissions=True)
    assert agent.prompt("x").result == "(True, UNSET)"
    assert LLMCallBase.supports_dangerously_skip_permissions is False and LLMCallBase.supports_config is False


def test_an_option_the_backend_does_not_support_warns_naming_it() -> None:
    with pytest.warns(UserWarning, match=r"SkippingAgent does not support config; .*config=\{'model': 'm'\}") as seen:
        agent = SkippingAgent("sys", config={"model": "m"})
    assert seen[0].filename == __file__  # points at the caller's line
    assert agent.config == {"model": "m"}
    with pytest.warns(UserWarning, match="EchoLLM does not support dangerously_skip_permissions"):
        EchoLLM("sys", dangerously_skip_permissions=False)


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
