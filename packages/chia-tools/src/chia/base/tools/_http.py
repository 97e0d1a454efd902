"""HTTP serving for tool endpoints: the ASGI app, bearer-token check, port choice, uvicorn thread.

A tool's FastMCP server is exposed over streamable HTTP at ``/{name}/mcp`` with Host/Origin
validation always on, behind an optional bearer-token gate, by a uvicorn server running in
a daemon thread of the current process.
"""

from __future__ import annotations

import errno
import hmac
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import uvicorn
from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from chia.base.tools._config import ADVERTISE_HOST_ENV, RELAY_HOST_ENV, is_unspecified_host

logger = logging.getLogger(__name__)

_STARTUP_TIMEOUT_SECONDS = 60.0
_SHUTDOWN_TIMEOUT_SECONDS = 10.0


class BearerTokenMiddleware:
    """Answer 401 to any HTTP request whose ``Authorization`` is not ``Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="chia-tool"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b'{"error":"unauthorized"}'})
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        for key, value in scope["headers"]:
            if key == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False


def allowed_hosts(bind_host: str, advertised_host: str, extra: Iterable[str]) -> list[str]:
    """Host-header allowlist beyond loopback: bound/advertised addresses, tunnel hosts, extras."""
    hosts = [advertised_host, *extra]
    if not is_unspecified_host(bind_host):
        hosts.append(bind_host)
    else:
        hosts.append(socket.gethostname())
    hosts.extend(os.environ[var] for var in (ADVERTISE_HOST_ENV, RELAY_HOST_ENV) if os.environ.get(var))
    return list(dict.fromkeys(h for h in hosts if h))


def tool_http_app(
    mcp: FastMCP,
    path: str,
    *,
    token: str | None,
    hosts: Sequence[str],
    origins: Sequence[str],
) -> Starlette:
    """The streamable-HTTP app for ``mcp`` at ``path``, Host/Origin-guarded and token-gated."""
    middleware = [] if token is None else [Middleware(BearerTokenMiddleware, token=token)]
    return mcp.http_app(
        path=path,
        transport="http",
        middleware=middleware,
        host_origin_protection=True,
        allowed_hosts=list(hosts),
        allowed_origins=list(origins) if origins else None,
    )


def bind_first_free_port(host: str, base_port: int, max_tries: int) -> socket.socket:
    """A listening socket on the first port in ``base_port..base_port+max_tries-1`` that binds.

    ``base_port=0`` asks the OS for any free port. Ports held by other processes are
    skipped; any other bind error is raised.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    ports = [0] if base_port == 0 else range(base_port, min(base_port + max_tries, 65536))
    for port in ports:
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only
        # for sockets that say so, and without it Nagle adds ~40 ms to every response.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                logger.debug("port %d on %s unavailable (%s); trying the next", port, host, exc)
                continue
            raise
        sock.set_inheritable(True)
        return sock
    raise OSError(
        errno.EADDRINUSE,
        f"no free port on {host} in {base_port}..{base_port + max_tries - 1} (max_tries={max_tries})",
    )


@dataclass(slots=True)
class RunningServer:
    """A uvicorn server serving in a daemon thread of this process."""

    server: uvicorn.Server
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread; force-exit if it lingers."""
        self.server.should_exit = True
        self.thread.join(_SHUTDOWN_TIMEOUT_SECONDS)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(_SHUTDOWN_TIMEOUT_SECONDS)


def serve_in_thread(app: ASGIApp, sock: socket.socket, *, name: str) -> RunningServer:
    """Start uvicorn on ``sock`` in a daemon thread and wait until it accepts connections."""
    config = uvicorn.Config(
        app,
        log_level=logging.WARNING,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"chia-tool-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError(f"uvicorn for tool {name!r} exited during startup; see its log")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"uvicorn for tool {name!r} did not start within {_STARTUP_TIMEOUT_SECONDS}s")
        thread.join(0.01)
    port = int(sock.getsockname()[1])
    return RunningServer(server=server, thread=thread, port=port)


def advertised_host(bind_host: str) -> str:
    """The host clients should use for a server bound to ``bind_host``."""
    if not is_unspecified_host(bind_host):
        return bind_host
    configured = os.environ.get(ADVERTISE_HOST_ENV)
    if configured:
        return configured
    import ray

    if ray.is_initialized():
        node_ip: Callable[[], str] = ray.util.get_node_ip_address
        return node_ip()
    return socket.gethostname()
