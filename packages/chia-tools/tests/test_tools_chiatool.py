"""ChiaTool lifecycle on a local Ray cluster: subclass styles, deployment, stop, URLs, ports."""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
from typing import Any

import pytest
import ray
from fastmcp import Client
from fastmcp.tools import Tool

from chia.base.tools.ChiaTool import (
    ChiaTool,
    ToolInfo,
    ToolServerConfig,
    resolve_tool_url,
    start_router,
)
from chia.base.tools.ChiaToolTemplate import ChiaToolTemplate
from chia.base.tools.serve import in_process

# Fixture helpers from conftest.py: `deploy(ToolClass, ...)` and `mcp.call/tools`.
Deployer = Any
MCP = Any


class EchoSetup(ChiaTool):
    """Setup style: __init__ is generated."""

    def setup(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.mcp.add_tool(self.echo, name=f"{self.name}_echo")

    def echo(self, text: str) -> str:
        return self.prefix + text


class EchoShout(EchoSetup):
    """Multi-level setup chaining: adds a tool on top of the parent's."""

    def setup(self, prefix: str = "", suffix: str = "!") -> None:
        super().setup(prefix)
        self.suffix = suffix
        self.mcp.add_tool(self.shout, name=f"{self.name}_shout")

    def shout(self, text: str) -> str:
        return self.prefix + text.upper() + self.suffix


class EchoExplicit(ChiaTool):
    """Explicit style, as written in the reference (reference-style add_tool call)."""

    def __init__(self, name: str, task_options: dict[str, Any] | None = None) -> None:
        super().__init__(name, task_options=task_options)
        self.mcp.add_tool(self.add, name=f"{name}_add")
        super().__post_init__()

    def add(self, a: int, b: int) -> int:
        """Add two integers."""
        return a + b


class WhereTool(ChiaToolTemplate):
    def setup(self) -> None:
        self.mcp.add_tool(self.node, name=f"{self.name}_node")

    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()


@pytest.fixture(scope="module")
def echo(deploy_module: Deployer) -> EchoSetup:
    tool: EchoSetup = deploy_module(EchoSetup, "echo", prefix="> ")
    return tool


@pytest.mark.ray_compat
def test_setup_style_generates_init_and_serves_over_mcp(echo: EchoSetup, mcp: MCP) -> None:
    assert echo.url == f"http://127.0.0.1:{echo.port}/echo/mcp"
    assert mcp.tools(echo.url) == {
        "echo_echo": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        }
    }
    assert mcp.call(echo.url, "echo_echo", {"text": "hi"}) == "> hi"


def test_multi_level_setup_chains(deploy: Deployer, mcp: MCP) -> None:
    tool = deploy(EchoShout, "shout", "~", suffix="?")
    assert set(mcp.tools(tool.url)) == {"shout_echo", "shout_shout"}
    assert mcp.call(tool.url, "shout_echo", {"text": "a"}) == "~a"
    assert mcp.call(tool.url, "shout_shout", {"text": "a"}) == "~A?"


def test_explicit_init_style_with_reference_add_tool_call(deploy: Deployer, mcp: MCP) -> None:
    tool = deploy(EchoExplicit, "calc")
    schema = mcp.tools(tool.url)["calc_add"]
    assert schema["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
    assert mcp.call(tool.url, "calc_add", {"a": 2, "b": 40}) == 42


@pytest.mark.ray_compat
def test_task_options_place_the_actor_and_busy_ports_are_skipped(deploy: Deployer, mcp: MCP) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        tool = deploy(
            WhereTool,
            "where",
            task_options={"resources": {"tool_node": 1}},
            server_config=ToolServerConfig(base_port=taken),
        )
        assert tool.port is not None and tool.port > taken
        node_id = ray.get_runtime_context().get_node_id()
        assert tool.info == ToolInfo(name="where", port=tool.port, node_id=node_id)
        assert mcp.call(tool.url, "where_node", {}) == node_id


@pytest.mark.ray_compat
def test_stop_shuts_the_server_and_kills_the_actor(ray_cluster: object, mcp: MCP) -> None:
    # A port the OS picks: tools elsewhere (the parallel CI cells) scan up from 8000 and could take
    # this one the moment it is freed, which would answer the connection below.
    tool = EchoSetup("stopme", server_config=ToolServerConfig(base_port=0))
    url, actor = tool.url, tool._actor
    assert mcp.call(url, "stopme_echo", {"text": "x"}) == "x"
    tool.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", tool.port or 0), timeout=5).close()
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.start.remote(), timeout=60)
    tool.stop()  # idempotent


@pytest.mark.ray_compat
def test_tool_object_travels_to_other_ray_workers(echo: EchoSetup) -> None:
    @ray.remote
    def use(t: EchoSetup) -> Any:
        async def call() -> Any:
            async with Client(t.url, timeout=60) as client:
                return (await client.call_tool("echo_echo", {"text": "ok"})).data

        return asyncio.run(call())

    assert ray.get(use.remote(echo), timeout=120) == "> ok"


