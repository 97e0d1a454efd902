"""``chia status``: chia's work on a running cluster, and its nodes, resources and named actors.

Stable. Reports the unfinished tasks (running, pending, stuck: function, tag,
node, state, age, the subprocess trees the pid registries track and the cause
``chia_wait`` gave a stuck task), filtered by tag pattern, function, state or
task id; every node (alive or dead, which one is the head), the resources
free and total, the named actors in every namespace and the profile collector
if one runs; as text or ``--json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import click
import ray

from chia.cli._cluster import (
    RAY_TIMEOUT_S,
    address_option,
    available_resources,
    cluster_resources,
    connected,
    progress,
    ray_nodes,
)
from chia.cli._exit import CliError
from chia.cli._tasks import STATES, TaskListing, filter_options, format_table, list_unfinished, select
from chia.trace import profiler

__all__ = ["NodeStatus", "status"]


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as ``chia status`` reports it."""

    node_id: str
    address: str
    alive: bool
    head: bool
    resources: dict[str, float]


def _format_resources(total: dict[str, float], free: dict[str, float] | None = None) -> str:
    """``CPU 1/2, GPU 0/1`` (free/total), or just the totals; memory and node markers left out."""
    parts = []
    for name in sorted(total):
        if name.startswith("node:") or name in ("memory", "object_store_memory"):
            continue
        amount = f"{total[name]:g}" if free is None else f"{free.get(name, 0.0):g}/{total[name]:g}"
        parts.append(f"{name} {amount}")
    return ", ".join(parts) or "-"


@click.command()
@address_option
@filter_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of text.")
def status(
    address: str | None,
    tags: tuple[str, ...],
    functions: tuple[str, ...],
    states: tuple[str, ...],
    task_ids: tuple[str, ...],
    as_json: bool,
) -> None:
    """The tasks running, pending and stuck (with their subprocess trees); nodes, resources and named actors.

    A task's tag is the one its call was dispatched with (its Ray task name
    is ``function[tag]``); filters of one kind match any of their values,
    filters of different kinds must all match.
    """
    filtered = bool(tags or functions or states or task_ids)
    with connected(address) as target:
        listing: TaskListing | None = None
        tasks_error = None
        try:
            listing = list_unfinished(target.address)
        except CliError as exc:
            if filtered:
                raise
            tasks_error = exc.message
            progress(f"tasks not shown: {exc.message}")
        nodes = [
            NodeStatus(
                node["NodeID"],
                str(node.get("NodeManagerAddress")),
                bool(node.get("Alive")),
                "node:__internal_head__" in node.get("Resources", {}),
                dict(node.get("Resources", {})),
            )
            for node in ray_nodes()
        ]
        total = cluster_resources()
        free = available_resources()
        actors = sorted(
            ray.util.list_named_actors(all_namespaces=True), key=lambda entry: (entry["namespace"], entry["name"])
        )
        collector_info = None
        collector = profiler.get_collector() or _collector_anywhere()
        if collector is not None:
            collector_info = ray.get(collector.info.remote(), timeout=RAY_TIMEOUT_S)
    tasks = (
        None
        if listing is None
        else select(listing.tasks, tags=tags, functions=functions, states=states, task_ids=task_ids)
    )
    if listing is not None and listing.truncated:
        progress(f"Ray's state API returned its limit of {len(listing.tasks)} tasks: more may run")
    document = {
        "tasks": None if tasks is None else [asdict(task) for task in tasks],
        "tasks_error": tasks_error,
        "nodes": [asdict(node) for node in nodes],
        "resources": {"total": total, "available": free},
        "actors": actors,
        "profile_collector": collector_info,
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    if tasks is not None:
        counts = ", ".join(f"{sum(task.state == state for task in tasks)} {state}" for state in STATES)
        click.echo(f"tasks{' matching' if filtered else ''}: {counts}")
        if tasks:
            for line in format_table(tasks):
                click.echo(f"  {line}")
    alive = [node for node in nodes if node.alive]
    click.echo(f"{len(alive)} node(s) alive, {len(nodes) - len(alive)} dead")
    for node in alive:
        role = " (head)" if node.head else ""
        click.echo(f"  {node.node_id[:12]} {node.address}{role}: {_format_resources(node.resources)}")
    click.echo(f"resources (free/total): {_format_resources(total, free)}")
    click.echo(f"named actors: {len(actors)}")
    for entry in actors:
        click.echo(f"  {entry['name']}  (namespace {entry['namespace']})")
    if collector_info is not None:
        click.echo(f"profile collector: {collector_info['records']} rows -> {collector_info['log_path']}")


def _collector_anywhere() -> Any:
    names = [e for e in ray.util.list_named_actors(all_namespaces=True) if e["name"] == profiler.COLLECTOR_NAME]
    if len(names) != 1:
        return None
    return ray.get_actor(profiler.COLLECTOR_NAME, namespace=names[0]["namespace"])
