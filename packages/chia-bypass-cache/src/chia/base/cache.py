"""Head-node output cache for ChiaFunction tasks.

A key/value store of pickled Python objects keyed by a string tag, kept by a
detached Ray actor pinned to the head node, with an LRU byte budget, crash-safe
on-disk storage (an append-only log of checksummed records) and a checkpointed warm start. It works with :mod:`chia.base.bypass`:

* **Write is automatic.** A function marked ``cache: true`` in the YAML has
  the output of its real runs written to the cache, keyed by the call's
  ``_chia_tag`` (untagged calls are not cached), before the task returns:
  once ``get()`` has the value, ``read(tag)`` hits. ``chia_remote`` still
  returns a plain ``ObjectRef``. Bypassed (replayed) results are not written.
* **Read is manual, via bypass.** Register a provider that reads it back::

      def cache_provider(tag, data_path, *args, **kwargs):
          hit, value = ray.get(get_active_cache().read.remote(tag))
          if not hit:
              raise KeyError(f"cache miss for tag {tag!r}")
          return value

      bypass.set_provider("run_verilator_test", cache_provider)

Usage::

    from chia.base.cache import start_cache

    # once on the driver after ray.init(); idempotent
    start_cache(size=4, units="GB", cache_dir_path="/data/chia_cache", yaml_path=args.bypass_config)

YAML (the ``bypass:`` file's parallel ``cache:`` section)::

    cache:
      run_verilator_test:
        cache: true
        tags: ["iter.*"]      # optional; re.fullmatch against the call's tag
      build_megaboom: true    # shorthand

Set ``CHIA_CACHE_SECRET`` in the driver's environment before ``start_cache``
to sign every entry (HMAC-SHA256) and refuse unsigned or foreign ones:
loading a pickle runs code.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import ray
import ray.exceptions

from chia.base._bypass_cache import bypass_sync
from chia.base._bypass_cache.bypass_config import cache_rules_from_dict, load_config, lookup_rule
from chia.base._bypass_cache.cache_actor import CACHE_ACTOR_CLASS, SECRET_ENV, Cache, secret_from_env
from chia.base._bypass_cache.cache_directory import CacheDirectoryError
from chia.base._bypass_cache.cache_memo import fast_handle
from chia.base._bypass_cache.cache_write import CACHE_ACTOR_NAME, SECTION, CacheWriteThrough, install, uninstall
from chia.base._bypass_cache.config_names import check_keys_later
from chia.base._bypass_cache.state import live_state

if TYPE_CHECKING:
    from ray.actor import ActorProxy

__all__ = [
    "SECRET_ENV",
    "STOP_CHECKPOINT_SECONDS",
    "UNITS",
    "Cache",
    "CacheDirectoryError",
    "get_active_cache",
    "is_cached",
    "start_cache",
    "stop_cache",
]

logger = logging.getLogger(__name__)

STOP_CHECKPOINT_SECONDS = 60.0
"""How long :func:`stop_cache` waits for the cache to write its index checkpoint before killing it anyway."""

UNITS: Mapping[str, int] = MappingProxyType(
    {
        "B": 1,
        "KB": 1 << 10,
        "MB": 1 << 20,
        "GB": 1 << 30,
        "TB": 1 << 40,
        "KiB": 1 << 10,
        "MiB": 1 << 20,
        "GiB": 1 << 30,
        "TiB": 1 << 40,
    }
)
"""Size units of :func:`start_cache`, matched case-insensitively. Stable.