def test_start_router_skips_ports_and_gives_up_after_max_tries(mcp: MCP) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with in_process(ToolServerConfig(base_port=0)):
            tool = EchoSetup("router")
        try:
            with pytest.raises(RuntimeError, match="already served"):
                start_router(tool, "127.0.0.1", base_port=taken)
        finally:
            tool.stop()
        port = start_router(tool, "127.0.0.1", base_port=taken, max_tries=50)
        try:
            assert taken < port < taken + 50
            assert mcp.call(tool.url, "router_echo", {"text": "p"}) == "p"
        finally:
            tool.stop()
        with pytest.raises(OSError, match="no free port"):
            start_router(tool, "127.0.0.1", base_port=taken, max_tries=1)


def test_resolve_tool_url_rewrites_only_the_advertised_host(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://10.1.2.3:8001/bash/mcp"
    assert resolve_tool_url(url) == url
    monkeypatch.setenv("CHIA_TOOL_ADVERTISE_HOST", "10.1.2.3")
    assert resolve_tool_url(url) == url  # no relay: unchanged
    monkeypatch.setenv("CHIA_TOOL_RELAY_HOST", "127.0.0.1")
    assert resolve_tool_url(url) == "http://127.0.0.1:8001/bash/mcp"
    assert resolve_tool_url("http://10.9.9.9:8001/bash/mcp") == "http://10.9.9.9:8001/bash/mcp"
    monkeypatch.setenv("CHIA_TOOL_RELAY_HOST", "::1")
    assert resolve_tool_url(url) == "http://[::1]:8001/bash/mcp"


@pytest.mark.ray_compat
def test_tool_url_is_resolved_for_the_reading_node(monkeypatch: pytest.MonkeyPatch, mcp: MCP) -> None:
    with in_process(ToolServerConfig(base_port=0)):
        tool = EchoSetup("tunnel")
    try:
        copy = pickle.loads(pickle.dumps(tool))
        copy.hostname = "10.7.7.7"  # as if advertised from a tunnelled head
        monkeypatch.setenv("CHIA_TOOL_ADVERTISE_HOST", "10.7.7.7")
        monkeypatch.setenv("CHIA_TOOL_RELAY_HOST", "127.0.0.1")
        assert copy.url == tool.url
        assert mcp.call(copy.url, "tunnel_echo", {"text": "via relay"}) == "via relay"
    finally:
        tool.stop()


@pytest.mark.parametrize("bad", ["", "a/b", "with space", "comma,name", "é", "x" * 129, None])
def test_tool_names_outside_the_mcp_rule_are_refused_quoting_it(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"invalid ChiaTool name .*: MCP tool names \(specification 2025-11-25"):
        EchoSetup(bad)


def test_path_only_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"URL path segment /\.\./mcp"):
        EchoSetup("..")


def test_names_mcp_allows_are_served(mcp: MCP) -> None:
    # Issue 13 point 20: dots and names longer than the old 48-character limit, as MCP allows.
    name = "sim.gem5-" + "x" * 110  # 119 characters; its tool "<name>_echo" is 124
    with in_process(ToolServerConfig(base_port=0)):
        tool = EchoSetup(name)
    try:
        assert tool.url.endswith(f"/{name}/mcp")
        assert mcp.call(tool.url, f"{name}_echo", {"text": "dotted"}) == "dotted"
        with pytest.raises(ValueError, match=r"invalid MCP tool name '.*_too_long' \(136 characters\)"):
            tool.mcp.add_tool(tool.echo, name=f"{name}_echo_is_too_long")
    finally:
        tool.stop()


def test_post_init_twice_is_a_no_op() -> None:
    # Issue 13 point 20: as in chialoops, the second call does nothing (no second server).
    class Twice(EchoExplicit):
        def __init__(self, name: str) -> None:
            super().__init__(name)
            port = self.port
            super().__post_init__()
            assert self.port == port

    with in_process(ToolServerConfig(base_port=0)):
        tool = Twice("twice")
    try:
        assert tool.tool_info == ToolInfo("twice", tool.port or 0, "")
    finally:
        tool.stop()


def test_a_tool_exposes_tool_info_logger_and_logging_name(echo: EchoSetup) -> None:
    assert echo.tool_info == echo.info and isinstance(echo.tool_info, ToolInfo) and echo.tool_info.name == "echo"
    assert echo.logging_name == "chia.base.tools.ChiaTool.EchoSetup.echo"
    assert echo.logger is logging.getLogger(echo.logging_name)
    assert pickle.loads(pickle.dumps(echo)).logger is echo.logger


def test_setup_on_top_of_an_explicit_init_is_refused_at_class_creation() -> None:
    with pytest.raises(TypeError, match="never calls it"):

        class Broken(EchoExplicit):
            def setup(self) -> None:
                pass


def test_add_tool_bridge_rejects_options_with_a_tool_object() -> None:
    with in_process(ToolServerConfig(base_port=0)):
        tool = EchoSetup("bridge")
    try:
        ready = Tool.from_function(tool.echo, name="ready")
        with pytest.raises(TypeError, match="plain function"):
            tool.mcp.add_tool(ready, name="renamed")
        assert tool.mcp.add_tool(ready).name == "ready"
    finally:
        tool.stop()


def test_unserved_tool_has_no_url() -> None:
    class Lazy(ChiaTool):
        pass

    lazy = Lazy("lazy")
    assert lazy.tool_info is None
    with pytest.raises(RuntimeError, match="not deployed"):
        _ = lazy.url
    assert repr(lazy) == "<Lazy 'lazy' not deployed>"
