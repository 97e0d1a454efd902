"""``chia cache``: inspect and trim the head-node output cache (chia-bypass-cache, the ``[cache]`` extra).

Stable. Owns the ``cache`` command group. Each sub-command finds the cache
actor with :func:`chia.base.cache.get_active_cache`, in the namespace given
or, without one, the only cache running in any namespace.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeAlias

import click
import ray

from chia.cli._cluster import RAY_TIMEOUT_S, F, address_option, connected, progress
from chia.cli._extras import CACHE, needs

if TYPE_CHECKING:
    from ray.actor import ActorProxy

    from chia.base.cache import Cache

    CacheHandle: TypeAlias = ActorProxy[Cache]

__all__ = ["cache"]


@click.group()
def cache() -> None:
    """Inspect and trim the head-node output cache (needs chia-bypass-cache)."""


def _cache_options(fn: F) -> F:
    fn = click.option("--namespace", help="Ray namespace the cache was started in (default: search all).")(fn)
    return address_option(fn)


@contextmanager
def _cache_actor(namespace: str | None, address: str | None) -> Iterator[CacheHandle]:
    """Connected to the cluster for the block, the cache actor (chia-bypass-cache is checked before connecting)."""
    with needs(CACHE, "chia cache"):
        from chia.base.cache import get_active_cache
    with connected(address):
        yield _find_cache(get_active_cache, namespace)


def _find_cache(get_active_cache: Callable[[str | None], CacheHandle | None], namespace: str | None) -> CacheHandle:
    if namespace is not None:
        handle = get_active_cache(namespace)
        if handle is None:
            raise click.ClickException(f"no cache actor is running in Ray namespace {namespace!r}")
        return handle
    namespaces = sorted({entry["namespace"] for entry in ray.util.list_named_actors(all_namespaces=True)})
    found = {ns: handle for ns in namespaces if (handle := get_active_cache(ns)) is not None}
    if not found:
        raise click.ClickException(
            "no cache actor is running in any Ray namespace; a driver starts one with start_cache()"
        )
    if len(found) > 1:
        raise click.ClickException(f"caches run in namespaces {sorted(found)}; choose one with --namespace")
    return next(iter(found.values()))


@cache.command("ls")
@_cache_options
def cache_ls(namespace: str | None, address: str | None) -> None:
    """List cached tags, least recently used first."""
    with _cache_actor(namespace, address) as actor:
        keys = ray.get(actor.keys.remote(), timeout=RAY_TIMEOUT_S)
    for key in keys:
        click.echo(key)


@cache.command("stats")
@_cache_options
def cache_stats(namespace: str | None, address: str | None) -> None:
    """Entries, bytes, budget, hits, misses and evictions as JSON."""
    with _cache_actor(namespace, address) as actor:
        stats = ray.get(actor.stats.remote(), timeout=RAY_TIMEOUT_S)
    click.echo(json.dumps(stats, indent=2, sort_keys=True))


@cache.command("evict")
@click.argument("tags", nargs=-1, required=True)
@_cache_options
def cache_evict(tags: tuple[str, ...], namespace: str | None, address: str | None) -> None:
    """Remove TAGS from the cache (memory and disk); exit 1 if one was not cached."""
    with _cache_actor(namespace, address) as actor:
        removed = ray.get([actor.evict.remote(tag) for tag in tags], timeout=RAY_TIMEOUT_S)
    missing = [tag for tag, was_there in zip(tags, removed, strict=True) if not was_there]
    click.echo(f"evicted {len(tags) - len(missing)} of {len(tags)}")
    if missing:
        raise click.ClickException(f"not in the cache: {', '.join(missing)}")


@cache.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_cache_options
def cache_clear(yes: bool, namespace: str | None, address: str | None) -> None:
    """Delete every entry (memory and disk)."""
    with _cache_actor(namespace, address) as actor:
        if not yes:
            entries = ray.get(actor.stats.remote(), timeout=RAY_TIMEOUT_S)["entries"]
            click.confirm(f"delete all {entries} cache entries?", abort=True)
        progress("deleting cache entries")
        count = ray.get(actor.flush.remote(), timeout=RAY_TIMEOUT_S)
    click.echo(f"deleted {count} entries")
