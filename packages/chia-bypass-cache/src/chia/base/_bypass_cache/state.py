"""This process's live bypass and cache state, held by one object: :data:`live_state`.

Owns every mutable per-process variable of chia-bypass-cache: the active
Bypass, what the driver publishes to its workers (sections, server actor,
snapshot token, dispatch hook and call wrapper), what a worker loaded, and the
cache's namespace, write-through wrapper, worker handles and memo of large
hits. The modules that read and change it keep no mutable module variables of
their own, and a test returns the process to its import-time state with
``live_state.reset()`` instead of reaching into them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.actor import ActorProxy
    from ray.runtime_context import RuntimeContext

    from chia.base._bypass_cache.bypass_server import BypassServer
    from chia.base._bypass_cache.bypass_sync import DriverServer, LoadedSnapshot, Section, SyncToken
    from chia.base._bypass_cache.cache_actor import Cache
    from chia.base._bypass_cache.cache_memo import Memo
    from chia.base._bypass_cache.config_names import PendingNames
    from chia.base.bypass import Bypass

__all__ = ["BypassState", "CacheState", "LiveState", "TaskContext", "live_state"]


class TaskContext(threading.local):
    """Per thread: the snapshot token of the synced task the thread runs on a worker, if any."""

    token: SyncToken | None = None


@dataclass(slots=True)
class BypassState:
    """The active Bypass and the driver/worker synchronisation of ``bypass_sync``.

    ``active_lock`` guards ``active``; ``lock`` (reentrant) guards the rest.
    Hot paths read single fields without a lock, as they read module
    variables before: each read sees a whole value.
    """

    active: Bypass | None = None
    """On the driver: the last constructed Bypass (what ``get_active_bypass`` returns there)."""
    active_task: str | None = None
    """On a worker: the task that created ``active`` (a nested loop); its nested calls follow ``active``."""
    active_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, compare=False, repr=False)
    # --- driver side: the sections and their publication (reset forgets them)
    sections: dict[str, tuple[int, Section]] = field(default_factory=dict)
    """Installed sections by name, with their order (lower decides first)."""
    ordered: tuple[Section, ...] = ()
    """``sections`` in decision order: what the dispatch hook consults."""
    token: SyncToken | None = None
    """The published snapshot's token; None when the sections changed since (publish again)."""
    token_session: str = ""
    token_checked: float = 0.0
    """``time.monotonic()`` of the last check that the token's Ray session is still the current one."""
    remove_hook: Callable[[], None] | None = None
    remove_wrapper: Callable[[], None] | None = None
    """Removes the registered ``SyncWrapper`` of the current token."""
    # --- driver side: the server actor (reset keeps it, as the actor keeps running)
    server: DriverServer | None = None
    roots: tuple[str, ...] = ()
    """Real paths the driver's file server admits (sent again with every snapshot)."""
    version: int = 0
    """The last snapshot version published (the server ignores versions it has seen)."""
    runtime: RuntimeContext | None = None
    # --- driver side: YAML keys to check at the first dispatch (config_names)
    pending_names: dict[str, PendingNames] = field(default_factory=dict)
    """By section: the keys that named no known ChiaFunction when the section became active."""
    remove_names_hook: Callable[[], None] | None = None
    """Removes the one-shot hook that checks ``pending_names`` at the first dispatch."""
    # --- worker side
    loaded: dict[str, LoadedSnapshot] = field(default_factory=dict)
    """The latest snapshot loaded from each server (by actor name)."""
    server_handles: dict[tuple[str, str], ActorProxy[BypassServer]] = field(default_factory=dict)
    worker_hook_installed: bool = False
    task: TaskContext = field(default_factory=TaskContext, compare=False, repr=False)

    def reset(self) -> None:
        """Forget the active Bypass and everything published, loaded or registered.

        Removes the dispatch hook and the call wrapper and drops every
        section: dispatch runs as if nothing had been imported. The driver's
        server actor is kept, as actors are (with the roots it admits and the
        version counter: it ignores versions it has seen, so the next
        publication must come after them); a new Ray session starts a new one.
        """
        with self.active_lock, self.lock:
            for remove in (self.remove_hook, self.remove_wrapper, self.remove_names_hook):
                if remove is not None:
                    remove()
            self.active = None
            self.active_task = None
            self.sections.clear()
            self.ordered = ()
            self.token = None
            self.token_session = ""
            self.token_checked = 0.0
            self.remove_hook = None
            self.remove_wrapper = None
            self.pending_names.clear()
            self.remove_names_hook = None
            self.loaded.clear()
            self.server_handles.clear()
            self.worker_hook_installed = False
            self.task = TaskContext()


@dataclass(slots=True)
class CacheState:
    """The cache's per-process state: the started cache, write-through, handles and the memo.

    ``install_lock`` guards the write-through wrapper, ``memo_lock`` the memo.
    """

    started_namespace: str | None = None
    """Namespace of the cache this driver started (the default of ``get_active_cache``)."""
    install_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    remove_write_through: Callable[[], None] | None = None
    handles: dict[str, ActorProxy[Cache]] = field(default_factory=dict)
    """A worker's cache actor handles, by namespace (write-through)."""
    memo_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)
    memos: dict[str, Memo | None] = field(default_factory=dict)
    """Cache actor id -> memo of its large hits (None: not usable from this process)."""

    def reset(self) -> None:
        """Forget the started cache, remove the write-through wrapper and drop the memo.

        Closes the memo's views of generation files. The write-through
        section itself lives in :class:`BypassState` (``sections``).
        """
        with self.install_lock:
            if self.remove_write_through is not None:
                self.remove_write_through()
            self.remove_write_through = None
            self.started_namespace = None
            self.handles.clear()
        with self.memo_lock:
            for memo in self.memos.values():
                if memo is not None:
                    memo.view.close()
            self.memos.clear()


@dataclass(slots=True)
class LiveState:
    """All live state of this process: :attr:`bypass` and :attr:`cache`."""

    bypass: BypassState = field(default_factory=BypassState)
    cache: CacheState = field(default_factory=CacheState)

    def reset(self) -> None:
        """Return to the import-time state: no active bypass, no cache started, nothing registered.

        For tests, between tests. Actors are left running (stop a cache with
        ``stop_cache``), so the driver's bypass server stays known.
        """
        self.cache.reset()
        self.bypass.reset()


live_state = LiveState()
"""The one instance; modules reach their state as ``live_state.bypass`` and ``live_state.cache``."""
