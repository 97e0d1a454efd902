"""Fixtures for chia-bypass-cache tests: one real two-node local Ray cluster per session.

The cluster (loopback only) has a head with 2 CPUs and the custom resource
``head``, and a second node with 1 CPU and the custom resource ``node_b``;
tests that need no cluster never start it (chia-testing starts it, and ships
test modules to workers by value). Every test leaves no active bypass and no
write-through behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chia.base._bypass_cache.state import live_state
from chia.base.cache import stop_cache
from chia_testing.cluster import ClusterShape, LoopbackCluster, cluster_fixture

cluster = cluster_fixture(
    ClusterShape(
        "chia-bypass-cache two nodes",
        {
            "head": {"num_cpus": 2, "resources": {"head": 1}, "object_store_memory": 400 << 20},
            "node_b": {"num_cpus": 1, "resources": {"node_b": 1}},
        },
    )
)


@pytest.fixture(autouse=True)
def no_bypass_left() -> Iterator[None]:
    """Each test starts and ends with no active bypass, no write-through and nothing registered."""
    live_state.reset()
    yield
    live_state.reset()


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[[str], str]:
    """Write a YAML config into the test's directory; returns its path."""

    def write(text: str, name: str = "chia.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
def namespace(cluster: LoopbackCluster) -> Iterator[str]:
    """A fresh Ray namespace for a cache; the cache in it is stopped afterwards."""
    name = f"chia-test-{uuid.uuid4().hex[:12]}"
    yield name
    stop_cache(name)
