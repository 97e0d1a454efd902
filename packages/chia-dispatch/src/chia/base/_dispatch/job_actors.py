"""Per-job service actors: the pid registry and dispatch proxy (on the head) and the reapers.

Owns how such an actor is named, found, created (detached, so it outlives a
driver killed by ``ray job stop`` long enough to clean up after it; pinned to
the head, the one node every other node reaches, or a reaper to the node it
kills on) and how it notices that its job ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

logger = logging.getLogger(__name__)

NAMESPACE = "chia"
"""Ray namespace of chia's service actors."""

REGISTRY_PREFIX = "chia_pid_registry_"
"""Name prefix of the per-job pid registries (``chia_pid_registry_<job id>``)."""

_REAPER_PREFIX = "chia_pid_reaper_"
_PROXY_PREFIX = "chia_dispatch_proxy_"
_JOB_POLL_INTERVAL = 1.0
_HEAD_RESOURCE = "node:__internal_head__"


def registry_name(job_hex: str) -> str:
    """Name of the pid registry of ``job_hex``."""
    return f"{REGISTRY_PREFIX}{job_hex}"


def reaper_name(job_hex: str, node_id: str) -> str:
    """Name of the reaper of ``job_hex`` on node ``node_id``."""
    return f"{_REAPER_PREFIX}{job_hex}_{node_id}"


def proxy_name(job_hex: str) -> str:
    """Name of the dispatch proxy of ``job_hex``."""
    return f"{_PROXY_PREFIX}{job_hex}"


def current_job_hex() -> str:
    """Hex id of the Ray job this process belongs to."""
    job: str = ray.get_runtime_context().get_job_id()
    return job


def alive_nodes() -> list[dict[str, Any]]:
    """``ray.nodes()`` entries of the nodes that are alive."""
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return [node for node in nodes if node.get("Alive")]


def is_head(node: dict[str, Any]) -> bool:
    """Whether a ``ray.nodes()`` entry is the head node."""
    return _HEAD_RESOURCE in node.get("Resources", {})


def head_node_id() -> str:
    """Node id of the cluster's head node."""
    for node in alive_nodes():
        if is_head(node):
            node_id: str = node["NodeID"]
            return node_id
    raise RuntimeError("no alive head node in this Ray cluster (no node has the resource node:__internal_head__)")


def lookup(name: str) -> Any | None:
    """The named chia actor, or None when it does not exist."""
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


def get_or_create(actor_class: Any, name: str, *args: Any, node_id: str | None = None, **options: Any) -> Any:
    """Get the named actor, creating it detached on ``node_id`` (default: the head) if missing."""
    strategy = NodeAffinitySchedulingStrategy(node_id or head_node_id(), soft=False)
    return actor_class.options(
        name=name,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        scheduling_strategy=strategy,
        **options,
    ).remote(*args)


async def job_is_dead(job_hex: str) -> bool:
    """Whether the GCS reports ``job_hex`` finished (its driver exited or was killed)."""
    gcs_client: Any = ray._private.worker.global_worker.gcs_client  # type: ignore[attr-defined]
    infos = await gcs_client.async_get_all_job_info(
        job_or_submission_id=job_hex,
        skip_submission_job_info_field=True,
        skip_is_running_tasks_field=True,
        timeout=10,
    )
    for job_id, info in infos.items():
        if job_id.hex() == job_hex:
            return bool(info.is_dead)
    return False


async def run_when_job_ends(job_hex: str, on_end: Callable[[], Awaitable[None]]) -> None:
    """Poll the GCS until ``job_hex`` is dead, then await ``on_end()``; runs as an actor's background task."""
    while True:
        await asyncio.sleep(_JOB_POLL_INTERVAL)
        try:
            if await job_is_dead(job_hex):
                break
        except Exception:  # a GCS hiccup: try again next period
            logger.debug("could not read the state of job %s", job_hex, exc_info=True)
    await on_end()


def exit_current_actor() -> None:
    """Kill the actor this code runs in (from any coroutine, unlike ``exit_actor``)."""
    ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
