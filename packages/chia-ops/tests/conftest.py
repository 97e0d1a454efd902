"""Fixtures for chia-ops tests: one real two-node local Ray cluster per session, with token authentication.

The cluster is started as users start theirs (``ray start --head`` and
``ray start --address`` for a second node), with Ray's token authentication
on: a fresh ``RAY_AUTH_TOKEN`` in this process's environment, so ``ray.init``
here and every ``chia`` subprocess carry it. Loopback only, free ports, a
private temp directory torn down by its PIDs (chia-testing's ``ray_start``).
The head has 2 CPUs and the custom resource ``head``; the second node has 1
CPU and ``node_b``, so tests can place calls on either node and see one track
per node in the profile.
"""

from __future__ import annotations

from chia_testing.ray_start import StartedCluster, enable_token_auth, start_cluster, stop_started_cluster

CLUSTER_TOKEN = enable_token_auth()  # before anything reads Ray's configuration in this process

import os  # noqa: E402 -- after the token is in the environment
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import ray  # noqa: E402

from chia.cli._cluster import route_ray_messages_to_stderr  # noqa: E402
from chia.trace import profiler  # noqa: E402

CHIA = str(Path(sys.executable).with_name("chia"))


@pytest.fixture(scope="session")
def cluster() -> Iterator[StartedCluster]:
    """The session cluster; a collector a test left running is stopped before the cluster goes.

    This process's driver sends Ray's own messages (autoscaler tips, warnings)
    to stderr, as ``chia`` does: commands run in-process by ``CliRunner``
    capture stdout, and a message landing there mid-command broke a ``--json``.
    """
    route_ray_messages_to_stderr()
    started = start_cluster({"head": 2, "node_b": 1})
    try:
        yield started
    finally:
        if ray.is_initialized():
            profiler.stop_collector()
        stop_started_cluster(started.tmp_root)


@pytest.fixture
def no_collector(cluster: StartedCluster) -> Iterator[None]:
    """Guarantees no collector runs from this process before and after the test."""
    profiler.stop_collector()
    yield
    profiler.stop_collector()


def chia_environment(env: dict[str, str] | None) -> dict[str, str]:
    """This process's environment with ``env`` over it, without a RAY_ADDRESS that ``env`` does not give."""
    environment = {**os.environ, **(env or {})}
    environment.pop("RAY_ADDRESS", None)
    if env and "RAY_ADDRESS" in env:
        environment["RAY_ADDRESS"] = env["RAY_ADDRESS"]
    return environment


@pytest.fixture
def run_chia() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``chia`` script in a subprocess (its own Ray driver)."""

    def run(*args: str, timeout: float = 120.0, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = chia_environment(env)
        return subprocess.run([CHIA, *args], capture_output=True, text=True, timeout=timeout, env=environment)

    return run


@pytest.fixture
def start_chia() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start the installed ``chia`` script (pipes for stdin, stdout, stderr); whatever is left running is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        pipe = subprocess.PIPE
        process = subprocess.Popen(
            [CHIA, *args], stdin=pipe, stdout=pipe, stderr=pipe, text=True, env=chia_environment(env)
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()
