"""Repeat cache hits without an actor round trip, for processes on the cache's node.

Owns the per-process memo of hits and the cache handle that consults it. A
large value is served from an object-store copy owned by the cache actor; a
small one travels inline in the reply to ``read``. Either reply carries a
generation stamp (:mod:`chia.base._bypass_cache.cache_generation`). When the
reading process runs on the cache's node, it keeps an object-store ref of the
hit: the actor's copy, or a copy of its own for a small value or a large one
the actor holds pickled (written through from a worker or reloaded from
disk), made by one ``ray.put`` at the first repeat hit, so that a repeat hit
is a plain ``ray.get`` of ``(True, value)``. A large ``bytes`` value the actor
holds pickled is kept in this process's memory instead (``Remembered.value``):
its ref holds only the entry's identity and the actor's copy, and reads back
here as that same immutable ``bytes`` object, with no copy of the value;
anywhere else (the ref passed to a task), or once the memo has let the entry
go, it reads back from the actor's copy. The next ``handle.read.remote(tag)``
returns that ref, after checking that the entry's stamp in the shared generation
file is unchanged and that the actor still holds its directory lock. Any
write, eviction, removal or flush of the entry changes the stamp, so a
changed entry is always read from the actor.

Memo hits reach the actor's LRU order and ``hits`` counter in batches
(``touch_many``), at most ``TOUCH_BATCH`` hits or ``TOUCH_SECONDS`` late.
"""

from __future__ import annotations

import pickle
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import ray
import ray.actor

from chia.base._bypass_cache.cache_generation import GenerationView, Stamp, slot_offset
from chia.base._bypass_cache.state import live_state

__all__ = ["CacheHandle", "CacheMethod", "Memo", "Remembered", "ResidentHit", "fast_handle"]

TOUCH_BATCH = 256
TOUCH_SECONDS = 1.0
# The actor's directory lock is checked at most this often per memo (a killed actor is noticed this late).
ALIVE_SECONDS = 0.001


@dataclass(slots=True)
class Remembered:
    """One remembered hit: ``ref`` resolves to ``(True, value)``; until it exists, ``source`` makes it.

    ``source`` is the stored pickle of a small value, or the actor's copy
    holding a large value's pickle; a copy of the reader's own is put at the
    first repeat hit (a hit read once costs no copy). ``value`` is that copy
    when it is ``bytes`` read from the actor's copy: kept here, not put.
    """

    ref: ray.ObjectRef[Any] | None
    stamp: Stamp
    size: int
    slot: int
    source: bytes | ray.ObjectRef[Any] | None = None
    value: bytes | None = None

    def value_ref(self, actor_id: str, tag: str) -> ray.ObjectRef[Any]:
        """``ref``, making it from ``source`` first if need be."""
        if self.ref is None:
            source = self.source
            assert source is not None  # set whenever ref is not
            if isinstance(source, bytes):
                self.ref = ray.put((True, pickle.loads(source)))
            else:
                hit = ray.get(source)
                if type(hit[1]) is bytes:  # immutable: every repeat hit here may return this very object
                    self.value = hit[1]
                    self.ref = ray.put(_SharedBytes(actor_id, tag, self.stamp, source))
                else:
                    self.ref = ray.put(hit)
            self.source = None
        return self.ref


class _SharedBytes:
    """A repeat hit of a large ``bytes`` value: unpickles as ``(True, value)``, the value from the memo if it can."""

    __slots__ = ("actor_id", "source", "stamp", "tag")

    def __init__(self, actor_id: str, tag: str, stamp: Stamp, source: ray.ObjectRef[Any]) -> None:
        self.actor_id, self.tag, self.stamp, self.source = actor_id, tag, stamp, source

    def __reduce__(self) -> tuple[Any, ...]:
        return _load_shared_bytes, (self.actor_id, self.tag, self.stamp, self.source)


