"""Keeps Ray workers' bypass and cache configuration in step with the driver's.

Owns the one dispatch hook and the one call wrapper of this distribution. The
driver registers *sections* (the active Bypass, the cache write-through
rules) and publishes them as a versioned snapshot to its
:class:`BypassServer`. The call wrapper is an object holding the snapshot's
:data:`SyncToken` (server actor name, namespace, version); the dispatch seam
exports wrappers once with each function, so the token reaches workers with
no per-call cost, and a new version simply registers a new wrapper. A worker
fetches a snapshot once per version, and only when a task needs it (a nested
dispatch, or ``get_active_bypass()`` inside a provider): a nested
``chia_remote`` is decided exactly as on the driver.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from chia.base._bypass_cache.bypass_server import BypassServer
from chia.base.dispatch_hooks import CallInfo, DispatchCall, add_call_wrapper, add_dispatch_hook

if TYPE_CHECKING:
    from ray import ObjectRef
    from ray.actor import ActorProxy
    from ray.runtime_context import RuntimeContext

__all__ = [
    "Section",
    "SyncToken",
    "SyncWrapper",
    "add_roots",
    "driver_server",
    "set_section",
    "task_section",
    "task_server",
    "task_token",
]

logger = logging.getLogger(__name__)

# Before other hooks that replace the dispatch: a bypass ends the hook chain.
HOOK_PRIORITY = 50


class Section(Protocol):
    """A piece of driver configuration that decides dispatches on the driver and on workers."""

    def _on_dispatch(self, call: DispatchCall, /) -> ObjectRef[Any] | None:
        """Annotate ``call``, or replace its dispatch by returning a ref."""
        ...

    def _snapshot(self) -> tuple[Callable[[Any], Section], Any]:
        """``(loader, payload)``; a worker rebuilds the section as ``loader(payload)``."""
        ...


SyncToken = str
"""Names a published snapshot: ``"<version>:<server actor name>:<namespace>"``."""


def _token_of(version: int, server: str, namespace: str) -> SyncToken:
    return f"{version}:{server}:{namespace}"


def _parse_token(token: SyncToken) -> tuple[int, str, str]:
    version, server, namespace = token.split(":", 2)
    return int(version), server, namespace


@dataclass(frozen=True, slots=True)
class _Server:
    handle: ActorProxy[BypassServer]
    name: str
    namespace: str
    session: str


@dataclass(frozen=True, slots=True)
class _Loaded:
    version: int
    by_name: dict[str, Section]
    ordered: tuple[Section, ...]


class _TaskState(threading.local):
    token: SyncToken | None = None


_task = _TaskState()


class SyncWrapper:
    """The call wrapper: runs a remote body with its snapshot's token current.

    One object per published version; it travels with the exported function.
    """

    __slots__ = ("token",)

    def __init__(self, token: SyncToken) -> None:
        self.token = token

    def __call__(self, call: CallInfo, proceed: Callable[[], Any], /) -> Any:
        if not call.remote:
            return proceed()
        if not _worker_hook_installed:
            _install_worker_hook()
        previous = _task.token
        _task.token = self.token
        try:
            return proceed()
        finally:
            _task.token = previous

    def __repr__(self) -> str:
        return f"SyncWrapper({self.token!r})"


# --- driver side -----------------------------------------------------------------

_SERVER_ACTOR: Any = ray.remote(BypassServer)

_lock = threading.RLock()
_sections: dict[str, tuple[int, Section]] = {}
_ordered: tuple[Section, ...] = ()
_versions = itertools.count(1)
_token: SyncToken | None = None
_token_session = ""
_token_checked = 0.0
# ray.init takes seconds: checking the session twice a second catches a reconnect.
SESSION_CHECK_SECONDS = 0.5
_server: _Server | None = None
_roots: tuple[str, ...] = ()
_remove_hook: Callable[[], None] | None = None
_remove_wrapper: Callable[[], None] | None = None
# Reads the process's current Ray connection on every call, so one object serves every session.
_runtime: RuntimeContext | None = None


def _session() -> str:
    """Identifies the Ray session (cluster and job) this driver is connected to."""
    global _runtime
    if _runtime is None:
        _runtime = ray.get_runtime_context()
    return f"{_runtime.get_node_id()}/{_runtime.get_job_id()}"


def set_section(name: str, order: int, section: Section | None) -> None:
    """Install (or, with ``None``, remove) a driver section; lower ``order`` decides first.

    The dispatch hook and the call wrapper are registered while any section
    exists, so with nothing active dispatch costs nothing extra.
    """
    global _ordered, _token, _remove_hook
    with _lock:
        if section is None:
            _sections.pop(name, None)
        else:
            _sections[name] = (order, section)
        _ordered = tuple(entry[1] for entry in sorted(_sections.values(), key=lambda entry: entry[0]))
        _token = None
        if _ordered:
            if _remove_hook is None:
                _remove_hook = add_dispatch_hook(_dispatch_hook, priority=HOOK_PRIORITY)
            return
        if _remove_hook is not None and not _worker_hook_installed:
            _remove_hook()
            _remove_hook = None
        _swap_wrapper(None)


def add_roots(roots: tuple[str, ...], *, wait: bool = False) -> ActorProxy[BypassServer]:
    """Admit ``roots`` on the driver's file server (created if needed) and return it.

    With ``wait``, returns once the server applied them. The roots also travel
    with every snapshot published after this.
    """
    global _roots, _token
    with _lock:
        merged = tuple(dict.fromkeys((*_roots, *roots)))
        if merged != _roots:
            _roots = merged
            _token = None
        server: Any = driver_server()
        admitted = server.add_roots.remote(list(roots))
    if wait:
        ray.get(admitted)
    handle: ActorProxy[BypassServer] = server
    return handle


def driver_server() -> ActorProxy[BypassServer]:
    """This driver's server actor (created on this node on first use)."""
    global _server, _token
    with _lock:
        session = _session()
        if _server is None or _server.session != session:
            name = f"chia_bypass_server_{uuid.uuid4().hex}"
            namespace = ray.get_runtime_context().namespace
            strategy = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
            handle: Any = _SERVER_ACTOR.options(
                name=name, namespace=namespace, num_cpus=0, scheduling_strategy=strategy
            ).remote()
            handle.add_roots.remote(list(_roots))
            _server = _Server(handle, name, namespace, session)
            _token = None
        return _server.handle


