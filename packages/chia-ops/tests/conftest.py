"""Fixtures for chia-ops tests: one real two-node local Ray cluster per session (loopback).

The head has 2 CPUs and the custom resource ``head``; a second node has 1
CPU and ``node_b``, so tests can place calls on either node and see one track
per node in the profile. The cluster itself, ``wait_until`` and test modules
shipped to workers by value come from chia-testing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray

from chia.trace import profiler
from chia_testing.cluster import ClusterShape, LoopbackCluster, ensure_cluster

CHIA = str(Path(sys.executable).with_name("chia"))

TWO_NODES = ClusterShape(
    "chia-ops two nodes",
    {
        "head": {"num_cpus": 2, "resources": {"head": 1}},
        "node_b": {"num_cpus": 1, "resources": {"node_b": 1}},
    },
)


@pytest.fixture(scope="session")
def cluster() -> Iterator[LoopbackCluster]:
    """The session cluster; a collector a test left running is stopped before the cluster goes."""
    yield ensure_cluster(TWO_NODES)
    if ray.is_initialized():  # chia-testing may have stopped the cluster already (another directory's tests ran)
        profiler.stop_collector()


@pytest.fixture
def no_collector(cluster: LoopbackCluster) -> Iterator[None]:
    """Guarantees no collector runs from this process before and after the test."""
    profiler.stop_collector()
    yield
    profiler.stop_collector()


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
