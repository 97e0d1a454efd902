"""``chia profile export|summary`` from a log directory and from the live collector."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import ray
from click.testing import CliRunner

from chia.base.ChiaFunction import ChiaFunction, get
from chia.cli.main import cli
from chia.trace import profiler

pytestmark = pytest.mark.usefixtures("no_collector")


@ChiaFunction(num_cpus=0)
def square(x: int) -> int:
    return x * x


def test_live_collector_then_log_directory(tmp_path: Path, wait_for: Callable[..., None]) -> None:
    runner = CliRunner()
    collector = profiler.start_collector(log_dir=tmp_path, namespace="chia-ops-cli")
    assert get([square.chia_remote(i) for i in range(4)]) == [0, 1, 4, 9]
    # 4 submissions from here, 4 runs from workers (their flushers ship every half second)
    wait_for(lambda: ray.get(collector.info.remote())["records"] >= 8, what="the rows of 4 calls")

    live = runner.invoke(cli, ["profile", "summary", "--namespace", "chia-ops-cli"])
    assert live.exit_code == 0, live.output
    assert "asking the running collector" in live.stderr
    header, row = live.stdout.splitlines()[:2]
    assert header.split()[:2] == ["function", "calls"] and row.split()[:2] == [f"{__name__}.square", "4"]

    trace_file = tmp_path / "trace.json"
    exported = runner.invoke(cli, ["profile", "export", "--format", "chrome", "-o", str(trace_file)])
    assert exported.exit_code == 0, exported.output  # found without --namespace: the only collector
    slices = [e for e in json.loads(trace_file.read_text())["traceEvents"] if e["ph"] == "X"]
    assert len(slices) == 4

    profiler.stop_collector()
    offline = runner.invoke(cli, ["profile", "export", str(tmp_path), "--format", "json"])
    assert offline.exit_code == 0, offline.output
    document = json.loads(offline.stdout)
    assert [row["count"] for row in document["summary"]] == [4]
    summary = runner.invoke(cli, ["profile", "summary", str(tmp_path), "--json"])
    assert json.loads(summary.stdout)[0]["function"] == f"{__name__}.square"


def test_errors_exit_non_zero_with_a_reason(tmp_path: Path) -> None:
    runner = CliRunner()
    no_collector = runner.invoke(cli, ["profile", "summary"])
    assert no_collector.exit_code == 5  # ExitCode.NOT_FOUND, as for every command
    assert "no profile collector actor 'chia_profile_collector' is running in any Ray namespace" in no_collector.stderr
    wrong_namespace = runner.invoke(cli, ["profile", "export", "--namespace", "nowhere"])
    assert wrong_namespace.exit_code == 5 and "in Ray namespace 'nowhere'" in wrong_namespace.stderr
    empty = runner.invoke(cli, ["profile", "summary", str(tmp_path)])
    assert empty.exit_code == 1 and "no profile logs" in empty.stderr
    bad = tmp_path / "chia-profile-bad.jsonl"
    bad.write_text("garbage\n")
    broken = runner.invoke(cli, ["profile", "summary", str(bad)])
    assert broken.exit_code == 1 and "chia-profile-bad.jsonl:1: not a JSON line" in broken.stderr
    unknown_format = runner.invoke(cli, ["profile", "export", str(tmp_path), "--format", "svg"])
    assert unknown_format.exit_code == 2 and "'svg' is not one of 'chrome', 'json'" in unknown_format.stderr
