"""ChiaTool: an MCP tool server deployed onto a Ray worker as an actor.

Owns the tool lifecycle (construction styles, deployment, stop), the endpoint URL and its
rewriting for tunnelled nodes (``resolve_tool_url``), and ``start_router``, which serves a
tool with uvicorn in a background thread of the current process.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ray

from chia.base.tools._config import (
    ADVERTISE_HOST_ENV,
    RELAY_HOST_ENV,
    ToolServerConfig,
    require_safe_bind,
)
from chia.base.tools._http import (
    RunningServer,
    advertised_host,
    allowed_hosts,
    bind_first_free_port,
    serve_in_thread,
    tool_http_app,
)
from chia.base.tools._mcp import ToolMCP, check_tool_name

__all__ = [
    "ChiaTool",
    "ToolInfo",
    "ToolMCP",
    "ToolServerConfig",
    "resolve_tool_url",
    "start_router",
]

logger = logging.getLogger(__name__)

_STOP_TIMEOUT_SECONDS = 30.0

# True while `chia.base.tools.serve` constructs tools: `__post_init__` then serves the
# tool in this process instead of deploying it to a Ray actor.
_serve_in_process: ContextVar[bool] = ContextVar("chia_tool_serve_in_process", default=False)
# Server config for tools constructed without one (set by `chia.base.tools.serve`).
_default_server_config: ContextVar[ToolServerConfig | None] = ContextVar(
    "chia_tool_default_server_config", default=None
)

# `__init__`s that only initialise state (no setup(), no deployment). A subclass that
# defines `setup` on top of one of these gets a generated `__init__` (see __init_subclass__).
_BASE_INITS: set[Callable[..., None]] = set()
# `__init__`s that call setup() and __post_init__() themselves.
_SETUP_STYLE_INITS: set[Callable[..., None]] = set()


_Init = TypeVar("_Init", bound=Callable[..., None])


def _base_init(init: _Init) -> _Init:
    """Mark an ``__init__`` that only initialises state (setup-style subclasses build on it)."""
    _BASE_INITS.add(init)
    return init


def _setup_style(init: _Init) -> _Init:
    """Mark an ``__init__`` that runs ``setup()`` then ``__post_init__()`` itself."""
    _SETUP_STYLE_INITS.add(init)
    return init


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """Stable. Where a deployed tool listens: its name, port and the Ray node hosting it.

    ``node_id`` is empty for a tool served without Ray.
    """

    name: str
    port: int
    node_id: str


class ChiaTool:
    """Stable. Base class for MCP tool servers deployed onto Ray workers.

    Subclasses register functions as MCP tools with
    ``self.mcp.add_tool(self.method, name=...)`` and are deployed when construction
    finishes: a Ray actor (placed by ``task_options``, e.g. a chia-placement node's
    ``task_options``) serves ``self.mcp`` over streamable HTTP at::

        http://{self.hostname}:{self.port}/{self.name}/mcp

    (``self.url``). ``self.stop()`` shuts uvicorn down and kills the actor.

    Two ways to write a subclass. With a ``setup`` hook (an ``__init__`` is generated)::

        class EchoTool(ChiaTool):
            def setup(self, prefix: str = "") -> None:
                self.prefix = prefix
                self.mcp.add_tool(self.echo, name=f"{self.name}_echo")

            def echo(self, text: str) -> str:
                return self.prefix + text

        tool = EchoTool("echo", prefix="> ", task_options=node.task_options)

    Or with an explicit ``__init__`` that finishes with ``super().__post_init__()``::

        class EchoTool(ChiaTool):
            def __init__(self, name, task_options=None):
                super().__init__(name, task_options=task_options)
                self.mcp.add_tool(self.echo, name=f"{name}_echo")
                super().__post_init__()

    Access control comes from ``server_config`` (default: ``ToolServerConfig.from_env()``,
    i.e. 127.0.0.1 unless ``CHIA_TOOL_HOST`` says otherwise). To serve a tool without
    Ray, construct it through ``chia.base.tools.serve``. The tool object pickles
    (its MCP server is rebuilt from what was registered with ``add_tool``/``add_resource``
    /``add_prompt``), so it can be handed to other Ray tasks, e.g. an LLM worker that needs
    ``url`` and ``auth_headers``.

    Names follow MCP's tool-name rule (1-128 of ``A-Z a-z 0-9 _ - .``), which applies to
    ``name`` (also the URL path segment) and to every name given to ``add_tool``. A tool
    exposes ``tool_info`` (its :class:`ToolInfo` once deployed), and ``logger`` /
    ``logging_name`` (a logger of its own, at ``logging_level`` where the tool is served).
    """

    @_base_init
    def __init__(
        self,
        name: str,
        task_options: dict[str, Any] | None = None,
        logging_level: int = 10,
        *,
        server_config: ToolServerConfig | None = None,
    ) -> None:
        """Initializes ChiaTool with a name and optional resource requirements."""
        check_tool_name(name, what="ChiaTool name")
        if not name.strip("."):
            raise ValueError(f"invalid ChiaTool name {name!r}: it becomes the URL path segment /{name}/mcp")
        self.name = name
        self.task_options: dict[str, Any] = dict(task_options or {})
        self.logging_level = logging_level
        self.logging_name = f"{__name__}.{type(self).__qualname__}.{name}"
        self.logger = logging.getLogger(self.logging_name)
        self.server_config = server_config or _default_server_config.get() or ToolServerConfig.from_env()
        self.mcp = ToolMCP(name)
        self.hostname: str | None = None
        self.port: int | None = None
        self.node_id: str | None = None
        self._actor: Any = None
        self._server: RunningServer | None = None
        self._deployed = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "setup" not in cls.__dict__ or "__init__" in cls.__dict__:
            return
        inherited = cls.__init__
        if inherited in _SETUP_STYLE_INITS:
            return  # the inherited __init__ already runs setup() then __post_init__()
        if inherited not in _BASE_INITS:
            raise TypeError(
                f"{cls.__qualname__} defines setup() but inherits an explicit __init__ "
                f"({inherited.__qualname__}) that never calls it; define "
                f"{cls.__qualname__}.__init__ instead, or subclass ChiaTool / "
                "ChiaToolTemplate directly"
            )
        setattr(cls, "__init__", _setup_style_init(inherited))  # noqa: B010 -- mypy rejects assigning a method

    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Stable. Hook for the auto-constructed style: register tools and set state here.

        A subclass that defines ``setup`` and no ``__init__`` gets an ``__init__``
        ``(name, *args, task_options=None, logging_level=10, server_config=None,
        **kwargs)`` that runs ``ChiaTool.__init__``, then ``setup(*args, **kwargs)``, then
        ``__post_init__()``. Multi-level subclasses override ``setup`` and call
        ``super().setup(...)`` to chain. (For typed constructor arguments under mypy,
        subclass ``ChiaToolTemplate``.)
        """

    def __post_init__(self) -> None:
        """Stable. Deploy the tool: on a Ray actor, or in this process under ``serve``.

        Call it at the end of an explicit ``__init__``, after every ``add_tool``. As in
        chialoops, a second call is a no-op (e.g. an explicit ``__init__`` subclassing
        another explicit ``__init__`` that already called it): tools registered after
        the first call are not served.
        """
        if self._deployed:
            self.logger.debug("tool %r is already deployed; __post_init__() again does nothing", self.name)
            return
        self._deployed = True
        if _serve_in_process.get():
            config = self.server_config
            start_router(self, config.host, config.base_port, config.max_tries)
        else:
            self._deploy_on_ray()

    def _deploy_on_ray(self) -> None:
        options = {"num_cpus": 0, **self.task_options}
        actor = _server_actor_class().options(**options).remote(self)
        try:
            hostname, info = ray.get(actor.start.remote())
        except BaseException:
            ray.kill(actor)
            self._deployed = False
            raise
        self._actor = actor
        self.hostname = hostname
        self.port = info.port
        self.node_id = info.node_id
        logger.info("tool %r deployed on node %s at %s", self.name, info.node_id, self.url)

    def stop(self) -> None:
        """Stable. Shut the tool's uvicorn server down, then kill its actor. Idempotent."""
        actor, self._actor = self._actor, None
        if actor is not None:
            try:
                ray.get(actor.shutdown.remote(), timeout=_STOP_TIMEOUT_SECONDS)
            except (ray.exceptions.RayError, TimeoutError):
                logger.warning("tool %r: clean shutdown failed; killing its actor", self.name)
            finally:
                ray.kill(actor)
        if self._server is not None:
            self._stop_in_process()

    def _stop_in_process(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        self._on_server_stop()

    def _on_server_stop(self) -> None:
        """Release what the tool holds in the serving process (e.g. running commands)."""

    def _attach_server(self, server: RunningServer, hostname: str) -> None:
        self._server = server
        self.hostname = hostname
        self.port = server.port
        self.node_id = self.node_id or ""

    @property
    def url(self) -> str:
        """Stable. The MCP endpoint, rewritten by ``resolve_tool_url`` for the current node."""
        if self.hostname is None or self.port is None:
            raise RuntimeError(f"tool {self.name!r} is not deployed yet (no host/port)")
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return resolve_tool_url(f"http://{host}:{self.port}/{self.name}/mcp")

    @property
    def info(self) -> ToolInfo:
        """Stable. Name, port and node of the deployed tool."""
        if self.port is None:
            raise RuntimeError(f"tool {self.name!r} is not deployed yet (no port)")
        return ToolInfo(name=self.name, port=self.port, node_id=self.node_id or "")

    @property
    def tool_info(self) -> ToolInfo | None:
        """Stable. The deployed tool's :class:`ToolInfo`, as in chialoops; None until it is deployed."""
        return None if self.port is None else self.info

    @property
    def auth_headers(self) -> dict[str, str]:
        """Experimental. Headers an MCP client must send (``Authorization`` when a token is set)."""
        return self.server_config.auth_headers

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_server"] = None  # a running uvicorn stays with the process that runs it
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        where = f"port={self.port}" if self.port is not None else "not deployed"
        return f"<{type(self).__name__} {self.name!r} {where}>"


def _setup_style_init(base_init: Callable[..., None]) -> Callable[..., None]:
    """The ``__init__`` of a setup-style subclass built on ``base_init``."""

    @_setup_style
    def __init__(
        self: ChiaTool,
        name: str,
        *args: Any,
        task_options: dict[str, Any] | None = None,
        logging_level: int = 10,
        server_config: ToolServerConfig | None = None,
        **kwargs: Any,
    ) -> None:
        base_init(
            self,
            name,
            task_options=task_options,
            logging_level=logging_level,
            server_config=server_config,
        )
        self.setup(*args, **kwargs)
        self.__post_init__()

    __init__.__doc__ = "Initializes the tool, runs setup(*args, **kwargs), then deploys it."
    return __init__


def resolve_tool_url(url: str) -> str:
    """Stable. Rewrite a tool URL so it is routable from the current node.

    On tunnelled workers ``CHIA_TOOL_ADVERTISE_HOST`` and ``CHIA_TOOL_RELAY_HOST`` are
    set: tool URLs advertise the head's real address (the advertise host), reachable only
    on the local network, so a URL whose host is the advertise host gets the relay host
    (the reverse-tunnel loopback) instead; the port and path are kept. Anywhere else (or
    when either variable is absent) the URL is returned unchanged.

    Example::

        # CHIA_TOOL_ADVERTISE_HOST=10.0.0.5  CHIA_TOOL_RELAY_HOST=127.0.0.1
        resolve_tool_url("http://10.0.0.5:8001/bash/mcp")  # "http://127.0.0.1:8001/bash/mcp"
    """
    advertise = os.environ.get(ADVERTISE_HOST_ENV, "").strip().strip("[]").lower()
    relay = os.environ.get(RELAY_HOST_ENV, "").strip()
    if not advertise or not relay:
        return url
    parts = urlsplit(url)
    if parts.hostname != advertise:
        return url
    relay_host = f"[{relay}]" if ":" in relay and not relay.startswith("[") else relay
    netloc = relay_host if parts.port is None else f"{relay_host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def start_router(tool: ChiaTool, ip_address: str, base_port: int = 8000, max_tries: int = 100) -> int:
    """Stable. Serve ``tool`` with a uvicorn server in a background thread of this process.

    Uses a plain uvicorn server instead of Ray Serve so that several nodes can each host
    their own independent tool servers without route-prefix conflicts. Tries ports from
    ``base_port`` on, skipping any already in use (e.g. by host-networked containers),
    and returns the port bound. ``base_port=0`` lets the OS pick one.

    Refuses (``ValueError``) a non-loopback ``ip_address`` unless the tool's
    ``server_config`` has a token or ``allow_unauthenticated=True``.
    """
    if tool._server is not None:
        raise RuntimeError(f"tool {tool.name!r} is already served on port {tool.port}")
    config = tool.server_config
    require_safe_bind(ip_address, config.token, config.allow_unauthenticated)
    hostname = advertised_host(ip_address)
    app = tool_http_app(
        tool.mcp,
        f"/{tool.name}/mcp",
        token=config.token,
        hosts=allowed_hosts(ip_address, hostname, config.allowed_hosts),
        origins=config.allowed_origins,
    )
    sock = bind_first_free_port(ip_address, base_port, max_tries)
    tool._attach_server(serve_in_thread(app, sock, name=tool.name), hostname)
    logger.info("tool %r serving on %s:%d", tool.name, ip_address, tool.port)
    assert tool.port is not None
    return tool.port


class _ToolServerActor:
    """Ray actor that holds a tool and serves it; start and stop run in the same process."""

    def __init__(self, tool: ChiaTool) -> None:
        self._tool = tool

    def start(self) -> tuple[str, ToolInfo]:
        logging.getLogger("chia.base.tools").setLevel(self._tool.logging_level)
        self._tool.logger.setLevel(self._tool.logging_level)
        config = self._tool.server_config
        self._tool.node_id = ray.get_runtime_context().get_node_id()
        start_router(self._tool, config.host, config.base_port, config.max_tries)
        assert self._tool.hostname is not None
        return self._tool.hostname, self._tool.info

    def shutdown(self) -> None:
        self._tool._stop_in_process()


@functools.cache
def _server_actor_class() -> Any:
    return ray.remote(_ToolServerActor)
