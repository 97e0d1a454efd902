"""Secure by default: loopback bind, bearer token, Host/Origin validation with tunnel hosts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from chia.base.tools.BashTool import BashTool
from chia.base.tools.ChiaTool import ChiaTool, ToolServerConfig, start_router
from chia.base.tools.serve import in_process, serve

Deployer = Any
MCP = Any
PostStatus = Callable[..., int]

TOKEN = "t0k3n-for-tests"


class Ping(ChiaTool):
    def setup(self) -> None:
        self.mcp.add_tool(self.ping, name=f"{self.name}_ping")

    def ping(self) -> str:
        return "pong"


@pytest.fixture(scope="module")
def guarded(deploy_module: Deployer) -> Ping:
    """A token-protected tool with an extra allowed host."""
    config = ToolServerConfig(token=TOKEN, allowed_hosts=("extra.example",))
    tool: Ping = deploy_module(Ping, "guarded", server_config=config)
    return tool


def test_default_bind_is_loopback(deploy: Deployer, mcp: MCP) -> None:
    tool = deploy(Ping, "plain")
    assert tool.server_config == ToolServerConfig()
    assert tool.hostname == "127.0.0.1"
    assert tool.auth_headers == {}
    assert mcp.call(tool.url, "plain_ping", {}) == "pong"


def test_requests_without_the_token_get_401(guarded: Ping, post_status: PostStatus) -> None:
    host = {"Host": f"127.0.0.1:{guarded.port}"}
    assert post_status(guarded.url, headers=host) == 401
    assert post_status(guarded.url, headers={**host, "Authorization": "Bearer wrong"}) == 401
    assert post_status(guarded.url, headers={**host, "Authorization": TOKEN}) == 401
    assert post_status(guarded.url, headers={**host, **guarded.auth_headers}) == 200


@pytest.mark.ray_compat
def test_mcp_client_with_the_token_works(guarded: Ping, mcp: MCP) -> None:
    assert guarded.auth_headers == {"Authorization": f"Bearer {TOKEN}"}
    assert mcp.call(guarded.url, "guarded_ping", {}, guarded.auth_headers) == "pong"
    with pytest.raises(MCPError):
        mcp.call(guarded.url, "guarded_ping", {})


def test_bad_host_header_is_refused(guarded: Ping, post_status: PostStatus) -> None:
    auth = guarded.auth_headers
    assert post_status(guarded.url, headers={**auth, "Host": f"attacker.example:{guarded.port}"}) == 421
    assert post_status(guarded.url, headers={**auth, "Host": "evil.example"}) == 421


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "extra.example"])
def test_loopback_and_configured_hosts_are_allowed(guarded: Ping, post_status: PostStatus, host: str) -> None:
    headers = {**guarded.auth_headers, "Host": f"{host}:{guarded.port}"}
    assert post_status(guarded.url, headers=headers) == 200


def test_tunnel_hosts_are_allowed_without_turning_protection_off(
    monkeypatch: pytest.MonkeyPatch, post_status: PostStatus
) -> None:
    monkeypatch.setenv("CHIA_TOOL_ADVERTISE_HOST", "head.internal")
    monkeypatch.setenv("CHIA_TOOL_RELAY_HOST", "relay.internal")
    tool = serve(Ping, "tunnelled", server_config=ToolServerConfig(base_port=0))
    try:
        for host in ("relay.internal", "head.internal"):
            assert post_status(tool.url, headers={"Host": f"{host}:{tool.port}"}) == 200
        assert post_status(tool.url, headers={"Host": f"other.internal:{tool.port}"}) == 421
    finally:
        tool.stop()


def test_cross_origin_requests_are_refused(guarded: Ping, post_status: PostStatus) -> None:
    headers = {**guarded.auth_headers, "Host": f"127.0.0.1:{guarded.port}"}
    assert post_status(guarded.url, headers={**headers, "Origin": "http://evil.example"}) == 403
    same_origin = {**headers, "Origin": f"http://127.0.0.1:{guarded.port}"}
    assert post_status(guarded.url, headers=same_origin) == 200


def test_non_loopback_bind_needs_a_token_or_explicit_opt_out() -> None:
    for host in ["0.0.0.0", "::", "10.0.0.7", "tool-host.example"]:
        with pytest.raises(ValueError, match="without a bearer token"):
            ToolServerConfig(host=host)
        assert ToolServerConfig(host=host, token="x").token == "x"
        assert ToolServerConfig(host=host, allow_unauthenticated=True).allow_unauthenticated
    for host in ["127.0.0.1", "127.0.0.2", "localhost", "::1"]:
        assert ToolServerConfig(host=host).token is None


def test_environment_without_token_refuses_a_public_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHIA_TOOL_HOST", "0.0.0.0")
    with pytest.raises(ValueError, match="CHIA_TOOL_TOKEN"):
        BashTool("refused")
    monkeypatch.setenv("CHIA_TOOL_TOKEN", "from-env")
    config = ToolServerConfig.from_env()
    assert (config.host, config.token) == ("0.0.0.0", "from-env")
    monkeypatch.setenv("CHIA_TOOL_BASE_PORT", "not-a-port")
    with pytest.raises(ValueError, match="CHIA_TOOL_BASE_PORT"):
        ToolServerConfig.from_env()


def test_start_router_refuses_a_public_address_without_token() -> None:
    with in_process(ToolServerConfig(base_port=0)):
        tool = Ping("local")
    try:
        tool.stop()
        with pytest.raises(ValueError, match=r"'0\.0\.0\.0'"):
            start_router(tool, "0.0.0.0", base_port=0)
        assert tool.port is not None and tool._server is None
    finally:
        tool.stop()


def test_token_never_shows_in_repr() -> None:
    config = ToolServerConfig(token="super-secret-value")
    assert "super-secret-value" not in repr(config)
    with pytest.raises(ValueError, match="non-empty"):
        ToolServerConfig(token="")