def _load_shared_bytes(actor_id: str, tag: str, stamp: Stamp, source: ray.ObjectRef[Any]) -> tuple[bool, Any]:
    memo = live_state.cache.memos.get(actor_id)
    entry = None if memo is None else memo.entries.get(tag)
    if entry is not None and entry.stamp == stamp and entry.value is not None:
        return True, entry.value  # the same version of the entry (stamps change on every write)
    hit: tuple[bool, Any] = ray.get(source)  # another process, or the memo let it go: the actor's copy
    return hit


@dataclass(slots=True)
class Memo:
    """The remembered hits of one cache actor: tag -> (ref, stamp, size), least recently used first."""

    view: GenerationView
    budget: int
    entries: OrderedDict[str, Remembered] = field(default_factory=OrderedDict)
    bytes: int = 0
    touched: list[str] = field(default_factory=list)
    last_touch: float = field(default_factory=time.monotonic)
    alive_until: float = 0.0

    def forget(self, tag: str) -> None:
        """Drop ``tag``'s remembered hit, if any."""
        entry = self.entries.pop(tag, None)
        if entry is not None:
            self.bytes -= entry.size


@dataclass(frozen=True, slots=True)
class ResidentHit:
    """What the actor's ``read`` returns for a hit.

    Unpickles, in the reading process, as ``(True, value)``, remembering the
    hit when that process runs on the cache's node. ``ref`` is the actor's
    object-store copy of a large value (``pickled`` when that copy holds the
    stored pickle rather than the value); a small value comes as ``payload``,
    its stored pickle, and ``ref`` is None.
    """

    ref: ray.ObjectRef[Any] | None
    actor_id: str
    node_id: str
    directory: str
    lock_name: str
    tag: str
    stamp: Stamp
    size: int
    budget: int
    payload: bytes | None = None
    pickled: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        return _load_hit, tuple(getattr(self, name) for name in self.__dataclass_fields__)


def _load_hit(*fields: Any) -> Any:
    hit = ResidentHit(*fields)
    value = ray.get(hit.ref) if hit.ref is not None else (True, pickle.loads(hit.payload or b""))
    try:
        _remember(hit)
    except Exception:  # the memo is an optimisation: a failure to use it costs a round trip later, no more
        state = live_state.cache
        with state.memo_lock:
            state.memos[hit.actor_id] = None
    return value


def _remember(hit: ResidentHit) -> None:
    state = live_state.cache
    with state.memo_lock:
        memos = state.memos
        if hit.actor_id not in memos:
            here = ray.get_runtime_context().get_node_id()
            memos[hit.actor_id] = (
                Memo(GenerationView(hit.directory, hit.lock_name), hit.budget) if here == hit.node_id else None
            )
        memo = memos[hit.actor_id]
        if memo is None or hit.size > memo.budget:
            return
        known = memo.entries.get(hit.tag)
        if known is not None and known.stamp == hit.stamp:
            return  # the same entry read through the actor again: keep the copy made for it
        memo.forget(hit.tag)
        while memo.entries and memo.bytes + hit.size > memo.budget:
            memo.forget(next(iter(memo.entries)))
        slot = slot_offset(hit.tag)
        if hit.ref is not None and not hit.pickled:
            entry = Remembered(hit.ref, hit.stamp, hit.size, slot)
        else:  # no ready value in the object store: a copy of our own, made at the first repeat hit
            entry = Remembered(None, hit.stamp, hit.size, slot, hit.payload if hit.ref is None else hit.ref)
        memo.entries[hit.tag] = entry
        memo.bytes += hit.size


def _lookup(actor_id: str, tag: str) -> tuple[ray.ObjectRef[Any] | None, list[str]]:
    """The remembered ref of an unchanged entry, and the hits due to be reported to the actor."""
    state = live_state.cache
    with state.memo_lock:
        memo = state.memos.get(actor_id)
        if memo is None:
            return None, []
        entry = memo.entries.get(tag)
        if entry is None:
            return None, []
        now = time.monotonic()
        if now > memo.alive_until:
            if not memo.view.writer_alive():  # that actor is gone for good: so is its memo
                memo.view.close()
                state.memos[actor_id] = None
                return None, []
            memo.alive_until = now + ALIVE_SECONDS
        if memo.view.stamp_at(entry.slot) != entry.stamp:
            memo.forget(tag)
            return None, []
        ref = entry.value_ref(actor_id, tag)
        memo.entries.move_to_end(tag)
        memo.touched.append(tag)
        if len(memo.touched) < TOUCH_BATCH and now - memo.last_touch < TOUCH_SECONDS:
            return ref, []
        touched, memo.touched, memo.last_touch = memo.touched, [], now
        return ref, touched


