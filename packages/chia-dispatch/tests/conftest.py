"""Fixtures for chia-dispatch tests: one real local Ray cluster per session.

Ray is started on loopback only. ``ray.init`` costs seconds, so the cluster is
shared by every test that asks for it; a test needing another shape asks the
``clusters`` manager, which swaps the cluster (and swaps back lazily).
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import ray
import ray.cloudpickle
from ray.cluster_utils import Cluster


def pytest_collection_finish(session: pytest.Session) -> None:
    """Ship test-module functions and classes to workers by value.

    Test modules are imported under names (``packages.chia-dispatch.tests...``)
    that workers cannot import, whatever their working directory.
    """
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None:
            ray.cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]


@dataclass
class ClusterManager:
    """Keeps at most one local Ray cluster alive, keyed by its shape."""

    key: str | None = None
    cluster: Cluster | None = None
    node_ids: dict[str, str] = field(default_factory=dict)

    def ensure(self, key: str, nodes: dict[str, dict[str, Any]], *, dashboard: bool = False) -> Cluster:
        """A cluster whose nodes are named by ``nodes`` (first = head).

        ``node_ids`` maps each name to its Ray node id.
        """
        if self.key == key and self.cluster is not None:
            return self.cluster
        self.shutdown()
        names = list(nodes)
        head_args = {"include_dashboard": dashboard, **nodes[names[0]]}
        cluster = Cluster(initialize_head=True, head_node_args=head_args)
        assert cluster.head_node is not None
        handles = {names[0]: cluster.head_node}
        for name in names[1:]:
            handles[name] = cluster.add_node(**nodes[name])
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        self.key, self.cluster = key, cluster
        self.node_ids = {name: handle.node_id for name, handle in handles.items()}
        return cluster

    def shutdown(self) -> None:
        if ray.is_initialized():
            ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()  # type: ignore[no-untyped-call]
        self.key, self.cluster, self.node_ids = None, None, {}


@pytest.fixture(scope="session")
def clusters() -> Iterator[ClusterManager]:
    manager = ClusterManager()
    yield manager
    manager.shutdown()


TWO_NODES: dict[str, dict[str, Any]] = {
    "head": {"num_cpus": 2, "resources": {"head": 1}},
    "node_b": {"num_cpus": 1, "resources": {"node_b": 1}},
}


@pytest.fixture
def two_node_cluster(clusters: ClusterManager) -> ClusterManager:
    """A head (2 CPUs, resource ``head``) and a worker node (1 CPU, resource ``node_b``)."""
    clusters.ensure("two-nodes", TWO_NODES)
    return clusters
