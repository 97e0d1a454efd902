"""Fixtures for chia-placement: one real multi-node local Ray cluster for the whole package.

The cluster has two nodes on loopback, 2 CPUs each: the head ``node_a``
(custom resource ``node_a``) and a worker ``node_b``; two raylets keep
startup within Ray's fixed 30 s per-node limit on a busy 2-core machine.
chia-testing stops it when this directory's last test is done and ships the
test modules to Ray workers by value.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest
import ray

from chia_testing.cluster import ClusterShape, LoopbackCluster, cluster_fixture

cluster = cluster_fixture(
    ClusterShape(
        "chia-placement two nodes",
        {
            "node_a": {"num_cpus": 2, "resources": {"node_a": 1}},
            "node_b": {"num_cpus": 2, "resources": {"node_b": 1}},
        },
    )
)


@pytest.fixture
def actor_gone() -> Callable[[str, str], bool]:
    """``actor_gone(name, namespace)``: True once no live actor has that name."""

    def gone(name: str, namespace: str) -> bool:
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            return True
        return False

    return gone


@pytest.fixture
def kv_name(cluster: LoopbackCluster) -> Iterator[tuple[str, str]]:
    """A fresh (name, namespace) for a KV store; its detached actor is killed afterwards."""
    name, namespace = f"knobs-{uuid.uuid4().hex[:8]}", "chia-placement-tests"
    yield name, namespace
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(name, namespace=namespace))


@pytest.fixture
def run_cli(cluster: LoopbackCluster) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python -m chia.base.chia_kv_store ARGS`` as an operator would, in a fresh process."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
        environment.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "chia.base.chia_kv_store", *args],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )

    return run
