"""The README's demo flow runs end to end (short configuration) and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_flow_runs_end_to_end(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "dse_demo.py"), "--short", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    for expected in (
        "two simulator nodes",
        "sweep of 6 configurations",
        "replayed from the cache",
        "x faster",
        "assistant calls sim_shell_run_command(",
        "agent: The best design's log ends with: cost",
        "after chia_cancel: process tree gone",
        "Chrome trace:",
        "HTML report:",
    ):
        assert expected in out, f"{expected!r} missing from the demo's output:\n{out}"
    assert (tmp_path / "profile" / "trace.json").stat().st_size > 0
    report = (tmp_path / "profile" / "report.html").read_text()
    assert f"HTML report: {tmp_path / 'profile' / 'report.html'}" in out
    assert 'data-function="__main__.simulate"' in report and 'data-metric="best_cost"' in report
    assert "__main__.simulate" in out  # the summary table names the sweep's function
