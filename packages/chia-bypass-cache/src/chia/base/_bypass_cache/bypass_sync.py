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
``chia_remote`` is decided exactly as on the driver. The state of both sides
is ``live_state.bypass`` (:mod:`chia.base._bypass_cache.state`).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from chia.base._bypass_cache.bypass_server import BypassServer
from chia.base._bypass_cache.state import live_state
from chia.base.dispatch_hooks import CallInfo, DispatchCall, add_call_wrapper, add_dispatch_hook

if TYPE_CHECKING:
    from ray import ObjectRef
    from ray.actor import ActorProxy

__all__ = [
    "DriverServer",
    "LoadedSnapshot",
    "Section",
    "SyncToken",
    "SyncWrapper",
    "add_roots",
    "created_in_task",
    "driver_server",
    "set_section",
    "task_section",
    "task_server",
    "task_token",
]

logger = logging.getLogger(__name__)

# Before other hooks that replace the dispatch: a bypass ends the hook chain.
HOOK_PRIORITY = 50
LOCAL_OVERRIDES = "bypass"
"""The section a Bypass created on a worker replaces (even when it bypasses nothing)."""


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
class DriverServer:
    """This driver's server actor and the Ray session it was started in."""

    handle: ActorProxy[BypassServer]
    name: str
    namespace: str
    session: str


@dataclass(frozen=True, slots=True)
class LoadedSnapshot:
    """A worker's copy of one published snapshot: its sections by name (with their order) and in decision order."""

    version: int
    by_name: dict[str, Section]
    ordered: tuple[Section, ...]
    orders: dict[str, int]


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
        state = live_state.bypass
        if not state.worker_hook_installed:
            _install_worker_hook()
        task = state.task
        previous = task.token
        task.token = self.token
        try:
            return proceed()
        finally:
            task.token = previous

    def __repr__(self) -> str:
        return f"SyncWrapper({self.token!r})"


# --- driver side -----------------------------------------------------------------

_SERVER_ACTOR: Any = ray.remote(BypassServer)

# ray.init takes seconds: checking the session twice a second catches a reconnect.
SESSION_CHECK_SECONDS = 0.5


def _session() -> str:
    """Identifies the Ray session (cluster and job) this driver is connected to."""
    state = live_state.bypass
    runtime = state.runtime
    if runtime is None:
        # It reads the process's current Ray connection on every call, so one object serves every session.
        runtime = state.runtime = ray.get_runtime_context()
    return f"{runtime.get_node_id()}/{runtime.get_job_id()}"


def set_section(name: str, order: int, section: Section | None) -> None:
    """Install (or, with ``None``, remove) a driver section; lower ``order`` decides first.

    The dispatch hook and the call wrapper are registered while any section
    exists, so with nothing active dispatch costs nothing extra.
    """
    state = live_state.bypass
    with state.lock:
        if section is None:
            state.sections.pop(name, None)
        else:
            state.sections[name] = (order, section)
        state.ordered = tuple(entry[1] for entry in sorted(state.sections.values(), key=lambda entry: entry[0]))
        state.token = None
        if state.ordered:
            if state.remove_hook is None:
                state.remove_hook = add_dispatch_hook(_dispatch_hook, priority=HOOK_PRIORITY)
            return
        if state.remove_hook is not None and not state.worker_hook_installed:
            state.remove_hook()
            state.remove_hook = None
        _swap_wrapper(None)


def add_roots(roots: tuple[str, ...], *, wait: bool = False) -> ActorProxy[BypassServer]:
    """Admit ``roots`` on the driver's file server (created if needed) and return it.

    With ``wait``, returns once the server applied them. The roots also travel
    with every snapshot published after this.
    """
    state = live_state.bypass
    with state.lock:
        merged = tuple(dict.fromkeys((*state.roots, *roots)))
        if merged != state.roots:
            state.roots = merged
            state.token = None
        server: Any = driver_server()
        admitted = server.add_roots.remote(list(roots), os.getcwd())
    if wait:
        ray.get(admitted)
    handle: ActorProxy[BypassServer] = server
    return handle


def driver_server() -> ActorProxy[BypassServer]:
    """This driver's server actor (created on this node on first use)."""
    state = live_state.bypass
    with state.lock:
        session = _session()
        if state.server is None or state.server.session != session:
            name = f"chia_bypass_server_{uuid.uuid4().hex}"
            namespace = ray.get_runtime_context().namespace
            strategy = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
            handle: Any = _SERVER_ACTOR.options(
                name=name, namespace=namespace, num_cpus=0, scheduling_strategy=strategy
            ).remote()
            handle.add_roots.remote(list(state.roots), os.getcwd())
            state.server = DriverServer(handle, name, namespace, session)
            state.token = None
        return state.server.handle


