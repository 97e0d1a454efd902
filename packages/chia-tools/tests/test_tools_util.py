"""Several MCP apps in one ASGI app (make_router_lifespan), served from a Ray actor."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import pytest
import ray
import uvicorn
from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.routing import Mount

from chia.base.tools.ChiaTool import ToolMCP
from chia.base.tools.util import make_router_lifespan
from chia_testing import wait_until

MCP = Any


def _server(name: str) -> FastMCP[Any]:
    server = ToolMCP(name)

    def whoami() -> str:
        return name

    server.add_tool(whoami, name=f"{name}_whoami")
    return server


class Ingress:
    """One uvicorn in the actor serving two MCP apps mounted under /gem5 and /chia."""

    def __init__(self) -> None:
        gem5, chia = _server("gem5"), _server("chia")
        app = Starlette(
            routes=[
                Mount("/gem5", app=gem5.http_app(path="/mcp", host_origin_protection=True)),
                Mount("/chia", app=chia.http_app(path="/mcp", host_origin_protection=True)),
            ],
            lifespan=make_router_lifespan([gem5, chia]),
        )
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))

    def start(self) -> int:
        threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True).start()
        wait_until(lambda: self.server.started, interval=0.01, message="uvicorn to start")  # then the call returns
        return int(self.sock.getsockname()[1])


def test_several_mcp_apps_share_one_asgi_app_in_an_actor(ray_cluster: object, mcp: MCP) -> None:
    ingress: Any = ray.remote(Ingress)
    actor = ingress.options(num_cpus=0).remote()
    try:
        port = ray.get(actor.start.remote(), timeout=120)
        for name in ("gem5", "chia"):
            url = f"http://127.0.0.1:{port}/{name}/mcp"
            assert list(mcp.tools(url)) == [f"{name}_whoami"]
            assert mcp.call(url, f"{name}_whoami", {}) == name
    finally:
        ray.kill(actor)


def test_lifespan_names_servers_that_are_not_mounted() -> None:
    mounted, forgotten = _server("mounted"), _server("forgotten")
    app = Starlette(routes=[Mount("/m", app=mounted.http_app(path="/mcp"))])
    lifespan = make_router_lifespan([mounted, forgotten])

    async def enter() -> None:
        async with lifespan(app):
            pass

    with pytest.raises(LookupError, match="forgotten"):
        asyncio.run(enter())


@pytest.mark.parametrize("app", [Starlette(), object(), None])
def test_a_lifespan_with_no_servers_works_with_any_app(app: Any) -> None:
    # Issue 15: it used to read app.routes even with no servers to find.
    entered = []

    async def enter() -> None:
        async with make_router_lifespan([])(app):
            entered.append(True)

    asyncio.run(enter())
    assert entered == [True]
