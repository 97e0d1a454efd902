"""``chia profile export|summary`` from a log directory and from the live collector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray
from click.testing import CliRunner

from chia.base.ChiaFunction import ChiaFunction, get
from chia.cli.main import cli
from chia.trace import profiler
from chia_testing import wait_until

pytestmark = pytest.mark.usefixtures("no_collector")


@ChiaFunction(num_cpus=0)
def square(x: int) -> int:
    return x * x


def test_live_collector_then_log_directory(tmp_path: Path) -> None:
    runner = CliRunner()
    collector = profiler.start_collector(log_dir=tmp_path, namespace="chia-ops-cli")
    assert get([square.chia_remote(i) for i in range(4)]) == [0, 1, 4, 9]
    # 4 submissions from here, 4 runs from workers (their flushers ship every half second)
    wait_until(lambda: ray.get(collector.info.remote())["records"] >= 8, message="the rows of 4 calls")

    live = runner.invoke(cli, ["profile", "summary", "--namespace", "chia-ops-cli"])
    assert live.exit_code == 0, live.output
    assert "asking the running collector" in live.stderr
    header, row = live.stdout.splitlines()[:2]
    assert header.split()[:3] == ["function", "mode", "calls"] and row.split()[:3] == [
        f"{__name__}.square",
        "real",
        "4",
    ]

    trace_file = tmp_path / "trace.json"
    exported = runner.invoke(cli, ["profile", "export", "--format", "chrome", "-o", str(trace_file)])
    assert exported.exit_code == 0, exported.output  # found without --namespace: the only collector
    slices = [e for e in json.loads(trace_file.read_text())["traceEvents"] if e["ph"] == "X"]
    assert len(slices) == 4

    profiler.stop_collector()
    offline = runner.invoke(cli, ["profile", "export", str(tmp_path), "--format", "json"])
    assert offline.exit_code == 0, offline.output
    document = json.loads(offline.stdout)
    assert [row["calls"] for row in document["summary"]] == [4]
    summary = runner.invoke(cli, ["profile", "summary", str(tmp_path), "--json"])
    (row,) = json.loads(summary.stdout)
    assert (row["function"], row["real"]["calls"], row["replayed"]["calls"]) == (f"{__name__}.square", 4, 0)
    table = runner.invoke(cli, ["profile", "summary", str(tmp_path)]).stdout.splitlines()
    p50_ms = float(table[1].split()[4])  # one unit across the table and --json: milliseconds, named so
    assert "p50 ms" in table[0] and p50_ms == pytest.approx(row["p50_ms"], abs=0.01)

    report = runner.invoke(
        cli, ["profile", "report", str(tmp_path), "-o", str(tmp_path / "r.html"), "--baseline", str(tmp_path)]
    )
    assert report.exit_code == 0, report.output
    assert report.stdout.strip() == str(tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert html.count('<g class="fn') == 1 and 'id="comparison"' in html

    compared = runner.invoke(cli, ["profile", "compare", str(tmp_path), str(tmp_path)])
    assert compared.exit_code == 0, compared.output
    header, line = compared.stdout.splitlines()[:2]
    assert "p50 A ms" in header and line.split()[:4] == [f"{__name__}.square", "real", "4", "4"]
    as_json = json.loads(runner.invoke(cli, ["profile", "compare", str(tmp_path), str(tmp_path), "--json"]).stdout)
    assert [(row["calls_a"], row["calls_b"], row["p50_ratio"]) for row in as_json] == [(4, 4, 1.0)]


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
    missing = runner.invoke(cli, ["profile", "compare", str(tmp_path), str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    no_logs = runner.invoke(cli, ["profile", "report", str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")])
    assert no_logs.exit_code == 1 and "no profile logs" in no_logs.stderr
    unknown_format = runner.invoke(cli, ["profile", "export", str(tmp_path), "--format", "svg"])
    assert unknown_format.exit_code == 2 and "'svg' is not one of 'chrome', 'json'" in unknown_format.stderr
