"""Fixtures for chia-bypass-cache tests: one real two-node local Ray cluster per session.

The cluster (loopback only) has a head with 2 CPUs and the custom resource
``head``, and a second node with 1 CPU and the custom resource ``node_b``;
tests that need no cluster never start it. Every test leaves no active
bypass and no write-through behind.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
import ray.cloudpickle
from ray.cluster_utils import Cluster

from chia.base._bypass_cache.state import live_state
from chia.base.cache import stop_cache


def pytest_collection_finish(session: pytest.Session) -> None:
    """Ship test-module functions to workers by value (workers cannot import test modules)."""
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None:
            ray.cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class TwoNodes:
    """The session cluster: its address and the node id of each named node."""

    address: str
    head_id: str
    node_b_id: str


@pytest.fixture(scope="session")
def cluster() -> Iterator[TwoNodes]:
    head_args: dict[str, Any] = {
        "node_ip_address": "127.0.0.1",
        "include_dashboard": False,
        "num_cpus": 2,
        "resources": {"head": 1},
        "object_store_memory": 400 << 20,
    }
    nodes = Cluster(initialize_head=True, head_node_args=head_args)
    try:
        node_b = nodes.add_node(node_ip_address="127.0.0.1", num_cpus=1, resources={"node_b": 1})
        nodes.wait_for_nodes()
        ray.init(address=nodes.address)
        assert nodes.head_node is not None
        yield TwoNodes(nodes.address, nodes.head_node.node_id, node_b.node_id)
    finally:
        ray.shutdown()
        nodes.shutdown()  # type: ignore[no-untyped-call]


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
def namespace(cluster: TwoNodes) -> Iterator[str]:
    """A fresh Ray namespace for a cache; the cache in it is stopped afterwards."""
    name = f"chia-test-{uuid.uuid4().hex[:12]}"
    yield name
    stop_cache(name)
