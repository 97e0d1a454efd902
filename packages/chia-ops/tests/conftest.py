"""Fixtures for chia-ops tests: one real two-node local Ray cluster per session, with token authentication.

The cluster is started as users start theirs: ``ray start --head`` and
``ray start --address`` for a second node, with Ray's token authentication
on (``RAY_AUTH_MODE=token``, a fresh ``RAY_AUTH_TOKEN`` set in this process's
environment, so ``ray.init`` here and every ``chia`` subprocess carry it).
Ray listens on loopback only, on free ports, under a private temp directory
(``RAY_TMPDIR=<root>`` finds it as "the latest cluster on this machine"); it
is torn down by the PIDs of the processes under that directory, never with
``ray stop``. The head has 2 CPUs and the custom resource ``head``; the second
node has 1 CPU and ``node_b``, so tests can place calls on either node and
see one track per node in the profile.
"""

from __future__ import annotations

import os
import secrets

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# Before anything initializes Ray's config in this process: token authentication on, with this session's token.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray
import ray.cloudpickle

from chia.cli._cluster import ray_nodes
from chia.trace import profiler

CHIA = str(Path(sys.executable).with_name("chia"))
RAY = str(Path(sys.executable).with_name("ray"))
CLUSTER_TOKEN = os.environ["RAY_AUTH_TOKEN"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Ship test-module functions to workers by value: workers cannot import test modules."""
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None:
            ray.cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class LocalCluster:
    """The session cluster: its GCS address, the node ids by role, its temp root and token."""

    address: str
    head_node: str
    node_b: str
    tmp_root: Path
    """``RAY_TMPDIR=tmp_root`` makes this cluster the one Ray (and chia) find on this machine."""
    token: str


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _pids_under(directory: Path) -> list[int]:
    """The processes whose command line names ``directory`` (the cluster's own, nobody else's)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(directory) in command:
            pids.append(int(entry.name))
    return pids


def _kill_cluster(directory: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _pids_under(directory):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 15
        while _pids_under(directory) and time.monotonic() < deadline:
            time.sleep(0.1)


# `ray start` for a second node on loopback: Ray refuses a worker node while
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (the test environment's setting) and,
# allowed, rewrites 127.0.0.1 into the machine's outward IP. The test node
# runs Ray's own `ray start` with both pinned to loopback.
_LOOPBACK_RAY_START = """
import sys
import ray._private.ray_constants as constants
import ray._private.services as services
from ray.scripts.scripts import main
constants.ENABLE_RAY_CLUSTER = True
services.get_node_ip_address = lambda address=None: "127.0.0.1"
sys.argv = ["ray", "start", *sys.argv[1:]]
main()
"""


def _ray_start(*args: str, worker: bool = False) -> None:
    command = [sys.executable, "-c", _LOOPBACK_RAY_START] if worker else [RAY, "start"]
    result = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix="chia-ops-", dir="/tmp"))  # short: Ray's socket paths live below it
    temp_dir = root / "ray"
    gcs, dashboard, client, agent_head, agent_b = _free_ports(5)
    address = f"127.0.0.1:{gcs}"
    try:
        _ray_start(
            "--head",
            f"--port={gcs}",
            f"--temp-dir={temp_dir}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={agent_head}",
            "--disable-usage-stats",
            "--num-cpus=2",
            f"--resources={json.dumps({'head': 1})}",
        )
        _ray_start(
            f"--address={address}",
            "--node-ip-address=127.0.0.1",
            f"--dashboard-agent-listen-port={agent_b}",
            "--disable-usage-stats",
            "--num-cpus=1",
            f"--resources={json.dumps({'node_b': 1})}",
            worker=True,
        )
        ray.init(address=address)
        _wait_for(lambda: sum(node["Alive"] for node in ray_nodes()) == 2, what="the two nodes")
        roles = {
            role: node["NodeID"]
            for node in ray_nodes()
            if node["Alive"]
            for role in node["Resources"]
            if role in ("head", "node_b")
        }
        yield LocalCluster(address, roles["head"], roles["node_b"], root, CLUSTER_TOKEN)
    finally:
        if ray.is_initialized():
            profiler.stop_collector()
        ray.shutdown()
        _kill_cluster(root)
        shutil.rmtree(root, ignore_errors=True)


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
