"""``chia cancel --all`` kills the subprocess trees of running ChiaFunction tasks."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import ray
from click.testing import CliRunner

from chia.base.ChiaFunction import ChiaFunction
from chia.cli.main import cli
from chia_testing import running, wait_until


@ChiaFunction(num_cpus=0)
def run_sleeper(pid_file: str) -> int:
    child = subprocess.Popen(["sleep", "300"])
    Path(pid_file).write_text(str(child.pid))
    return child.wait()


def test_cancel_all_kills_tracked_subprocesses(cluster: Any, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    ref = run_sleeper.chia_remote(str(pid_file))
    # write_text creates the file before it writes the pid: wait for the pid itself
    wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", message="the task to start its subprocess")
    pid = int(pid_file.read_text())
    assert running(pid)
    result = CliRunner().invoke(cli, ["cancel", "--all", "--grace", "1"])
    assert result.exit_code == 0, result.output
    assert "signalled" in result.stdout and "terminating tracked subprocesses" in result.stderr
    wait_until(lambda: not running(pid), message=f"process {pid} to be gone")
    assert ray.get(ref, timeout=60) != 0  # the task saw its child killed
