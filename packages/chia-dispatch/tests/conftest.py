"""Fixtures for chia-dispatch tests: one real local Ray cluster per session.

Ray is started on loopback only. ``ray.init`` costs seconds, so the cluster is
shared by every test that asks for it; a test needing another shape asks the
``clusters`` manager, which swaps the cluster (and swaps back lazily).
"""

from __future__ import annotations

import os
import socket

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import contextlib
import signal
import time
import uuid
from collections.abc import Callable, Iterator
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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
        if dashboard:  # never collide with another Ray on this machine
            head_args["dashboard_port"] = _free_port()
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


# --- cancellation, chia_wait and the dispatch proxy (issue 3) ---------------------------
# Fixtures of test_cancel_*, test_wait_* and test_proxy_*.

TUNNELED_NODES: dict[str, dict[str, Any]] = {
    # The GCS must not declare a SIGSTOPped raylet dead during the wedged-raylet test.
    "head": {"num_cpus": 2, "resources": {"head": 1}, "_system_config": {"health_check_failure_threshold": 1000}},
    "lan": {"num_cpus": 1, "resources": {"lan": 1}},
    "tun": {"num_cpus": 1, "resources": {"tun": 1}, "labels": {"chia/tunneled": "true"}},
}


@pytest.fixture
def tunneled_cluster(clusters: ClusterManager) -> ClusterManager:
    """Head (2 CPUs, dashboard for Ray's state API), node ``lan`` and node ``tun`` labelled tunneled."""
    clusters.ensure("tunneled-dashboard", TUNNELED_NODES, dashboard=True)
    return clusters


def _wait_until(condition: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """``wait_until(condition, timeout=60, what=...)``: poll until truthy, fail at the deadline."""
    return _wait_until


class TaggedProcesses:
    """Live processes whose argv[0] starts with a test's unique tag (``exec -a <tag>-... sleep``)."""

    def __init__(self) -> None:
        self.tags: list[str] = []

    def new_tag(self, prefix: str = "chia-test") -> str:
        tag = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.tags.append(tag)
        return tag

    @staticmethod
    def pids(tag: str) -> list[int]:
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    argv0 = handle.read().split(b"\0", 1)[0]
                with open(f"/proc/{name}/stat", "rb") as handle:
                    state = handle.read().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if argv0.startswith(tag.encode()) and state != b"Z":
                found.append(int(name))
        return found

    def kill_leftovers(self) -> None:
        for tag in self.tags:
            for pid in self.pids(tag):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def tagged() -> Iterator[TaggedProcesses]:
    """Tags for test subprocesses; whatever a test leaves behind is SIGKILLed at teardown."""
    processes = TaggedProcesses()
    yield processes
    processes.kill_leftovers()