def _swap_wrapper(token: SyncToken | None) -> None:
    global _remove_wrapper
    if _remove_wrapper is not None:
        _remove_wrapper()
        _remove_wrapper = None
    if token is not None:
        _remove_wrapper = add_call_wrapper(SyncWrapper(token))


def _publish_if_changed() -> None:
    """Publish the sections as a new snapshot version when they changed (or Ray did)."""
    global _token, _token_session, _token_checked
    if _token is not None:
        now = time.monotonic()
        if now - _token_checked < SESSION_CHECK_SECONDS:
            return
        _token_checked = now
        if _token_session == _session():
            return
    with _lock:
        server = driver_server()
        assert _server is not None
        version = next(_versions)
        snapshot = [(name, *_sections[name][1]._snapshot()) for name in _sections]
        server.publish.remote(version, snapshot, list(_roots))
        _token = _token_of(version, _server.name, _server.namespace)
        _token_session = _server.session
        _swap_wrapper(_token)


# --- worker side -----------------------------------------------------------------

_loaded: dict[str, _Loaded] = {}
_server_handles: dict[tuple[str, str], ActorProxy[BypassServer]] = {}
_worker_hook_installed = False


def task_token() -> SyncToken | None:
    """The token of the synced task this thread runs on a worker, if any."""
    return _task.token


def _load(token: SyncToken) -> _Loaded:
    wanted, server, _namespace = _parse_token(token)
    loaded = _loaded.get(server)
    if loaded is not None and loaded.version >= wanted:
        return loaded
    with _lock:
        loaded = _loaded.get(server)
        if loaded is not None and loaded.version >= wanted:
            return loaded
        published: tuple[int, list[tuple[str, Callable[[Any], Section], Any]]] = ray.get(
            task_server(token).snapshot.remote(wanted)
        )
        version, snapshot = published
        by_name = {name: loader(payload) for name, loader, payload in snapshot}
        loaded = _Loaded(version, by_name, tuple(by_name.values()))
        _loaded[server] = loaded
        logger.debug("loaded bypass/cache snapshot %s version %d", server, version)
        return loaded


def task_section(token: SyncToken, name: str) -> Section | None:
    """Section ``name`` of the snapshot ``token`` names (fetched once per version)."""
    return _load(token).by_name.get(name)


def task_server(token: SyncToken) -> ActorProxy[BypassServer]:
    """The server actor named by ``token``."""
    _version, server, namespace = _parse_token(token)
    handle = _server_handles.get((server, namespace))
    if handle is None:
        handle = ray.get_actor(server, namespace=namespace)
        _server_handles[(server, namespace)] = handle
    return handle


def _install_worker_hook() -> None:
    global _worker_hook_installed, _remove_hook
    with _lock:
        if not _worker_hook_installed:
            _worker_hook_installed = True
            if _remove_hook is None:
                _remove_hook = add_dispatch_hook(_dispatch_hook, priority=HOOK_PRIORITY)


# --- the hook ----------------------------------------------------------------------


def _dispatch_hook(call: DispatchCall, /) -> ObjectRef[Any] | None:
    token = _task.token
    if token is not None:
        sections = _load(token).ordered  # a worker: the driver's sections, as published
    elif _ordered:
        _publish_if_changed()
        sections = _ordered
    else:
        return None  # a worker outside any synced task, or nothing active
    for section in sections:
        ref = section._on_dispatch(call)
        if ref is not None:
            return ref
    return None
