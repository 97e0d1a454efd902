"""Nodes tunneled the reference's way: ``CHIA_TOOL_RELAY_HOST``/``CHIA_TOOL_ADVERTISE_HOST`` in the raylet's env.

Issue 13 point 18. The node ``envtun`` carries no label and no resource marker:
its raylet (hence every worker on it) has the two variables in its environment.
``should_proxy`` and the dispatch proxy must treat it as tunneled, in both
directions; ``get_dispatch_proxy().submit`` runs a function from the head.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import ray

from chia.base.ChiaFunction import ChiaFunction, get
from chia.base.dispatch_proxy import TUNNEL_ENV, DispatchProxy, get_dispatch_proxy, should_proxy
from chia_testing.cluster import LoopbackCluster


@ChiaFunction(num_cpus=0)
def add_one(x: int) -> int:
    return x + 1


@ChiaFunction(num_cpus=0)
def node_env() -> tuple[str, bool]:
    return ray.get_runtime_context().get_node_id(), all(os.environ.get(name) for name in TUNNEL_ENV)


@ChiaFunction(num_cpus=0)
def nested_add_one(target: str, x: int) -> tuple[int, bool]:
    options: dict[str, Any] = {"num_cpus": 0, "resources": {target: 0.01}}
    return get(add_one.options(**options).chia_remote(x)), should_proxy(options)


def relayed_count() -> int:
    """Relays so far, read from the job's proxy through the public handle."""
    stats: dict[str, int] = ray.get(get_dispatch_proxy().stats.remote())
    return stats["relayed"]


def test_only_the_envtun_node_carries_the_variables(cluster: LoopbackCluster) -> None:
    for name in ("head", "node_b", "tun", "envtun"):
        node, marked = get(node_env.options(resources={name: 0.01}).chia_remote())
        assert node == cluster.node_ids[name]
        assert marked is (name == "envtun")


@pytest.mark.ray_compat
@pytest.mark.parametrize(
    ("source", "target", "relayed"),
    [
        ("envtun", "lan", True),  # tunneled worker (recognised from its own env) -> LAN node
        ("lan", "envtun", True),  # LAN worker -> a node tunneled by its raylet's env
        ("lan", "head", False),
        ("envtun", "head", False),
        ("head", "envtun", False),  # the head never relays
    ],
)
def test_env_marked_node_is_relayed_exactly_when_unreachable(
    cluster: LoopbackCluster, source: str, target: str, relayed: bool
) -> None:
    before = relayed_count()
    value, decided = get(nested_add_one.options(resources={source: 0.01}).chia_remote(target, 41))
    assert value == 42
    assert decided is relayed
    assert relayed_count() - before == (1 if relayed else 0)


@ray.remote(num_cpus=0)
def raw_node() -> str:
    return ray.get_runtime_context().get_node_id()


def plain_node() -> str:
    return ray.get_runtime_context().get_node_id()


def test_get_dispatch_proxy_submits_from_the_head(cluster: LoopbackCluster) -> None:
    proxy = get_dispatch_proxy()
    assert proxy is get_dispatch_proxy() or proxy == get_dispatch_proxy()
    assert ray.get(proxy.submit.remote(add_one, (1,))) == 2
    assert ray.get(proxy.submit.remote(add_one, (), {"x": 2}, {"resources": {"envtun": 0.01}})) == 3
    assert ray.get(proxy.submit.remote(raw_node, options={"resources": {"lan": 0.01}})) == cluster.node_ids["node_b"]
    assert (
        ray.get(proxy.submit.remote(plain_node, options={"resources": {"envtun": 0.01}}))
        == (cluster.node_ids["envtun"])
    )
    assert callable(DispatchProxy.submit)
