"""The cache actor: the on-disk store behind a Ray actor, large values via the object store.

Owns what a cache hit returns. Values are stored pickled and stored pickles
are never unpickled in the actor (only ``write`` hands it a live value): a
hit hands the caller the pickled bytes (small values, inline in the reply) or
an object-store copy kept by the actor (large values), which the caller's
``ray.get`` resolves without another copy through the actor; repeat hits of
either skip the actor altogether on its node
(:mod:`chia.base._bypass_cache.cache_memo`).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import ray
import ray.cloudpickle

from chia.base._bypass_cache.bypass_config import CacheRule, cache_rules_from_config, cache_rules_to_dict
from chia.base._bypass_cache.cache_memo import ResidentHit
from chia.base._bypass_cache.cache_store import LOCK_NAME, EntryStore, EntryTooLarge

if TYPE_CHECKING:
    from ray.actor import ActorProxy

__all__ = ["CACHE_ACTOR_CLASS", "RESIDENT_MIN_BYTES", "SECRET_ENV", "Cache", "CacheActor", "Secret", "secret_from_env"]

logger = logging.getLogger(__name__)

# Ray returns objects up to 100 KiB inline in the reply; larger ones go through
# the object store anyway, so from there on the actor keeps a shared copy.
RESIDENT_MIN_BYTES = 100 * 1024
RESIDENT_SHARE_OF_OBJECT_STORE = 4


SECRET_ENV = "CHIA_CACHE_SECRET"
"""Environment variable holding the entry signing secret (read where the actor is created)."""


class Secret:
    """The signing secret, kept out of reprs and logs."""

    __slots__ = ("value",)

    def __init__(self, value: bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"


class _Pickled:
    """Pickled value bytes that unpickle as the value itself on the receiving side."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes | bytearray | memoryview) -> None:
        self.payload = payload

    def __reduce_ex__(self, protocol: int) -> tuple[Any, ...]:  # type: ignore[override]
        if protocol >= 5:
            return pickle.loads, (pickle.PickleBuffer(self.payload),)
        return pickle.loads, (bytes(self.payload),)


_PLAIN_SCALARS = frozenset({str, bytes, int, float, bool, type(None)})
_PLAIN_CONTAINERS = frozenset({dict, list, tuple})
_PLAIN_TYPES = _PLAIN_SCALARS | _PLAIN_CONTAINERS
_PLAIN_ITEMS = 4096


def _is_plain(value: Any) -> bool:
    """Whether ``value`` is made of builtin scalars, dicts, lists and tuples only (at most ``_PLAIN_ITEMS`` of them)."""
    pending = [value]
    seen = 0
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind in _PLAIN_SCALARS:
            continue
        if kind not in _PLAIN_CONTAINERS:
            return False
        children = [*item.keys(), *item.values()] if kind is dict else item
        seen += len(children)
        if seen > _PLAIN_ITEMS:
            return False
        kinds = set(map(type, children))  # one pass in C: most containers hold scalars only
        if not kinds <= _PLAIN_TYPES:
            return False
        if not kinds <= _PLAIN_SCALARS:
            pending.extend(child for child in children if type(child) in _PLAIN_CONTAINERS)
    return True


def _dumps(value: Any) -> bytes:
    """The stored pickle of ``value``: the standard pickler for plain data (a dict of metrics: ~9x faster), else cloudpickle.

    Both write the same bytes for plain data; cloudpickle is needed for
    anything that may be defined by value (classes of ``__main__``, lambdas).
    """
    if _is_plain(value):
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    payload: bytes = ray.cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-untyped-call]
    return payload


def secret_from_env() -> Secret | None:
    """The signing secret of this process's environment (:data:`SECRET_ENV`), if set."""
    text = os.environ.get(SECRET_ENV)
    return Secret(text.encode()) if text else None


