"""Fixtures for chia-placement: one real multi-node local Ray cluster for the whole package.

The cluster has two nodes on loopback, 2 CPUs each: the head (custom
resource ``node_a``) and a worker (``node_b``); two raylets keep startup within
Ray's fixed 30 s per-node limit on a busy 2-core machine. It stops when this
package's last test is done. Test modules are shipped to Ray workers by value
(pytest's importlib mode makes them unimportable there).
"""

from __future__ import annotations

import os

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

_TESTS_DIR = Path(__file__).resolve().parent
_register_pickle_by_value: Callable[[ModuleType], None] = ray.cloudpickle.register_pickle_by_value
_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class LocalCluster:
    """The running test cluster: its address and the node id of each node (node a is the head)."""

    address: str
    node_a_id: str
    node_b_id: str


_cluster_stops: list[Callable[[], None]] = []


def _stop_cluster() -> None:
    while _cluster_stops:
        _cluster_stops.pop()()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    if ray.is_initialized():  # another package's session left its connection open
        ray.shutdown()
    node_args: dict[str, Any] = {"node_ip_address": _LOOPBACK, "include_dashboard": False}
    ray_cluster = Cluster(initialize_head=True, head_node_args={**node_args, "num_cpus": 2, "resources": {"node_a": 1}})
    shutdown_cluster: Callable[[], None] = ray_cluster.shutdown
    _cluster_stops.extend([shutdown_cluster, ray.shutdown])
    try:
        ray_cluster.add_node(**node_args, num_cpus=2, resources={"node_b": 1})
        ray_cluster.wait_for_nodes()
        ray.init(address=ray_cluster.address, include_dashboard=False)
        for item in request.session.items:
            module = getattr(item, "module", None)
            if module is not None and Path(module.__file__).resolve().parent == _TESTS_DIR:
                _register_pickle_by_value(module)
        yield LocalCluster(ray_cluster.address, _node_with("node_a"), _node_with("node_b"))
    finally:
        _stop_cluster()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Stop the cluster as soon as this package's last test is done, not at the end of the whole session.

    Other packages' tests that run later in the same pytest session then start
    their own Ray instead of finding this cluster connected.
    """
    yield
    if nextitem is None or nextitem.path.resolve().parent != _TESTS_DIR:
        _stop_cluster()


def _node_with(resource: str) -> str:
    nodes: Callable[[], list[dict[str, Any]]] = ray.nodes
    for node in nodes():
        if node["Alive"] and resource in node["Resources"]:
            node_id: str = node["NodeID"]
            return node_id
    raise LookupError(f"no live node of the test cluster has resource {resource!r}")


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def poll() -> Callable[..., None]:
    """``poll(condition, what, timeout_s=60)``: wait for a cluster-side condition with a deadline."""
    return wait_for


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
def kv_name(cluster: LocalCluster) -> Iterator[tuple[str, str]]:
    """A fresh (name, namespace) for a KV store; its detached actor is killed afterwards."""
    name, namespace = f"knobs-{uuid.uuid4().hex[:8]}", "chia-placement-tests"
    yield name, namespace
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(name, namespace=namespace))


@pytest.fixture
def run_cli(cluster: LocalCluster) -> Callable[..., subprocess.CompletedProcess[str]]:
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
