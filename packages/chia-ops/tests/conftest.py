"""Fixtures for chia-ops tests: one real two-node local Ray cluster per session.

Ray listens on this machine only. The head has 2 CPUs and the custom
resource ``head``; a second node has 1 CPU and ``node_b``, so tests can place
calls on either node and see one track per node in the profile.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray
import ray.cloudpickle
from ray.cluster_utils import Cluster

from chia.trace import profiler

CHIA = str(Path(sys.executable).with_name("chia"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Ship test-module functions to workers by value: workers cannot import test modules."""
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None:
            ray.cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class LocalCluster:
    """The session cluster: its GCS address and the node ids by role."""

    address: str
    head_node: str
    node_b: str


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    ray_cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "resources": {"head": 1}, "include_dashboard": False},
    )
    node_b = ray_cluster.add_node(num_cpus=1, resources={"node_b": 1})
    ray_cluster.wait_for_nodes()
    ray.init(address=ray_cluster.address)
    head = ray_cluster.head_node
    assert head is not None
    try:
        yield LocalCluster(ray_cluster.address, head.node_id, node_b.node_id)
    finally:
        profiler.stop_collector()
        ray.shutdown()
        ray_cluster.shutdown()


@pytest.fixture
def no_collector(cluster: LocalCluster) -> Iterator[None]:
    """Guarantees no collector runs from this process before and after the test."""
    profiler.stop_collector()
    yield
    profiler.stop_collector()


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """``wait_for(condition, timeout=60, what=...)``: poll until ``condition()`` holds."""
    return _wait_for


@pytest.fixture
def run_chia() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``chia`` script in a subprocess (its own Ray driver)."""

    def run(*args: str, timeout: float = 120.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, **(env or {})}
        environment.pop("RAY_ADDRESS", None)
        if env and "RAY_ADDRESS" in env:
            environment["RAY_ADDRESS"] = env["RAY_ADDRESS"]
        return subprocess.run([CHIA, *args], capture_output=True, text=True, timeout=timeout, env=environment)

    return run
