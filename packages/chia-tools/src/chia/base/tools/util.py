"""Helpers for serving several FastMCP apps from one ASGI application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

__all__ = ["make_router_lifespan"]


def make_router_lifespan(
    mcp_instances: Sequence[FastMCP[Any]],
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Stable. A lifespan which runs all MCP session managers concurrently.

    Use it when several MCP ASGI apps are mounted under one ingress app (e.g. ``/gem5``,
    ``/chia``): Starlette does not run the lifespans of mounted apps, so their
    streamable-HTTP session managers would never start. Mount outside the lifespan; this
    only manages the session managers' lifetimes::

        app = Starlette(
            routes=[Mount("/gem5", gem5.mcp.http_app(path="/mcp")),
                    Mount("/chia", chia.mcp.http_app(path="/mcp"))],
            lifespan=make_router_lifespan([gem5.mcp, chia.mcp]),
        )

    At startup every server in ``mcp_instances`` must be mounted (at any depth) through
    an app made by its ``http_app()``; otherwise ``LookupError`` names the missing one.
    With no servers the lifespan does nothing, whatever app object it is given.
    """
    servers = list(mcp_instances)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not servers:  # nothing to find or run: any app object will do
            yield
            return
        mounted = list(_mounted_mcp_apps(app.routes))
        missing = [server.name for server in servers if not any(sub.state.fastmcp_server is server for sub in mounted)]
        if missing:
            raise LookupError(
                f"MCP servers {missing} are not mounted in this app: mount "
                "Mount('/<name>', app=server.http_app(path='/mcp')) for each"
            )
        async with AsyncExitStack() as stack:
            for sub in mounted:
                if any(sub.state.fastmcp_server is server for server in servers):
                    await stack.enter_async_context(sub.router.lifespan_context(sub))
            yield

    return lifespan


def _mounted_mcp_apps(routes: Iterable[BaseRoute]) -> Iterable[Starlette]:
    """Starlette apps made by ``FastMCP.http_app()`` found under ``routes``, depth first."""
    for route in routes:
        if not isinstance(route, Mount):
            continue
        app: Any = route.app
        while not isinstance(app, Starlette) and hasattr(app, "app"):
            app = app.app  # unwrap Mount-level middleware
        if isinstance(app, Starlette) and getattr(app.state, "fastmcp_server", None) is not None:
            yield app
        else:
            yield from _mounted_mcp_apps(route.routes)
