"""The getting-started guide's scripts, run as written, against a loopback two-node cluster they start with `ray start`.

docs/guide/getting-started.rst shows the files of docs/guide/getting_started/
(literalinclude); this test runs them in order in a copy of that directory:
the install (a pip dry run: it resolves the six chia projects from the
repository's paths, none from an index), the head and a worker with token
authentication, then the operations script (chia run with the code shipped by
runtime_env, chia status, the profile summary, chia cancel of a hung run).
Loopback only: the scripts take the test's `ray start` flags (127.0.0.1, free
ports, a private temp dir), `ray` is chia-testing's loopback wrapper, and the
cluster is stopped by the PIDs under its temp dir (never `ray stop`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from chia_testing import free_port
from chia_testing.ray_start import loopback_ray_bin, stop_started_cluster

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide" / "getting_started"
SCRIPT_TIMEOUT_S = 300.0


def run_script(
    name: str, *args: str, cwd: Path, env: dict[str, str], retry: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a guide script; with ``retry``, a node start that missed Ray's fixed startup deadline (load) runs again."""
    while True:
        result = subprocess.run(
            ["bash", name, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S
        )
        if result.returncode == 0 or retry is None or "timed out during startup" not in result.stderr:
            break
        retry()
        retry = None
    assert result.returncode == 0, f"{name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-4000:]}"
    return result


def test_the_getting_started_scripts_run_on_a_token_authenticated_cluster(tmp_path: Path) -> None:
    work = shutil.copytree(GUIDE, tmp_path / "sweep")
    cluster_root = Path(tempfile.mkdtemp(prefix="chia-gs-", dir="/tmp"))  # short: Ray's socket paths live below it
    bin_dir = loopback_ray_bin(tmp_path / "bin").parent

    def stop_head() -> None:
        stop_started_cluster(cluster_root)
        cluster_root.mkdir()

    env = {key: value for key, value in os.environ.items() if not key.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env |= {
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "RAY_AUTH_TOKEN_PATH": str(tmp_path / "auth_token"),
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    address = f"127.0.0.1:{free_port()}"
    node_flags = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        installed = run_script(
            "install.sh",
            "--dry-run",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            cwd=work,
            env={**env, "CHIA_REPO": str(ROOT)},
        )
        (would_install,) = re.findall(r"^Would install (.*)$", installed.stdout, re.MULTILINE)
        assert {name.rsplit("-", 1)[0] for name in would_install.split()} == {
            "chia",
            "chia-bypass-cache",
            "chia-dispatch",
            "chia-ops",
            "chia-placement",
            "chia-tools",
        }

        run_script(
            "start-head.sh",
            *node_flags,
            f"--temp-dir={cluster_root}",
            "--include-dashboard=false",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={free_port()}",  # Ray binds it even without a dashboard; 8265 may be a colleague's
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            cwd=work,
            env={**env, "RAY_PORT": address.rsplit(":", 1)[1]},
            retry=stop_head,
        )
        assert (tmp_path / "auth_token").stat().st_mode & 0o077 == 0  # readable by its owner only
        run_script(
            "start-worker.sh",
            *node_flags,
            f"--dashboard-agent-listen-port={free_port()}",
            cwd=work,
            env={**env, "HEAD_ADDRESS": address, "NUM_CPUS": "1"},
            retry=lambda: None,  # a second worker node, should the first have joined late
        )

        operated = run_script("operate.sh", cwd=work, env={**env, "RAY_ADDRESS": address})
        out = operated.stdout
        assert out.startswith("6 configurations, best sim_c4_k64 (score 500)\nworkers ran the shipped copy: True\n"), (
            out
        )
        assert re.search(r"^sweep: 6/6 done, 0 running, .*ETA 0:00:00$", operated.stderr, re.MULTILINE)
        assert re.search(r"^__main__\.simulate\s+real\s+6\s", out, re.MULTILINE)  # the profile's summary
        assert re.search(
            r"^hang.py ended: RuntimeError: the simulator was killed \(exit code -(15|9)\)$", out, re.MULTILINE
        )
        assert "InvalidAuthToken" not in operated.stderr and "anonymous namespace" not in out
    finally:
        stop_started_cluster(cluster_root)