class CacheActor:
    """The body of the cache actor; its public face, with the documentation, is :class:`Cache`."""

    def __init__(
        self,
        cache_dir_path: str | os.PathLike[str],
        budget_bytes: int,
        config: Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
        yaml_path: str | None = None,
        secret: Secret | None = None,
    ) -> None:
        cache_dir = os.path.abspath(os.path.expanduser(os.fspath(cache_dir_path)))
        self._init_error: Exception | None = None
        self._store: EntryStore | None = None
        rules: Mapping[str, CacheRule] = {}
        try:
            rules = cache_rules_from_config(config)
        except Exception as exc:  # reported by every call, as a bad directory is
            self._init_error = exc
        if namespace is None:
            namespace = ray.get_runtime_context().namespace
        self._config = {
            "functions": cache_rules_to_dict(rules),
            "yaml_path": yaml_path,
            "cache_dir": cache_dir,
            "budget_bytes": budget_bytes,
            "namespace": namespace,
            "signed": secret is not None,
            "node_id": ray.get_runtime_context().get_node_id(),
        }
        self._node_id = ray.get_runtime_context().get_node_id()
        self._actor_id = ray.get_runtime_context().get_actor_id() or ""
        self._hits = self._misses = self._writes = 0
        # tag -> (object-store copy of (True, value), payload size, whether the copy holds the pickle)
        self._resident: OrderedDict[str, tuple[ray.ObjectRef[Any], int, bool]] = OrderedDict()
        self._resident_bytes = 0
        self._resident_budget = min(budget_bytes, self._object_store_bytes() // RESIDENT_SHARE_OF_OBJECT_STORE)
        self._open_seconds = 0.0
        if self._init_error is not None:
            return
        opening = time.perf_counter()
        try:
            self._store = EntryStore(cache_dir, budget_bytes, None if secret is None else secret.value, background=True)
        except Exception as exc:  # reported by get_config() so start_cache can raise it
            self._init_error = exc
        self._open_seconds = time.perf_counter() - opening

    @staticmethod
    def _object_store_bytes() -> int:
        node_id = ray.get_runtime_context().get_node_id()
        for node in ray.nodes():  # type: ignore[no-untyped-call]
            if node.get("NodeID") == node_id:
                return int(node.get("Resources", {}).get("object_store_memory", 0))
        return 0

    @property
    def _opened(self) -> EntryStore:
        if self._store is None:
            assert self._init_error is not None
            raise self._init_error
        return self._store

    # --- writes ---------------------------------------------------------------------------

    @ray.method
    def write(self, tag: str, data: Any) -> bool:
        """Pickle ``data`` and store it under ``tag``: True, or False when it is larger than the whole budget."""
        self._check_tag(tag)
        return self._put(tag, _dumps(data), (True, data))

    @ray.method
    def write_pickled(self, tag: str, payload: bytes) -> bool:
        """Store already pickled ``payload`` under ``tag``; False when it is larger than the whole budget."""
        self._check_tag(tag)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"write_pickled needs the pickled bytes of the value, got {type(payload).__name__}")
        return self._put(tag, payload)

    def _put(self, tag: str, payload: bytes | bytearray | memoryview, hit: tuple[bool, Any] | None = None) -> bool:
        store = self._opened
        try:
            evicted = store.put(tag, payload)
        except EntryTooLarge:
            logger.warning(
                "cache: value for tag %r (%d bytes pickled) is larger than the whole budget of %d bytes; not stored",
                tag,
                memoryview(payload).nbytes,
                store.budget_bytes,
            )
            return False
        self._writes += 1
        if self._resident:
            self._drop_resident(tag)
            for old in evicted:
                self._drop_resident(old)
        if len(payload) >= RESIDENT_MIN_BYTES:
            self._make_resident(tag, payload, hit)
        return True

    # --- reads ----------------------------------------------------------------------------

    @ray.method
    def read(self, tag: str) -> tuple[bool, Any]:
        """``(True, value)`` on a hit, ``(False, None)`` on a miss."""
        self._check_tag(tag)
        store = self._opened
        resident = self._resident.get(tag)
        if resident is not None and tag in store:
            self._resident.move_to_end(tag)
            store.touch(tag)
            self._hits += 1
            return self._resident_hit(tag, resident)  # type: ignore[return-value] # unpickles as (True, value)
        payload = store.get(tag)
        if payload is None:
            self._misses += 1
            return False, None
        self._hits += 1
        if len(payload) >= RESIDENT_MIN_BYTES:
            ref = self._make_resident(tag, payload)
            if ref is not None:
                return self._resident_hit(tag, (ref, len(payload), True))  # type: ignore[return-value]
            return True, _Pickled(payload)
        return self._resident_hit(tag, (None, len(payload), True), bytes(payload))  # type: ignore[return-value]

    def _resident_hit(
        self, tag: str, resident: tuple[ray.ObjectRef[Any] | None, int, bool], payload: bytes | None = None
    ) -> ResidentHit:
        """The reply to a hit: the actor's copy (``resident``) or, for a small value, its pickle (``payload``)."""
        store = self._opened
        return ResidentHit(
            ref=resident[0],
            actor_id=self._actor_id,
            node_id=self._node_id,
            directory=store.directory,
            lock_name=LOCK_NAME,
            tag=tag,
            stamp=store.stamp(tag),
            size=resident[1],
            budget=self._resident_budget,
            payload=payload,
            pickled=resident[2],
        )

    @ray.method
    def touch_many(self, tags: list[str]) -> None:
        """Count hits served from a reader's memo and mark them recently used."""
        store = self._opened
        for tag in tags:
            if tag in self._resident:
                self._resident.move_to_end(tag)
            store.touch(tag)
        self._hits += len(tags)

    @ray.method
    def has(self, tag: str) -> bool:
        """Whether ``tag`` has an entry (a later read can still miss if its record is damaged)."""
        self._check_tag(tag)
        return tag in self._opened

    @ray.method
    def keys(self) -> list[str]:
        """Every tag, least recently used first."""
        return self._opened.tags()

    @ray.method
    def size_bytes(self) -> int:
        """Bytes the entries take on disk (what the budget counts)."""
        return self._opened.total_bytes

    # --- removal --------------------------------------------------------------------------

    @ray.method
    def evict(self, tag: str) -> bool:
        """Delete ``tag``'s entry; False when there was none."""
        self._check_tag(tag)
        self._drop_resident(tag)
        return self._opened.remove(tag)

    @ray.method
    def flush(self) -> int:
        """Delete every entry (memory and disk); return how many there were."""
        self._resident.clear()
        self._resident_bytes = 0
        return self._opened.clear()

    @ray.method
    def checkpoint(self) -> None:
        """Write the index checkpoint now, so the next start replays no record (:func:`stop_cache` calls it)."""
        self._opened.checkpoint()

    # --- introspection --------------------------------------------------------------------

    @ray.method
    def get_config(self) -> dict[str, Any]:
        """Functions (cache rules), yaml_path, cache_dir, budget_bytes, namespace, signed, node_id."""
        self._opened  # noqa: B018 - raises the start-up error, if any
        return dict(self._config)

    @ray.method
    def stats(self) -> dict[str, int]:
        """entries, bytes, budget_bytes, hits, misses, evictions, writes, quarantined, resident_*, open_ms, warm_start_ms."""
        store = self._opened
        return {
            "entries": len(store),
            "bytes": store.total_bytes,
            "budget_bytes": store.budget_bytes,
            "hits": self._hits,
            "misses": self._misses,
            "evictions": store.evictions,
            "writes": self._writes,
            "quarantined": store.quarantined,
            "resident_entries": len(self._resident),
            "resident_bytes": self._resident_bytes,
            "open_ms": round(self._open_seconds * 1000),
            "warm_start_ms": round(store.warm_start_seconds * 1000),
        }

    # --- object-store copies --------------------------------------------------------------

    def _make_resident(
        self, tag: str, payload: bytes | bytearray | memoryview, hit: tuple[bool, Any] | None = None
    ) -> ray.ObjectRef[Any] | None:
        """Keep an object-store copy of ``(True, value)``.

        The copy holds the value itself when ``write`` gave it (a plain tuple
        reads back fastest), else the stored pickle, which unpickles on the reader.
        """
        size = len(payload)
        if size > self._resident_budget:
            return None
        self._drop_resident(tag)
        while self._resident and self._resident_bytes + size > self._resident_budget:
            _, (_, old_size, _) = self._resident.popitem(last=False)
            self._resident_bytes -= old_size
        ref = None
        if hit is not None:
            try:
                ref = ray.put(hit)
            except Exception:  # the pickle below is known to work: it is what was stored
                ref = None
        pickled = ref is None
        if ref is None:
            ref = ray.put((True, _Pickled(payload)))
        self._resident[tag] = (ref, size, pickled)
        self._resident_bytes += size
        return ref

    def _drop_resident(self, tag: str) -> None:
        resident = self._resident.pop(tag, None)
        if resident is not None:
            self._resident_bytes -= resident[1]

    @staticmethod
    def _check_tag(tag: object) -> None:
        if not isinstance(tag, str):
            raise TypeError(f"cache tags are str, got {tag!r} ({type(tag).__name__})")


