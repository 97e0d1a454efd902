"""ScriptedChatServer on the wire: what a Chat Completions client gets, in plain HTTP."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from chia.models.scripted import ChatRequest, Reply, ScriptedChatServer, Step


def post(base_url: str, path: str, body: dict[str, Any], key: str | None = None) -> tuple[int, dict[str, Any]]:
    parts = urlsplit(base_url)
    assert parts.hostname == "127.0.0.1" and parts.port is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    try:
        connection.request("POST", parts.path + path, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def broken_step(request: ChatRequest) -> Reply:
    raise KeyError("no such message")


def test_replies_refusals_and_what_is_recorded() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": []}
    script: list[Step] = [Reply.tool_call("sim_run_command", command="ls"), broken_step]
    with ScriptedChatServer(script, api_key="k" * 12) as server:
        assert post(server.base_url, "/chat/completions", body)[0] == 401  # no key: the step is kept
        status, completion = post(server.base_url, "/chat/completions", body, "k" * 12)
        assert status == 200 and completion["choices"][0]["finish_reason"] == "tool_calls"
        call = completion["choices"][0]["message"]["tool_calls"][0]
        assert call["function"] == {"name": "sim_run_command", "arguments": '{"command": "ls"}'}
        status, error = post(server.base_url, "/chat/completions", body, "k" * 12)
        assert status == 500 and error["error"]["message"] == "the scripted step raised KeyError: 'no such message'"
        status, error = post(server.base_url, "/chat/completions", body, "k" * 12)
        assert status == 500 and error["error"]["code"] == "script_exhausted"
        assert post(server.base_url, "/embeddings", body, "k" * 12)[0] == 404
        requests = server.requests
    assert [request.authorized for request in requests] == [False, True, True, True]
    assert all("authorization" not in request.headers for request in requests)
    assert requests[1].messages == body["messages"]


def test_error_replies_must_be_http_errors() -> None:
    with pytest.raises(ValueError, match="4xx or 5xx, got 200"):
        Reply.error(200, "fine")