class _MemoRead:
    """``handle.read``: ``.remote(tag)`` answers repeat hits from the memo, the rest from the actor."""

    __slots__ = ("_actor_id", "_handle")

    def __init__(self, handle: CacheHandle) -> None:
        self._handle = handle
        self._actor_id: str = handle._actor_id.hex()

    @property
    def _method(self) -> Any:
        return ray.actor.ActorHandle.__getattr__(self._handle, "read")

    def remote(self, tag: str) -> ray.ObjectRef[Any]:
        if isinstance(tag, str):
            ref, touched = _lookup(self._actor_id, tag)
            if ref is not None:
                if touched:
                    ray.actor.ActorHandle.__getattr__(self._handle, "touch_many").remote(touched)
                return ref
        result: ray.ObjectRef[Any] = self._method.remote(tag)
        return result

    chia_remote = remote

    def options(self, **options: Any) -> CacheMethod:
        """Options apply to a real actor call (no memo)."""
        return CacheMethod(self._method.options(**options))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._method, name)


class CacheMethod:
    """One cache actor method: ``.remote(...)`` and its alias ``.chia_remote(...)``, as ``chia_actor`` gives."""

    __slots__ = ("_method",)

    def __init__(self, method: Any) -> None:
        self._method = method

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the actor method (a plain actor call: no bypass, cache or profiling)."""
        return self._method.remote(*args, **kwargs)

    chia_remote = remote

    def options(self, **options: Any) -> CacheMethod:
        """The method with Ray call options."""
        return CacheMethod(self._method.options(**options))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._method, name)


class CacheHandle(ray.actor.ActorHandle):  # type: ignore[type-arg]
    """The cache actor's handle: memo-backed ``read``, ``.chia_remote`` on every method, ``.actor``.

    It stays a Ray ``ActorHandle`` (``ray.kill`` takes it) and pickles as
    itself, so a handle passed into a task keeps these there.
    """

    @property
    def read(self) -> _MemoRead:
        # Made once per handle: a repeat hit costs a few microseconds, this would be one of them.
        reader: _MemoRead | None = self.__dict__.get("_chia_memo_read")
        if reader is None:
            reader = self.__dict__["_chia_memo_read"] = _MemoRead(self)
        return reader

    @property
    def actor(self) -> ray.actor.ActorHandle:  # type: ignore[type-arg]
        """The raw Ray actor handle (no memo, no ``chia_remote``), as ``chia_actor(...).actor`` gives."""
        load, args = _reduce_raw(self)
        raw: ray.actor.ActorHandle = load(*args)  # type: ignore[type-arg]
        return raw

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            return ray.actor.ActorHandle.__getattr__(self, name)
        return CacheMethod(ray.actor.ActorHandle.__getattr__(self, name))

    def __reduce__(self) -> tuple[Any, ...]:
        return _load_handle, (_reduce_raw(self),)


def _reduce_raw(handle: ray.actor.ActorHandle) -> tuple[Any, ...]:  # type: ignore[type-arg]
    """How Ray pickles ``handle`` as a plain ``ActorHandle``."""
    reduced: tuple[Any, ...] = ray.actor.ActorHandle.__reduce__(handle)  # type: ignore[no-untyped-call]  # Ray's is untyped
    return reduced


def _load_handle(reduced: tuple[Any, ...]) -> Any:
    load, args = reduced
    return fast_handle(load(*args))


def fast_handle(handle: Any) -> Any:
    """Give ``handle`` (the cache actor's ``ActorHandle``) the memo-backed ``read``."""
    if type(handle) is ray.actor.ActorHandle:
        handle.__class__ = CacheHandle
    return handle
