"""Attaching every ``chia`` command to the right cluster, with Ray's token authentication (issue 14).

The session cluster (conftest) runs with ``RAY_AUTH_MODE=token``; these tests
run the installed ``chia`` script in subprocesses with the token, without
it, with a wrong one, and without an address (the cluster found on this
machine through ``RAY_TMPDIR``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chia.cli._exit import ExitCode
from chia_testing.ray_start import StartedCluster

CHIA = str(Path(sys.executable).with_name("chia"))

# A line of Ray's C++ core ("[2026-12-02 02:59:09,524 W 1720 1720] gcs_client.cc:210: ...") or its Python logger.
RAY_LOG_LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\d [\d:,]+ [DIWEF] \d+ \d+\]|^\d{4}-\d\d-\d\d [\d:,]+\s+(INFO|WARNING)", re.M
)


def chia(*args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (), stdin: str = "") -> Any:
    """Run ``chia ARGS`` with this process's environment (the token) minus ``unset`` plus ``env``."""
    environment = {k: v for k, v in os.environ.items() if k not in unset and k != "RAY_ADDRESS"}
    environment.update(env or {})
    return subprocess.run(  # the timeout only guards against a hang
        [CHIA, *args], capture_output=True, text=True, timeout=120, env=environment, input=stdin
    )


# One read-only and one changing command per command group that reaches a cluster.
COMMANDS = [
    ["status"],
    ["cancel", "--all", "--yes"],
    ["kv", "list", "--name", "absent"],
    ["cache", "ls"],
    ["profile", "summary"],
]


@pytest.mark.ray_compat
def test_every_command_works_with_the_token(cluster: StartedCluster) -> None:
    result = chia("status", "--address", cluster.address)
    assert result.returncode == 0, result.stderr
    assert "2 node(s) alive" in result.stdout
    assert not RAY_LOG_LINE.search(result.stderr), result.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_wrong_token_is_an_authentication_error(cluster: StartedCluster, command: list[str]) -> None:
    result = chia(*command, "--address", cluster.address, env={"RAY_AUTH_TOKEN": "not-the-token"})
    assert result.returncode == ExitCode.AUTH, result.stderr
    assert f"authentication failed: the Ray cluster at {cluster.address} requires a token" in result.stderr
    assert "sent a wrong token" in result.stderr and "RAY_AUTH_TOKEN" in result.stderr
    assert "ray get-auth-token" in result.stderr
    assert not RAY_LOG_LINE.search(result.stderr) and "InvalidAuthToken" not in result.stderr, result.stderr
    assert "not-the-token" not in result.stderr + result.stdout  # a secret never lands in the output


@pytest.mark.ray_compat
def test_a_missing_token_says_how_to_give_it(cluster: StartedCluster, tmp_path: Path) -> None:
    result = chia(
        "status", "--address", cluster.address, unset=("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"), env={"HOME": str(tmp_path)}
    )
    assert result.returncode == ExitCode.AUTH, result.stderr
    assert "sent no token (RAY_AUTH_MODE is not token)" in result.stderr
    assert "set RAY_AUTH_MODE=token" in result.stderr
    assert not RAY_LOG_LINE.search(result.stderr), result.stderr


def test_token_mode_without_any_token(cluster: StartedCluster, tmp_path: Path) -> None:
    result = chia("status", "--address", cluster.address, unset=("RAY_AUTH_TOKEN",), env={"HOME": str(tmp_path)})
    assert result.returncode == ExitCode.AUTH, result.stderr
    assert "RAY_AUTH_MODE=token but no Ray authentication token was found" in result.stderr
    assert "Traceback" not in result.stderr


def test_chia_run_with_a_wrong_token(cluster: StartedCluster, tmp_path: Path) -> None:
    script = tmp_path / "noop.py"
    script.write_text("raise SystemExit('the script must not run')\n")
    result = chia("run", "--address", cluster.address, str(script), env={"RAY_AUTH_TOKEN": "nope"})
    assert result.returncode == ExitCode.AUTH, result.stderr
    assert "authentication failed" in result.stderr and "must not run" not in result.stderr


def test_read_only_commands_say_which_cluster_they_found(cluster: StartedCluster) -> None:
    result = chia("status", env={"RAY_TMPDIR": str(cluster.tmp_root)})
    assert result.returncode == 0, result.stderr
    found = re.search(r"attached to the cluster at (\S+) \(session (session_\S+)\), the latest", result.stderr)
    assert found is not None, result.stderr
    assert found[1] == cluster.address
    assert (cluster.tmp_root / "ray" / found[2]).is_dir()


@pytest.mark.parametrize(
    "command",
    [["cancel", "--all"], ["kv", "set", "k", "1", "--name", "absent"], ["cache", "evict", "t"], ["cache", "stop"]],
    ids=lambda c: " ".join(c[:2]),
)
def test_changes_never_act_on_a_found_cluster_unasked(cluster: StartedCluster, command: list[str]) -> None:
    result = chia(*command, env={"RAY_TMPDIR": str(cluster.tmp_root)})  # stdin closed: nobody to answer
    assert result.returncode == ExitCode.ERROR, result.stderr
    assert f"on the cluster at {cluster.address} (session session_" in result.stderr  # the question, shown
    assert "was found on this machine, not named; pass --address HOST:PORT or set RAY_ADDRESS" in result.stderr


def test_a_found_cluster_is_accepted_by_yes_or_by_answering(cluster: StartedCluster) -> None:
    env = {"RAY_TMPDIR": str(cluster.tmp_root)}
    answered = chia("cancel", "--all", "--grace", "0", env=env, stdin="y\n")
    assert answered.returncode == 0, answered.stderr
    assert "kill every tracked subprocess on the cluster at" in answered.stderr
    assert answered.stdout.startswith("signalled ")
    scripted = chia("cancel", "--all", "--grace", "0", "--yes", env=env)
    assert scripted.returncode == 0 and "kill every tracked subprocess on" not in scripted.stderr


def test_named_clusters_need_no_question(cluster: StartedCluster) -> None:
    result = chia("cancel", "--all", "--grace", "0", env={"RAY_ADDRESS": cluster.address})
    assert result.returncode == 0, result.stderr
    assert "attached to the cluster" not in result.stderr


def test_no_cluster_found_on_this_machine(tmp_path: Path) -> None:
    result = chia("status", env={"RAY_TMPDIR": str(tmp_path)})
    assert result.returncode == ExitCode.NO_CLUSTER, result.stderr
    assert "no Ray cluster was started on this machine and no --address or RAY_ADDRESS names one" in result.stderr
