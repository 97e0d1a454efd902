"""Fixtures for chia-tools tests: one local Ray cluster (loopback) and a real MCP client.

Tools under test are deployed as Ray actors on that cluster (one node, 2 CPUs, the
custom resource ``tool_node``) and reached with FastMCP's own client over streamable
HTTP. The cluster, and tool classes of test modules pickled by value for the Ray
workers, come from chia-testing.
"""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from chia.base.tools.ChiaTool import ChiaTool
from chia_testing.cluster import ClusterShape, LoopbackCluster, cluster_fixture

T = TypeVar("T", bound=ChiaTool)

ray_cluster = cluster_fixture(
    ClusterShape(
        "chia-tools one node",
        {"head": {"num_cpus": 2, "resources": {"tool_node": 4}}},
        init_options={"log_to_driver": False},
    )
)


@dataclass
class Deployer:
    """Constructs tools and stops every one of them at teardown."""

    tools: list[ChiaTool]

    def __call__(self, factory: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        tool = factory(*args, **kwargs)
        self.tools.append(tool)
        return tool

    def stop_all(self) -> None:
        for tool in reversed(self.tools):
            tool.stop()
        self.tools.clear()


@pytest.fixture
def deploy(ray_cluster: LoopbackCluster) -> Iterator[Deployer]:
    """``deploy(ToolClass, *args, **kwargs)``: a deployed tool, stopped after the test."""
    deployer = Deployer([])
    yield deployer
    deployer.stop_all()


@pytest.fixture(scope="module")
def deploy_module(ray_cluster: LoopbackCluster) -> Iterator[Deployer]:
    """Like ``deploy`` but the tools live for the whole test module."""
    deployer = Deployer([])
    yield deployer
    deployer.stop_all()


class MCP:
    """Synchronous helpers over FastMCP's client (streamable HTTP)."""

    @staticmethod
    def client(url: str, headers: Mapping[str, str] | None = None) -> Client[StreamableHttpTransport]:
        return Client(StreamableHttpTransport(url, headers=dict(headers or {})), timeout=180)

    @classmethod
    def call(cls, url: str, tool: str, arguments: dict[str, Any], headers: Mapping[str, str] | None = None) -> Any:
        async def go() -> Any:
            async with cls.client(url, headers) as client:
                result = await client.call_tool(tool, arguments)
                return result.data

        return asyncio.run(go())

    @classmethod
    def tools(cls, url: str, headers: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
        """Tool name -> input schema."""

        async def go() -> dict[str, dict[str, Any]]:
            async with cls.client(url, headers) as client:
                return {tool.name: tool.input_schema for tool in await client.list_tools()}

        return asyncio.run(go())


@pytest.fixture(scope="session")
def mcp() -> type[MCP]:
    return MCP


def raw_post(url: str, *, headers: Mapping[str, str]) -> int:
    """Status of a bare MCP ``initialize`` POST to ``url`` with exactly ``headers`` set."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = (
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":'
        b'"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}'
    )
    try:
        connection.putrequest("POST", parts.path, skip_host=True, skip_accept_encoding=True)
        base = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Content-Length": str(len(body)),
        }
        for key, value in {**base, **headers}.items():
            connection.putheader(key, value)
        connection.endheaders(body)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture(scope="session")
def post_status() -> Callable[..., int]:
    return raw_post
