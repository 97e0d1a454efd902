"""``chia status``: the nodes, resources and named actors of a running cluster.

Stable. Reports every node (alive or dead, which one is the head), the
resources free and total, the named actors in every namespace and the
profile collector if one runs, as text or ``--json``.
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
    ray_nodes,
)
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
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of text.")
def status(address: str | None, as_json: bool) -> None:
    """Nodes, resources (free/total) and the named actors running (chia's and others)."""
    with connected(address):
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
    document = {
        "nodes": [asdict(node) for node in nodes],
        "resources": {"total": total, "available": free},
        "actors": actors,
        "profile_collector": collector_info,
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
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
