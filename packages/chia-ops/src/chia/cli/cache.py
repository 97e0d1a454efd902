"""``chia cache``: inspect, trim and stop the head-node output cache (chia-bypass-cache, the ``[cache]`` extra).

Stable. Owns the ``cache`` command group. Each sub-command finds the cache
actor with :func:`chia.base.cache.get_active_cache`, in the namespace given
or, without one, the only cache running in any namespace. ``evict``,
``clear`` and ``stop`` change the cluster: on a cluster found rather than
named (no --address, no RAY_ADDRESS) they ask first, unless --yes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeAlias

import click
import ray

from chia.cli._cluster import RAY_TIMEOUT_S, F, address_option, connected, progress, yes_option
from chia.cli._exit import CliError, ExitCode
from chia.cli._extras import CACHE, needs

if TYPE_CHECKING:
    from ray.actor import ActorProxy

    from chia.base.cache import Cache

    CacheHandle: TypeAlias = ActorProxy[Cache]

__all__ = ["cache"]


@click.group()
def cache() -> None:
    """Inspect, trim and stop the head-node output cache (needs chia-bypass-cache)."""


def _cache_options(fn: F) -> F:
    fn = click.option("--namespace", help="Ray namespace the cache was started in (default: search all).")(fn)
    return address_option(fn)


@contextmanager
def _cache_actor(
    namespace: str | None, address: str | None, changes: str | None = None, yes: bool = False
) -> Iterator[tuple[CacheHandle, str]]:
    """Attached to the cluster for the block, the cache actor and its namespace (the extra is checked first)."""
    with needs(CACHE, "chia cache"):
        from chia.base.cache import get_active_cache
    with connected(address, changes, yes):
        yield _find_cache(get_active_cache, namespace)


def _find_cache(
    get_active_cache: Callable[[str | None], CacheHandle | None], namespace: str | None
) -> tuple[CacheHandle, str]:
    if namespace is not None:
        handle = get_active_cache(namespace)
        if handle is None:
            raise CliError(f"no cache actor is running in Ray namespace {namespace!r}", ExitCode.NOT_FOUND)
        return handle, namespace
    namespaces = sorted({entry["namespace"] for entry in ray.util.list_named_actors(all_namespaces=True)})
    found = {ns: handle for ns in namespaces if (handle := get_active_cache(ns)) is not None}
    if not found:
        raise CliError(
            "no cache actor is running in any Ray namespace; a driver starts one with start_cache()",
            ExitCode.NOT_FOUND,
        )
    if len(found) > 1:
        raise CliError(f"caches run in namespaces {sorted(found)}; choose one with --namespace", ExitCode.USAGE)
    ((found_in, handle),) = found.items()
    return handle, found_in


def _size(count: int) -> str:
    """``1048576`` -> ``1.0 MiB``."""
    amount = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def format_stats(stats: dict[str, int], namespace: str) -> str:
    """The stats as an aligned two-column table, sizes in binary units and the hit rate."""
    lookups = stats.get("hits", 0) + stats.get("misses", 0)
    rows = [("namespace", namespace)]
    for key in sorted(stats):
        value = stats[key]
        shown = f"{_size(value)} ({value})" if key.endswith("bytes") else str(value)
        rows.append((key, shown))
    rows.append(("hit_rate", f"{stats.get('hits', 0) / lookups:.1%}" if lookups else "-"))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


@cache.command("ls")
@_cache_options
def cache_ls(namespace: str | None, address: str | None) -> None:
    """List cached tags, least recently used first."""
    with _cache_actor(namespace, address) as (actor, _):
        keys = ray.get(actor.keys.remote(), timeout=RAY_TIMEOUT_S)
    for key in keys:
        click.echo(key)


@cache.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (for scripts) instead of the table.")
@_cache_options
def cache_stats(as_json: bool, namespace: str | None, address: str | None) -> None:
    """Entries, bytes, budget, hits, misses, evictions and hit rate, as a table or --json."""
    with _cache_actor(namespace, address) as (actor, found_in):
        stats = ray.get(actor.stats.remote(), timeout=RAY_TIMEOUT_S)
    click.echo(json.dumps(stats, indent=2, sort_keys=True) if as_json else format_stats(stats, found_in))


@cache.command("evict")
@click.argument("tags", nargs=-1, required=True)
@yes_option
@_cache_options
def cache_evict(tags: tuple[str, ...], yes: bool, namespace: str | None, address: str | None) -> None:
    """Remove TAGS from the cache (memory and disk); exit 5 if one was not cached."""
    with _cache_actor(namespace, address, f"evict {len(tags)} tag(s) from the cache", yes) as (actor, _):
        removed = ray.get([actor.evict.remote(tag) for tag in tags], timeout=RAY_TIMEOUT_S)
    missing = [tag for tag, was_there in zip(tags, removed, strict=True) if not was_there]
    click.echo(f"evicted {len(tags) - len(missing)} of {len(tags)}")
    if missing:
        raise CliError(f"not in the cache: {', '.join(missing)}", ExitCode.NOT_FOUND)


@cache.command("clear")
@yes_option
@_cache_options
def cache_clear(yes: bool, namespace: str | None, address: str | None) -> None:
    """Delete every entry (memory and disk); asks first unless --yes."""
    with _cache_actor(namespace, address) as (actor, found_in):
        if not yes:
            entries = ray.get(actor.stats.remote(), timeout=RAY_TIMEOUT_S)["entries"]
            where = ray.get_runtime_context().gcs_address
            click.confirm(f"delete all {entries} cache entries (namespace {found_in!r}, cluster {where})?", abort=True)
        progress("deleting cache entries")
        count = ray.get(actor.flush.remote(), timeout=RAY_TIMEOUT_S)
    click.echo(f"deleted {count} entries")


@cache.command("stop")
@yes_option
@_cache_options
def cache_stop(yes: bool, namespace: str | None, address: str | None) -> None:
    """Stop the cache actor; its directory stays on disk and the next start_cache() warm-starts from it."""
    with needs(CACHE, "chia cache"):
        from chia.base.cache import stop_cache
    with _cache_actor(namespace, address, "stop the cache actor", yes) as (_, found_in):
        stop_cache(namespace=found_in)
    click.echo(f"stopped the cache actor of namespace {found_in!r}")