All are binary multiples: ``"KB"`` and ``"KiB"`` are both 1024 bytes (a
``"GB"`` budget is 2**30 bytes, as it always was here); give a decimal budget
in bytes (``units="B"``).
"""

_UNITS_BY_CASEFOLD: Mapping[str, int] = MappingProxyType({name.casefold(): factor for name, factor in UNITS.items()})
_NAME_WAIT_SECONDS = 60.0


def _budget_bytes(size: float, units: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise TypeError(f"cache size must be a number, got {size!r} ({type(size).__name__})")
    factor = _UNITS_BY_CASEFOLD.get(units.strip().casefold()) if isinstance(units, str) else None
    if factor is None:
        raise ValueError(
            f"unknown cache size units {units!r}; valid units (any case): {', '.join(UNITS)} "
            "(binary: KB = KiB = 1024 bytes)"
        )
    if not math.isfinite(size) or size < 0:
        raise ValueError(f"cache size must be a finite number >= 0, got {size!r}")
    return int(size * factor)


def _namespace(namespace: str | None) -> str:
    if namespace is not None:
        return namespace
    token = bypass_sync.task_token()
    if token is not None:
        section = bypass_sync.task_section(token, SECTION)
        if isinstance(section, CacheWriteThrough):
            return section.namespace
    started = live_state.cache.started_namespace
    if started is not None:
        return started
    current: str = ray.get_runtime_context().namespace
    return current


def _wait_name_released(namespace: str) -> None:
    deadline = time.monotonic() + _NAME_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            ray.get_actor(CACHE_ACTOR_NAME, namespace=namespace)
        except ValueError:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the stopped cache actor {CACHE_ACTOR_NAME!r} in namespace {namespace!r} never went away")


def start_cache(
    size: float,
    cache_dir_path: str | os.PathLike[str],
    units: str = "B",
    yaml_path: str | os.PathLike[str] | None = None,
    namespace: str | None = None,
    *,
    strict: bool = False,
) -> ActorProxy[Cache]:
    """Create (or find) the head-pinned cache actor and return its handle. Idempotent. Stable.

    Call from the driver after ``ray.init()``. The actor is detached and
    named in ``namespace`` (default: the driver's), so workers of other jobs
    reach it with ``get_active_cache(namespace)``; :func:`stop_cache` tears
    it down. Cross-run reuse comes from the directory and the warm start.

    Args:
        size: budget, multiplied by ``UNITS[units]``; negative sizes raise
            ``ValueError``.
        cache_dir_path: directory for the entries on the head node (created
            with mode 0700).
        units: one of :data:`UNITS`, in any case (``"kb"``, ``"GiB"``);
            ``ValueError`` otherwise.
        yaml_path: the bypass/cache YAML; its ``cache:`` section turns on
            automatic write-through (validated here, see
            :func:`chia.base.bypass.validate_config`).
        namespace: Ray namespace of the named actor.
        strict: a ``cache:`` key that names no ``@ChiaFunction`` raises
            :class:`chia.base.bypass.UnknownFunctionError` instead of warning
            :class:`chia.base.bypass.UnknownFunctionWarning`. Keys are checked
            now and, for functions not defined yet, at the first
            ``chia_remote`` after this call (as :class:`chia.base.bypass.Bypass` does).

    A directory that cannot hold the cache (a file, a read-only or virtual
    filesystem, no write permission) raises :class:`CacheDirectoryError`
    naming it and the fix, before anything is created.

    A second call finds the running actor (a warning is logged when its
    directory or budget differ from the request).
    """
    budget = _budget_bytes(size, units)
    directory = os.path.abspath(os.path.expanduser(os.fspath(cache_dir_path)))
    config = load_config(yaml_path) if yaml_path is not None else None
    rules = config.cache if config is not None else {}
    if config is not None and config.path is not None:
        check_keys_later(config.path, "cache", rules, strict=strict)
    resolved = namespace if namespace is not None else ray.get_runtime_context().namespace
    secret = secret_from_env()
    deadline = time.monotonic() + _NAME_WAIT_SECONDS
    while True:
        handle: Any = CACHE_ACTOR_CLASS.options(
            name=CACHE_ACTOR_NAME,
            namespace=resolved,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            resources={"node:__internal_head__": 0.001},
        ).remote(
            directory,
            budget,
            rules,
            namespace=resolved,
            yaml_path=None if config is None else config.path,
            secret=secret,
        )
        try:
            running: dict[str, Any] = ray.get(handle.get_config.remote())
            break
        except ray.exceptions.RayTaskError as exc:  # the actor could not open its directory
            ray.kill(handle, no_restart=True)
            _wait_name_released(resolved)
            raise exc.cause from None
        except ray.exceptions.RayActorError:
            # A cache that was just killed still holds the name: wait and create a new one.
            if time.monotonic() > deadline:
                raise
            _wait_name_released(resolved)
    if (running["cache_dir"], running["budget_bytes"]) != (directory, budget):
        logger.warning(
            "start_cache: a cache is already running in namespace %r with directory %s and budget %d bytes; "
            "keeping it (asked for %s, %d bytes)",
            resolved,
            running["cache_dir"],
            running["budget_bytes"],
            directory,
            budget,
        )
    live_state.cache.started_namespace = resolved
    started: ActorProxy[Cache] = fast_handle(handle)
    running_rules = cache_rules_from_dict(running["functions"])
    if running_rules != rules:
        logger.warning(
            "start_cache: the running cache in namespace %r keeps its own cache: rules %s (from %s), "
            "not those of %s; stop_cache() first to change them",
            resolved,
            sorted(running["functions"]),
            running["yaml_path"],
            None if config is None else config.path,
        )
    if any(rule.enabled for rule in running_rules.values()) or resolved != ray.get_runtime_context().namespace:
        install(CacheWriteThrough(running_rules, resolved))
    else:
        uninstall()
    return started


def stop_cache(namespace: str | None = None) -> None:
    """Kill the cache actor. Idempotent. Stable.

    Nothing on disk is lost: the next :func:`start_cache` warm-starts from the
    directory. The actor first writes its index checkpoint (waiting up to
    :data:`STOP_CHECKPOINT_SECONDS` for calls queued before), so that start
    replays no record; a cache that cannot is killed all the same (a
    warning says why) and its next start replays the records written since
    its last checkpoint. Automatic write-through from this driver stops.
    """
    resolved = _namespace(namespace)
    handle: Any = get_active_cache(resolved)
    if handle is not None:
        try:
            ray.get(handle.checkpoint.remote(), timeout=STOP_CHECKPOINT_SECONDS)
        except (ray.exceptions.RayError, OSError) as exc:
            logger.warning(
                "stop_cache: the cache in namespace %r could not write its index checkpoint (%s); stopping it "
                "anyway: nothing is lost, its next start replays the records written since its last checkpoint",
                resolved,
                exc,
            )
        ray.kill(handle, no_restart=True)
        _wait_name_released(resolved)
    if live_state.cache.started_namespace == resolved:
        live_state.cache.started_namespace = None
        uninstall()


def get_active_cache(namespace: str | None = None) -> ActorProxy[Cache] | None:
    """Return the cache actor handle, or None if no cache was started. Stable.

    Always resolves the current named actor with ``ray.get_actor`` (no handle
    is kept), so a restarted cache is picked up. Keep the handle for repeated
    reads: its ``read.remote(tag)`` serves repeat hits of large values from
    processes on the cache's node without an actor call (see :class:`Cache`). Without ``namespace``: the
    namespace of the cache this driver started (inside tasks: the one the
    driver's write-through uses), else the current namespace.
    """
    try:
        handle: ActorProxy[Cache] = fast_handle(ray.get_actor(CACHE_ACTOR_NAME, namespace=_namespace(namespace)))
    except ValueError:
        return None
    return handle


def is_cached(func_name: str, tag: str | None = None) -> bool:
    """Should ``func_name``'s output be cached on this call? Stable.

    True only when the function is configured ``cache: true`` and, if
    ``tags`` patterns are present, ``tag`` ``re.fullmatch``-es one. The rules
    are read from the running actor (the source of truth), so this costs a
    round trip; automatic write-through keeps its own copy. Without a cache:
    False.
    """
    handle: Any = get_active_cache()
    if handle is None:
        return False
    functions: dict[str, dict[str, Any]] = ray.get(handle.get_config.remote())["functions"]
    rule = lookup_rule(functions, func_name)
    if rule is None or not rule["cache"]:
        return False
    patterns: list[str] | None = rule["tags"]
    if patterns is None:
        return True
    return tag is not None and any(re.fullmatch(pattern, tag) for pattern in patterns)
