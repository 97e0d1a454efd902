"""A loopback multi-node cluster started with ``ray start``, as users start theirs, token authentication on.

``ray.cluster_utils.Cluster`` (``chia_testing.cluster``) starts nodes from the
test process; operations (the ``chia`` command line, ``chia run``) must also
work against a cluster started by ``ray start``, where Ray 2.60 turns token
authentication on. This module starts one: every node on 127.0.0.1, free
ports, a private temp directory, and tears it down by the PIDs of the
processes under that directory (never ``ray stop``, which would stop every
Ray cluster on the machine).

Call :func:`enable_token_auth` before anything reads Ray's configuration in the
test process (a conftest's first lines), so the driver and every subprocess
carry the token. Importing this module does not import Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from chia_testing._poll import wait_until
from chia_testing._ports import LOOPBACK, free_port
from chia_testing._startup import with_startup_retries

__all__ = ["StartedCluster", "enable_token_auth", "loopback_ray_bin", "start_cluster", "stop_started_cluster"]

_RAY = str(Path(sys.executable).with_name("ray"))
_START_TIMEOUT_S = 300.0
_TERM_GRACE_S = 2.0

# `ray start --address` refuses a second node while RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
# (the tests' setting, which keeps Ray on loopback) and, allowed, rewrites 127.0.0.1
# into the machine's outward address. A test node runs Ray's own `ray` command
# line with both pinned to loopback.
_LOOPBACK_RAY = """
import sys
import ray._private.ray_constants as constants
import ray._private.services as services
from ray.scripts.scripts import main
constants.ENABLE_RAY_CLUSTER = True
services.get_node_ip_address = lambda address=None: "127.0.0.1"
sys.argv = ["ray", *sys.argv[1:]]
main()
"""


@dataclass(frozen=True, slots=True)
class StartedCluster:
    """A running cluster: its GCS address, node ids by role, temp root and token (None: no auth)."""

    address: str
    node_ids: Mapping[str, str]
    tmp_root: Path
    """``RAY_TMPDIR=tmp_root`` makes this cluster the one Ray finds as "the latest cluster on this machine"."""
    token: str | None


def enable_token_auth() -> str:
    """Turn Ray's token authentication on for this process and its children; returns the fresh token."""
    token = secrets.token_hex(32)
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = token
    return token


def _ray_start(*args: str, worker: bool) -> None:
    command = [sys.executable, "-c", _LOOPBACK_RAY] if worker else [_RAY]
    result = subprocess.run([*command, "start", *args], capture_output=True, text=True, timeout=_START_TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")


def loopback_ray_bin(directory: Path) -> Path:
    """Write ``directory/ray``: Ray's command line pinned to loopback, for shell scripts that run ``ray start``.

    Put ``directory`` first on a script's ``PATH``: its ``ray start --address``
    then joins a loopback head as a worker node (which plain ``ray`` refuses or
    moves off loopback, see above). Returns the file's path.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ray"
    path.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(_LOOPBACK_RAY)} "$@"\n')
    path.chmod(0o755)
    return path


def _pids_under(directory: Path) -> list[int]:
    """The processes whose command line names ``directory``: the cluster's own, nobody else's."""
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


def stop_started_cluster(tmp_root: Path) -> None:
    """Disconnect the driver, kill the cluster's processes (TERM, then KILL) and remove its directory."""
    import ray  # here, not at import: this module is imported before the token is in the environment

    if ray.is_initialized():
        ray.shutdown()
    # A test cluster holds nothing worth a graceful stop: the GCS and raylets
    # often outlive SIGTERM by 15 s and more, so they get a short grace.
    for sig, grace in ((signal.SIGTERM, _TERM_GRACE_S), (signal.SIGKILL, 15.0)):
        for pid in _pids_under(tmp_root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        with contextlib.suppress(AssertionError):
            wait_until(
                lambda: not _pids_under(tmp_root), timeout=grace, message=f"the processes under {tmp_root} to exit"
            )
    shutil.rmtree(tmp_root, ignore_errors=True)


def start_cluster(nodes: Mapping[str, int], *, dashboard: bool = True) -> StartedCluster:
    """Start a head and worker nodes with ``ray start``; connect this process as a driver.

    ``nodes`` maps a role to its CPU count, the first being the head; each node
    also carries a custom resource named after its role (1 unit), so tests can
    place calls by role. Token authentication follows this process's
    environment (:func:`enable_token_auth`). A start that misses one of Ray's
    fixed startup limits (a loaded machine) is torn down and tried again.
    """
    return with_startup_retries(lambda: _start_once(nodes, dashboard=dashboard), f"ray start cluster {list(nodes)}")


def _start_once(nodes: Mapping[str, int], *, dashboard: bool) -> StartedCluster:
    import ray  # here, not at import: this module is imported before the token is in the environment

    roles = list(nodes)
    if not roles:
        raise ValueError("start_cluster needs at least one node (the head)")
    root = Path(tempfile.mkdtemp(prefix="chia-rs-", dir="/tmp"))  # short: Ray's socket paths live below it
    address = f"{LOOPBACK}:{free_port()}"
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        head: list[Any] = [
            "--head",
            f"--port={address.rsplit(':', 1)[1]}",
            f"--temp-dir={root / 'ray'}",
            f"--include-dashboard={'true' if dashboard else 'false'}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
        ]
        for index, role in enumerate(roles):
            args = head if index == 0 else [f"--address={address}"]
            _ray_start(
                *args,
                *common,
                f"--dashboard-agent-listen-port={free_port()}",
                f"--num-cpus={nodes[role]}",
                f"--resources={json.dumps({role: 1})}",
                worker=index > 0,
            )
        ray.init(address=address)

        def alive() -> list[dict[str, Any]]:
            nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
            return [node for node in nodes if node["Alive"]]

        wait_until(lambda: len(alive()) == len(roles), timeout=120, message=f"the {len(roles)} nodes to register")
        node_ids = {role: node["NodeID"] for node in alive() for role in roles if role in node["Resources"]}
    except BaseException:
        stop_started_cluster(root)
        raise
    return StartedCluster(address, MappingProxyType(node_ids), root, os.environ.get("RAY_AUTH_TOKEN"))
