"""MCP client side of the LLM backends: sessions to the ChiaTools handed to one prompt.

One FastMCP client (streamable HTTP, with the tool's bearer header) per tool, opened once
per prompt and reused for every call in the agentic loop, so a tool call costs one MCP
request. Also runs a coroutine to completion from synchronous code (``run_blocking``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp import types as mcp_types

T = TypeVar("T")

# What OpenAI-style function names allow; MCP tool names are freer.
_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class McpFunction:
    """One MCP tool as a model sees it: name, description and JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any]
    server: str


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """The text of a tool call's result, and whether the tool reported an error."""

    text: str
    is_error: bool


class ToolSessions:
    """Open MCP sessions to the servers of ``LLMCallBase.mcp_servers(tools)``.

    ``async with ToolSessions(servers, timeout) as sessions``: connects to every server,
    lists its tools (``sessions.functions``) and routes ``sessions.call(name, arguments)``
    to the server that has that tool. Two servers offering the same tool name, or a name
    a model API cannot carry, are refused with a ``ValueError`` naming both.
    """

    def __init__(self, servers: Mapping[str, Mapping[str, Any]], timeout_seconds: float | None) -> None:
        self._servers = servers
        self._timeout = timeout_seconds
        self._stack = contextlib.AsyncExitStack()
        self._routes: dict[str, Client[StreamableHttpTransport]] = {}
        self.functions: list[McpFunction] = []

    async def __aenter__(self) -> ToolSessions:
        try:
            for server, entry in self._servers.items():
                transport = StreamableHttpTransport(str(entry["url"]), headers=dict(entry.get("headers") or {}))
                client = await self._stack.enter_async_context(Client(transport, timeout=self._timeout))
                for tool in await client.list_tools():
                    self._add(server, client, tool)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._stack.aclose()

    def _add(self, server: str, client: Client[StreamableHttpTransport], tool: mcp_types.Tool) -> None:
        if not _FUNCTION_NAME.fullmatch(tool.name):
            raise ValueError(
                f"MCP tool {tool.name!r} of server {server!r} cannot be offered to a model: "
                "tool names must be 1-64 letters, digits, '_' or '-'"
            )
        owner = next((f.server for f in self.functions if f.name == tool.name), None)
        if owner is not None:
            raise ValueError(f"MCP tool {tool.name!r} is offered by both {owner!r} and {server!r}: rename one")
        self._routes[tool.name] = client
        self.functions.append(McpFunction(tool.name, tool.description or "", dict(tool.input_schema), server))

    def names_by_server(self) -> dict[str, list[str]]:
        """Server name -> the names of its tools, in listing order."""
        names: dict[str, list[str]] = {server: [] for server in self._servers}
        for function in self.functions:
            names[function.server].append(function.name)
        return names

    async def call(self, name: str, arguments: str | Mapping[str, Any] | None) -> ToolOutcome:
        """Call tool ``name`` with ``arguments`` (a JSON object or its text, as a model writes it).

        Failures the model can act on (unknown tool, arguments that are not a JSON object,
        an error the tool reported or raised) come back as an error outcome, not an exception.
        """
        client = self._routes.get(name)
        if client is None:
            return ToolOutcome(f"unknown tool {name!r}; available: {', '.join(sorted(self._routes))}", True)
        parsed = _arguments(arguments)
        if isinstance(parsed, str):
            return ToolOutcome(parsed, True)
        try:
            result = await client.call_tool_mcp(name, parsed)
        except Exception as error:  # the model reads what went wrong and may try again
            return ToolOutcome(f"calling {name} failed: {type(error).__name__}: {error}", True)
        return ToolOutcome(result_text(result), bool(result.is_error))


def _arguments(arguments: str | Mapping[str, Any] | None) -> dict[str, Any] | str:
    """The arguments as a dict, or the text of why they are unusable."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            decoded = json.loads(arguments)
        except json.JSONDecodeError as error:
            return f"the arguments are not valid JSON ({error}): {arguments[:200]!r}"
    else:
        decoded = arguments
    if not isinstance(decoded, Mapping):
        return f"the arguments must be a JSON object, got {type(decoded).__name__}"
    return dict(decoded)


def result_text(result: mcp_types.CallToolResult) -> str:
    """A tool result as the text a model reads: text blocks verbatim, other blocks as JSON."""
    parts = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            parts.append(json.dumps(block.model_dump(mode="json", exclude_none=True)))
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "".join(parts)


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion and return its result, from synchronous code.

    In a thread without a running event loop it gets a fresh loop here; under a running
    loop (async code, notebooks, async Ray actors) it runs on a private thread instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="chia-llm") as pool:
        return pool.submit(asyncio.run, coroutine).result()