CACHE_ACTOR_CLASS: Any = ray.remote(CacheActor)  # exported once per job, however often actors are made


class _CacheOptions:
    """``Cache.options(...)``: ``.remote(...)`` creates the actor with those Ray options."""

    __slots__ = ("_options",)

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options

    def remote(self, *args: Any, **kwargs: Any) -> ActorProxy[Cache]:
        """Create the actor: ``(cache_dir_path, budget_bytes, config=None)``."""
        kwargs.setdefault("secret", secret_from_env())
        handle: ActorProxy[Cache] = CACHE_ACTOR_CLASS.options(**self._options).remote(*args, **kwargs)
        return handle


class _CacheClass(type):
    """Lets the public :class:`Cache` be used as the Ray actor class it documents."""

    def options(cls, **options: Any) -> _CacheOptions:
        """Ray actor options (``name``, ``namespace``, ``lifetime``, ``resources``...)."""
        return _CacheOptions(options)

    def remote(cls, *args: Any, **kwargs: Any) -> ActorProxy[Cache]:
        """Create the actor with default options: ``(cache_dir_path, budget_bytes, config=None)``."""
        return _CacheOptions({}).remote(*args, **kwargs)


class Cache(CacheActor, metaclass=_CacheClass):
    """Head-pinned cache of pickled values keyed by tag, with an LRU byte budget. Stable.

    Usually created by :func:`chia.base.cache.start_cache` (a detached, named
    actor, pinned to the head node). ``Cache`` is also the actor class, as the
    reference's users create it::

        handle = Cache.options(name="my_cache", namespace="ns").remote("/data/cache", 4 << 30, config)

    ``config`` is the YAML's ``cache:`` section (or the whole parsed document),
    as a dict (``None``: no function is cached automatically); the signing
    secret of :data:`chia.base.cache.SECRET_ENV` is taken from the creating
    process's environment. Call the methods with ``.remote()`` and
    ``ray.get``; the handle of ``start_cache`` also takes ``.chia_remote()``.

    * ``write(tag, data) -> bool``: pickle and store ``data``; False (nothing
      written or evicted) when it alone is larger than the whole budget.
      Least recently used entries are evicted so the budget holds after every
      write.
    * ``write_pickled(tag, payload) -> bool``: the same with already pickled
      bytes (what automatic write-through uses; the actor never unpickles values).
    * ``read(tag) -> (hit, value)``: ``(False, None)`` on a miss. Damaged
      records are copied aside and read as misses, never served. Through the
      handle of ``start_cache``/``get_active_cache``, a repeat hit of a large
      value (>= 100 KiB) from a process on the cache's node returns the
      object-store copy's ref without an actor call, after checking that the
      entry did not change since.
    * ``touch_many(tags)``: report hits served that way (LRU order, ``hits``).
    * ``has(tag)``, ``evict(tag) -> bool``, ``flush() -> int`` (deletes every
      entry), ``keys()`` (least recently used first), ``size_bytes()``.
    * ``get_config()``: functions (the ``cache:`` rules), directory, budget...
    * ``stats()``: entries, bytes, budget_bytes, hits, misses, evictions,
      writes, quarantined, resident_entries, resident_bytes, open_ms (how
      long opening the directory held up the actor's start) and warm_start_ms
      (the index is loaded in the background: reads are served at once).
    """