def _swap_wrapper(token: SyncToken | None) -> None:
    """Register the call wrapper of ``token`` in place of the current one (with the lock held)."""
    state = live_state.bypass
    if state.remove_wrapper is not None:
        state.remove_wrapper()
        state.remove_wrapper = None
    if token is not None:
        state.remove_wrapper = add_call_wrapper(SyncWrapper(token))


def _publish_if_changed() -> None:
    """Publish the sections as a new snapshot version when they changed (or Ray did)."""
    state = live_state.bypass
    if state.token is not None:
        now = time.monotonic()
        if now - state.token_checked < SESSION_CHECK_SECONDS:
            return
        state.token_checked = now
        if state.token_session == _session():
            return
    with state.lock:
        server = driver_server()
        assert state.server is not None
        state.version += 1
        snapshot = [(name, order, *section._snapshot()) for name, (order, section) in state.sections.items()]
        server.publish.remote(state.version, snapshot, list(state.roots))
        token = _token_of(state.version, state.server.name, state.server.namespace)
        state.token = token
        state.token_session = state.server.session
        _swap_wrapper(token)


# --- worker side -----------------------------------------------------------------


def created_in_task() -> str | None:
    """The id of the synced task this thread runs on a worker (None on a driver or outside one)."""
    if live_state.bypass.task.token is None:
        return None
    task_id: str | None = ray.get_runtime_context().get_task_id()
    return task_id


def task_token() -> SyncToken | None:
    """The token of the synced task this thread runs on a worker, if any."""
    return live_state.bypass.task.token


def _load(token: SyncToken) -> LoadedSnapshot:
    wanted, server, _namespace = _parse_token(token)
    state = live_state.bypass
    loaded = state.loaded.get(server)
    if loaded is not None and loaded.version >= wanted:
        return loaded
    with state.lock:
        loaded = state.loaded.get(server)
        if loaded is not None and loaded.version >= wanted:
            return loaded
        published: tuple[int, list[tuple[str, int, Callable[[Any], Section], Any]]] = ray.get(
            task_server(token).snapshot.remote(wanted)
        )
        version, snapshot = published
        snapshot = sorted(snapshot, key=lambda entry: entry[1])
        by_name = {name: loader(payload) for name, _order, loader, payload in snapshot}
        orders = {name: order for name, order, _loader, _payload in snapshot}
        loaded = LoadedSnapshot(version, by_name, tuple(by_name.values()), orders)
        state.loaded[server] = loaded
        logger.debug("loaded bypass/cache snapshot %s version %d", server, version)
        return loaded


def task_section(token: SyncToken, name: str) -> Section | None:
    """Section ``name`` of the snapshot ``token`` names (fetched once per version)."""
    return _load(token).by_name.get(name)


def task_server(token: SyncToken) -> ActorProxy[BypassServer]:
    """The server actor named by ``token``."""
    _version, server, namespace = _parse_token(token)
    handles = live_state.bypass.server_handles
    handle = handles.get((server, namespace))
    if handle is None:
        handle = ray.get_actor(server, namespace=namespace)
        handles[(server, namespace)] = handle
    return handle


def _install_worker_hook() -> None:
    state = live_state.bypass
    with state.lock:
        if not state.worker_hook_installed:
            state.worker_hook_installed = True
            if state.remove_hook is None:
                state.remove_hook = add_dispatch_hook(_dispatch_hook, priority=HOOK_PRIORITY)


# --- the hook ----------------------------------------------------------------------


def _with_local(loaded: LoadedSnapshot) -> tuple[Section, ...]:
    """A worker's sections when a Bypass was made on it: the driver's, with this process's own in their place.

    A Bypass created inside a task (a nested loop) decides that task's nested
    calls; the driver's other sections (its cache write-through) still apply.
    It is not published from the worker: the calls it dispatches carry the
    driver's token on, and later tasks of this worker process follow the driver.
    """
    state = live_state.bypass
    with state.lock:
        own = dict(state.sections)
    merged = [(order, section) for order, section in own.values()]
    merged += [
        (loaded.orders[name], section)
        for name, section in loaded.by_name.items()
        if name not in own and name != LOCAL_OVERRIDES
    ]
    return tuple(section for _order, section in sorted(merged, key=lambda entry: entry[0]))


def _dispatch_hook(call: DispatchCall, /) -> ObjectRef[Any] | None:
    state = live_state.bypass
    token = state.task.token
    if token is not None:
        # A worker: the driver's sections, as published (or with a Bypass made here in their place).
        local = state.active_task is not None and state.active_task == ray.get_runtime_context().get_task_id()
        sections = _with_local(_load(token)) if local else _load(token).ordered
    elif state.ordered:
        _publish_if_changed()
        sections = state.ordered
    else:
        return None  # a worker outside any synced task, or nothing active
    for section in sections:
        ref = section._on_dispatch(call)
        if ref is not None:
            return ref
    return None
