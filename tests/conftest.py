"""Cross-package tests: one real two-node local Ray cluster (loopback only).

The head has 2 CPUs and the custom resource ``head``; a second node has
2 CPUs and ``node_b``. Tests that need no cluster never start it.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import ray
import ray.cloudpickle
from ray.cluster_utils import Cluster


def pytest_collection_finish(session: pytest.Session) -> None:
    """Ship test-module functions to workers by value (workers cannot import test modules)."""
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None:
            ray.cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class TwoNodes:
    address: str
    head_id: str
    node_b_id: str


@pytest.fixture(scope="session")
def cluster() -> Iterator[TwoNodes]:
    head_args: dict[str, Any] = {"num_cpus": 2, "resources": {"head": 1}, "include_dashboard": False}
    nodes = Cluster(initialize_head=True, head_node_args=head_args)
    try:
        node_b = nodes.add_node(num_cpus=2, resources={"node_b": 1})
        nodes.wait_for_nodes()
        ray.init(address=nodes.address, namespace="chia_cross_tests")
        assert nodes.head_node is not None
        yield TwoNodes(nodes.address, nodes.head_node.node_id, node_b.node_id)
    finally:
        ray.shutdown()
        nodes.shutdown()  # type: ignore[no-untyped-call]
