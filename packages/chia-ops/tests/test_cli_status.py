"""``chia status`` and how every command reports a missing cluster; ``--help`` everywhere."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chia.cli.main import cli, main
from chia.trace import profiler
from chia_testing import free_port

pytestmark = pytest.mark.usefixtures("no_collector")

RunChia = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.ray_compat
def test_status_lists_nodes_resources_and_actors(cluster: Any, tmp_path: Path) -> None:
    profiler.start_collector(log_dir=tmp_path)
    result = CliRunner().invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    alive = {node["node_id"]: node for node in status["nodes"] if node["alive"]}
    assert set(alive) == {cluster.node_ids["head"], cluster.node_ids["node_b"]}
    assert alive[cluster.node_ids["head"]]["head"] and not alive[cluster.node_ids["node_b"]]["head"]
    assert status["resources"]["total"]["CPU"] == 3.0
    assert profiler.COLLECTOR_NAME in {actor["name"] for actor in status["actors"]}
    assert status["profile_collector"]["log_path"].startswith(str(tmp_path))
    text = CliRunner().invoke(cli, ["status"]).stdout
    assert "2 node(s) alive, 0 dead" in text and f"{profiler.COLLECTOR_NAME}  (namespace" in text


def test_status_from_another_process(cluster: Any, run_chia: RunChia) -> None:
    result = run_chia("status", "--address", cluster.address)
    assert result.returncode == 0, result.stderr
    assert "2 node(s) alive" in result.stdout


def test_no_cluster_is_a_clear_error(run_chia: RunChia) -> None:
    port = free_port()
    result = run_chia("status", "--address", f"127.0.0.1:{port}")
    assert result.returncode == 3  # ExitCode.NO_CLUSTER, the same for every command
    assert f"Error: no Ray cluster at 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["status"],
        ["kv"],
        ["kv", "get"],
        ["kv", "set"],
        ["kv", "list"],
        ["kv", "delete"],
        ["cache"],
        ["cache", "ls"],
        ["cache", "stats"],
        ["cache", "evict"],
        ["cache", "clear"],
        ["cache", "stop"],
        ["bypass", "validate"],
        ["profile", "export"],
        ["profile", "summary"],
        ["cancel"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and result.stdout.startswith("Usage: ")


def test_main_returns_exit_codes() -> None:
    assert main(["--help"]) == 0
    assert main(["cancel"]) == 2  # usage: nothing to cancel
    assert main(["no-such-command"]) == 2


def test_the_former_module_path_still_serves_the_command_line() -> None:
    from chia.trace import cli as former  # the path the 0.1 docs showed

    assert former.cli is cli and former.main is main
