"""Automatic cache write-through for functions configured ``cache: true``.

Owns the decision (caller side, a section of the dispatch hook: the call's
tag must match the function's ``cache:`` rule) and the write itself (a call
wrapper on the worker: after a successful run the pickled result goes to
the cache actor before the task returns, so once ``get()`` has the value a
``read(tag)`` hits). A bypassed call of a function configured both ``cache:``
and ``bypass:`` has its provider's result written too, unless the provider
replays the cache itself (:meth:`chia.base.bypass.Bypass.replay_from_cache`).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray
import ray.cloudpickle
import ray.exceptions

from chia.base._bypass_cache import bypass_sync
from chia.base._bypass_cache.bypass_config import CacheRule, lookup_rule
from chia.base._bypass_cache.state import live_state
from chia.base.dispatch_hooks import CallInfo, DispatchCall, add_call_wrapper

if TYPE_CHECKING:
    from ray import ObjectRef
    from ray.actor import ActorProxy

    from chia.base._bypass_cache.cache_actor import Cache

__all__ = ["CACHE_ACTOR_NAME", "CacheWriteThrough", "install", "uninstall", "write_through_wrapper"]

logger = logging.getLogger(__name__)

CACHE_ACTOR_NAME = "chia_cache"
SECTION = "cache"
SECTION_ORDER = -10  # before the bypass: a bypassed call of a cache: true function is marked too
WRITE_KEY = "cache.write"
NAMESPACE_KEY = "cache.namespace"


@dataclass(frozen=True, slots=True)
class CacheWriteThrough:
    """The driver's ``cache:`` rules and the namespace of its cache actor."""

    rules: Mapping[str, CacheRule]
    namespace: str

    def _on_dispatch(self, call: DispatchCall, /) -> ObjectRef[Any] | None:
        tag = call.tag
        if tag is not None:
            rule = lookup_rule(self.rules, call.name, call.qualname)
            if rule is not None and rule.enabled and rule.matches_tag(tag):
                call.context[WRITE_KEY] = True
                call.context[NAMESPACE_KEY] = self.namespace
        return None

    def _snapshot(self) -> tuple[Callable[[Any], CacheWriteThrough], Any]:
        return _restore, self


def _restore(section: CacheWriteThrough) -> CacheWriteThrough:
    return section


def install(section: CacheWriteThrough) -> None:
    """Make ``section`` this driver's write-through configuration."""
    state = live_state.cache
    with state.install_lock:
        bypass_sync.set_section(SECTION, SECTION_ORDER, section)
        if state.remove_write_through is None:
            state.remove_write_through = add_call_wrapper(write_through_wrapper)


def uninstall() -> None:
    """Stop automatic write-through from this driver."""
    state = live_state.cache
    with state.install_lock:
        bypass_sync.set_section(SECTION, SECTION_ORDER, None)
        if state.remove_write_through is not None:
            state.remove_write_through()
            state.remove_write_through = None


# --- worker side ---------------------------------------------------------------------


def _cache_handle(namespace: str, *, refresh: bool) -> ActorProxy[Cache] | None:
    handles = live_state.cache.handles
    handle = None if refresh else handles.get(namespace)
    if handle is None:
        try:
            handle = ray.get_actor(CACHE_ACTOR_NAME, namespace=namespace)
        except ValueError:
            return None
        handles[namespace] = handle
    return handle


def write_through_wrapper(call: CallInfo, proceed: Callable[[], Any], /) -> Any:
    """Call wrapper: after a remote run of a ``cache: true`` call (real or bypassed), write its result."""
    value = proceed()
    if call.remote and call.tag is not None and call.context.get(WRITE_KEY):
        _write(call.name, call.tag, str(call.context.get(NAMESPACE_KEY)), value)
    return value


def _write(name: str, tag: str, namespace: str, value: Any) -> None:
    try:
        payload: bytes = ray.cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-untyped-call]
    except Exception as exc:
        logger.error("cache write-through of %s (tag %r) skipped: the result does not pickle: %s", name, tag, exc)
        return
    for attempt in range(2):
        handle = _cache_handle(namespace, refresh=attempt > 0)
        if handle is None:
            break
        try:
            stored = ray.get(handle.write_pickled.remote(tag, payload))
        except ray.exceptions.RayActorError:
            continue  # the cache was restarted: look it up again once
        if not stored:
            logger.error(
                "cache write-through of %s (tag %r) refused: its pickle (%d bytes) is larger than the whole "
                "cache budget",
                name,
                tag,
                len(payload),
            )
        return
    logger.error("cache write-through of %s (tag %r) skipped: no cache actor in namespace %r", name, tag, namespace)
