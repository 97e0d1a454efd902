"""OpenAICompatLLM against a scripted Chat Completions endpoint on 127.0.0.1, ChiaTools over MCP.

The ``openai`` SDK is not mocked: it talks HTTP to ``ScriptedChatServer``; the tools are
real ChiaTools (a BashTool in a Ray actor, with a bearer token) reached by a real MCP client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

pytest.importorskip("openai", reason="needs the SDK: chia-tools[openai] (the no-SDK case is in test_tools_serve)")

from chia.base.tools.BashTool import BashTool
from chia.base.tools.ChiaTool import ToolServerConfig
from chia.base.tools.ChiaToolTemplate import ChiaToolTemplate
from chia.base.tools.serve import serve
from chia.models.openai_compat import (
    LLMAuthenticationError,
    LLMBillingError,
    LLMConnectionError,
    LLMContextOverflowError,
    LLMError,
    LLMModelNotFoundError,
    LLMRateLimitError,
    LLMRequestError,
    LLMServerError,
    LLMTimeoutError,
    OpenAICompatLLM,
)
from chia.models.scripted import ChatRequest, Reply, ScriptedChatServer

KEY = "sk-test-SECRET-key-0123456789abcdef"
TOOL_TOKEN = "tool-token-0123456789"
Deployer = Any


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BashTool]:
    """A BashTool guarded by a bearer token, served in this process (the Ray test deploys its own)."""
    work = tmp_path_factory.mktemp("sim")
    (work / "sim.log").write_text("cycles: 1200\nipc: 1.75\n")
    tool = serve(BashTool, "sim", work_dir=str(work), server_config=ToolServerConfig(base_port=0, token=TOOL_TOKEN))
    yield tool
    tool.stop()


def endpoint(*script: Reply | Any, model: str | None = None) -> ScriptedChatServer:
    return ScriptedChatServer(script, api_key=KEY, model=model)


def llm_for(server: ScriptedChatServer, **kwargs: Any) -> OpenAICompatLLM:
    return OpenAICompatLLM(kwargs.pop("model", "scripted-model"), base_url=server.base_url, api_key=KEY, **kwargs)


def first_tool_output(request: ChatRequest) -> str:
    return str(next(m for m in request.messages if m["role"] == "tool")["content"]).strip()


def test_a_plain_answer_without_tools() -> None:
    with endpoint(Reply.answer("42")) as server:
        result = llm_for(server, max_tokens=100).prompt("What is 6 x 7?")
        (request,) = server.requests
    assert (result.result, result.returncode, result.stderr, result.success) == ("42", 0, "", True)
    assert result.stream_result.splitlines() == [
        '{"role": "user", "content": "What is 6 x 7?"}',
        '{"role": "assistant", "content": "42"}',
    ]
    assert request.authorized and request.body["model"] == "scripted-model" and request.body["max_tokens"] == 100
    assert "tools" not in request.body


def test_tool_calls_over_several_turns_run_over_mcp(sim: BashTool) -> None:
    script = [
        Reply.tool_call("sim_run_command", command="grep ipc sim.log"),
        Reply.tool_calls_of(
            ("sim_run_command", {"command": "echo $((6 * 7))"}),
            ("sim_delete_everything", {}),
            ("sim_run_command", "{not json"),
        ),
        lambda request: Reply.answer(f"IPC line: {first_tool_output(request)}"),
    ]
    with endpoint(*script) as server:
        llm = llm_for(server)
        result = llm.prompt("What IPC did the simulation reach?", tools=[sim])
        requests = server.requests
    assert (result.result, result.success) == ("IPC line: ipc: 1.75", True)
    tools = requests[0].body["tools"]
    assert [tool["function"]["name"] for tool in tools] == ["sim_run_command"]
    assert "command" in tools[0]["function"]["parameters"]["properties"]
    tool_messages = [m for m in requests[2].messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages[:2]] == ["ipc: 1.75\n", "42\n"]
    assert tool_messages[2]["content"].startswith("error: unknown tool 'sim_delete_everything'; available: ")
    assert tool_messages[3]["content"].startswith("error: the arguments are not valid JSON")
    calls = [call["id"] for m in requests[2].messages if m["role"] == "assistant" for call in m["tool_calls"]]
    assert [m["tool_call_id"] for m in tool_messages] == calls
    roles = [json.loads(line)["role"] for line in result.stream_result.splitlines()]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "tool", "tool", "assistant"]


def test_the_loop_stops_after_max_tool_iterations(sim: BashTool) -> None:
    script = [Reply.tool_call("sim_run_command", command=f"echo {n}") for n in range(3)]
    with endpoint(*script) as server:
        result = llm_for(server, max_tool_iterations=2).prompt("loop", tools=[sim])
        assert len(server.requests) == 3
    assert (result.success, result.returncode) == (False, 1)
    assert result.stderr == "no final answer after 2 rounds of tool calls"
    assert result.stream_result.count('"role": "tool"') == 2  # the third round was not run


def test_a_cut_answer_is_not_a_success() -> None:
    with endpoint(Reply.answer("The best design is", finish_reason="length")) as server:
        result = llm_for(server).prompt("Which design?")
    assert (result.result, result.success, result.returncode) == ("The best design is", False, 1)
    assert "finish_reason=length" in result.stderr


ERROR_CASES = [
    pytest.param(Reply.error(401, f"Incorrect API key provided: {KEY}"), LLMAuthenticationError, 401, id="401"),
    pytest.param(Reply.error(402, "Payment required"), LLMBillingError, 402, id="402"),
    pytest.param(Reply.error(429, "quota", code="insufficient_quota"), LLMBillingError, 429, id="429-quota"),
    pytest.param(
        Reply.error(400, "This model's maximum context length is 8192 tokens", code="context_length_exceeded"),
        LLMContextOverflowError,
        400,
        id="400-context",
    ),
    pytest.param(Reply.error(400, "temperature must be <= 2"), LLMRequestError, 400, id="400-other"),
]


@pytest.mark.parametrize(("reply", "kind", "status"), ERROR_CASES)
def test_errors_are_typed_name_the_endpoint_and_model_and_never_the_key(
    reply: Reply, kind: type[LLMError], status: int
) -> None:
    with endpoint(reply) as server:
        llm = llm_for(server)
        with pytest.raises(kind) as caught:
            llm.prompt("hi")
        assert len(server.requests) == 1  # none of these is retried
    error = caught.value
    assert (error.status_code, error.attempts, error.model, error.endpoint) == (
        status,
        1,
        "scripted-model",
        server.base_url,
    )
    assert server.base_url in str(error) and "'scripted-model'" in str(error)
    assert KEY not in str(error) and KEY.encode() not in pickle.dumps(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is kind and (str(copy), copy.status_code) == (str(error), status)


def test_an_unknown_model_is_named() -> None:
    server = ScriptedChatServer([Reply.answer("unused")], api_key=KEY, model="real-model")
    with server, pytest.raises(LLMModelNotFoundError, match=r"model 'no-such-model'.*no such model.*HTTP 404"):
        llm_for(server, model="no-such-model").prompt("hi")


def test_rate_limits_are_retried_honouring_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    script = [
        Reply.error(429, "slow down", headers={"Retry-After": "1"}),
        Reply.error(429, "slow down", headers={"retry-after-ms": "500"}),
        Reply.answer("ok"),
    ]
    caplog.set_level(logging.WARNING, logger="chia.models.openai_compat")
    with endpoint(*script) as server:
        result = llm_for(server, retries=2).prompt("hi")
        arrivals = [request.received_at for request in server.requests]
    assert (result.result, result.success, len(arrivals)) == ("ok", True, 3)
    waits = [record.getMessage().rsplit(" in ", 1)[1] for record in caplog.records]
    assert waits == ["1.0 s", "0.5 s"]
    assert arrivals[1] - arrivals[0] >= 1.0 and arrivals[2] - arrivals[1] >= 0.5  # lower bounds only


def test_rate_limits_give_up_after_the_retries_or_a_too_long_retry_after() -> None:
    server = endpoint(*[Reply.error(429, "slow down", headers={"Retry-After": "0"})] * 3)
    with server, pytest.raises(LLMRateLimitError) as caught:
        llm_for(server, retries=2).prompt("hi")
    assert (caught.value.attempts, caught.value.retry_after) == (3, 0.0)
    with endpoint(Reply.error(429, "come back tomorrow", headers={"Retry-After": "86400"})) as server:
        with pytest.raises(LLMRateLimitError, match="Retry-After 86400 s") as caught:
            llm_for(server, retries=5).prompt("hi")
        assert len(server.requests) == 1
    assert caught.value.retry_after == 86400


def test_server_errors_are_retried_with_backoff() -> None:
    with endpoint(Reply.error(500, "boom"), Reply.error(503, "overloaded"), Reply.answer("recovered")) as server:
        result = llm_for(server, retries=2).prompt("hi")
        assert len(server.requests) == 3
    assert (result.result, result.success) == ("recovered", True)
    server = endpoint(Reply.error(502, "bad gateway"), Reply.error(502, "bad gateway"))
    with server, pytest.raises(LLMServerError, match=r"HTTP 502: bad gateway") as caught:
        llm_for(server, retries=1).prompt("hi")
    assert (caught.value.status_code, caught.value.attempts) == (502, 2)


def test_a_slow_answer_times_out_without_a_retry() -> None:
    with endpoint(Reply.hang(), Reply.answer("too late")) as server:
        with pytest.raises(LLMTimeoutError, match=r"no answer from .* within 1 s") as caught:
            llm_for(server, timeout_seconds=1, retries=3).prompt("hi")
        assert len(server.requests) == 1
    assert caught.value.attempts == 1 and caught.value.status_code is None


def test_an_unreachable_endpoint_is_retried_then_named() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    llm = OpenAICompatLLM("m", base_url=f"http://user:pw@127.0.0.1:{port}/v1?x=1", api_key=KEY, retries=1)
    with pytest.raises(LLMConnectionError, match=rf"cannot reach http://127.0.0.1:{port}/v1 \(model 'm'\)") as caught:
        llm.prompt("hi")
    assert caught.value.attempts == 2 and "pw" not in str(caught.value)


def test_the_key_never_reaches_logs_transcripts_or_reprs(sim: BashTool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, the SDK's, httpx's, FastMCP's
    script = [
        Reply.error(500, f"upstream said {KEY}"),
        Reply.tool_call("sim_run_command", command="echo done"),
        Reply.answer("done"),
        Reply.error(401, f"bad key {KEY}"),
    ]
    with endpoint(*script) as server:
        llm = llm_for(server, retries=1)
        result = llm.prompt("go", tools=[sim])
        with pytest.raises(LLMAuthenticationError) as caught:
            llm.prompt("again")
    assert result.success
    assert KEY not in caplog.text and TOOL_TOKEN not in caplog.text
    assert KEY not in result.stream_result and KEY not in repr(llm) and KEY not in str(caught.value)
    assert "***" in caplog.text  # the 500's message was logged, redacted


@ray.remote(num_cpus=0)
def prompt_on_a_worker(llm: OpenAICompatLLM, message: str, tool: BashTool) -> tuple[str, bool]:
    result = llm.prompt(message, tools=[tool])
    return result.result, result.success


@pytest.mark.ray_compat
def test_the_llm_pickles_and_its_errors_cross_ray(deploy: Deployer, tmp_path: Path) -> None:
    config = ToolServerConfig(base_port=0, token=TOOL_TOKEN)
    sim = deploy(BashTool, "sim", work_dir=str(tmp_path), server_config=config)  # a ChiaTool in a Ray actor
    script = [Reply.tool_call("sim_run_command", command="echo worker"), Reply.answer("ran")]
    with endpoint(*script, Reply.error(401, "no")) as server:
        llm = llm_for(server)
        assert pickle.loads(pickle.dumps(llm)).prompt.__func__ is OpenAICompatLLM.prompt
        assert ray.get(prompt_on_a_worker.remote(llm, "go", sim)) == ("ran", True)
        assert server.requests[1].messages[-1]["content"] == "worker\n"
        with pytest.raises(LLMAuthenticationError) as caught:
            ray.get(prompt_on_a_worker.remote(llm, "again", sim))
    assert caught.value.status_code == 401 and caught.value.endpoint == server.base_url


def test_prompt_works_under_a_running_event_loop() -> None:
    async def caller(llm: OpenAICompatLLM) -> str:
        return llm.prompt("from async code").result

    with endpoint(Reply.answer("fine")) as server:
        assert asyncio.run(caller(llm_for(server))) == "fine"


class Echo(ChiaToolTemplate):
    def setup(self) -> None:
        self.mcp.add_tool(self.echo, name="echo")

    def echo(self, text: str) -> str:
        return text


def test_two_tools_offering_the_same_name_are_refused() -> None:
    config = ToolServerConfig(base_port=0)
    first, second = serve(Echo, "first", server_config=config), serve(Echo, "second", server_config=config)
    try:
        server = endpoint(Reply.answer("unused"))
        with server, pytest.raises(ValueError, match=r"'echo' is offered by both 'first' and 'second'"):
            llm_for(server).prompt("hi", tools=[first, second])
    finally:
        first.stop()
        second.stop()


def test_construction_defaults_and_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    llm = OpenAICompatLLM("m", "system")
    assert (llm.base_url, llm.system_message, llm.max_tokens) == ("http://127.0.0.1:9/v1", "system", 4096)
    assert repr(llm) == "OpenAICompatLLM(model='m', endpoint='http://127.0.0.1:9/v1')"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ValueError, match=r"no API key: pass api_key=\.\.\. or set OPENAI_API_KEY"):
        OpenAICompatLLM("m")
    with pytest.raises(ValueError, match=r"base_url must be an http"):
        OpenAICompatLLM("m", base_url="127.0.0.1:8000", api_key="x")
    with pytest.raises(ValueError, match=r"client_kwargs may not set \['max_retries'\]"):
        OpenAICompatLLM("m", api_key="x", client_kwargs={"max_retries": 5})
    with pytest.raises(ValueError, match="max_tool_iterations"):
        OpenAICompatLLM("m", api_key="x", max_tool_iterations=0)


@pytest.fixture(autouse=True)
def _no_openai_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests pass endpoints and keys explicitly: the machine's OPENAI_* settings stay out."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    yield
