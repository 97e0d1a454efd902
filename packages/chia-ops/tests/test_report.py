"""The HTML report and the run comparison, from logs written here (no cluster, no browser).

The browser test (tests/test_report_browser.py at the repository root) opens
a report of a real profiled run in Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from chia.trace import _wire, compare, export, report
from chia.trace._logfile import LogWriter
from chia.trace._report.graph import critical_path

HEAD = "a" * 56
DRIVER = {"node": HEAD, "worker": "d" * 56, "pid": 10, "driver": True}
WORKER = {"node": HEAD, "worker": "1" * 56, "pid": 11, "driver": False}


def write(directory: Path, rows: list[tuple[tuple[Any, ...], dict[str, Any]]], origin: float = 100.0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "chia-profile-r.jsonl"
    writer = LogWriter(
        path, {"session": "r", "ts": origin, "head_node": HEAD, "host": "lab-7", "ray": "2.x", "nodes": 1}
    )
    for row, process in rows:
        writer.write(process, [row])
    writer.close()
    return path


def ran(
    call_id: int, function: str, start: float, end: float, *, tag: str | None = None, error: str | None = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A run row of a remote call (task ``t<call_id>``) from the worker."""
    row = (_wire.RUN, call_id, function, tag, start, end, f"t{call_id}", True, False, None, False, error, None)
    return row, WORKER


def chain_rows(scale: float = 1.0) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """A prep call (1 s) feeds two sims (2 s, 0.5 s); both feed merge (0.25 s); a lone side call (3 s) feeds nothing."""
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    spec = [
        (1, "m.prep", 100.0, 1.0, []),
        (2, "m.sim", 101.5, 2.0, ["t1"]),
        (3, "m.sim", 101.5, 0.5, ["t1"]),
        (4, "m.merge", 104.0, 0.25, ["t2", "t3"]),
        (5, "m.side", 100.0, 3.0, []),
    ]
    for call_id, function, start, took, deps in spec:
        task = f"t{call_id}"
        rows.append(
            ((_wire.SUBMIT, call_id, function, None, start - 0.1, {"CPU": 1.0}, deps, None, task, None), DRIVER)
        )
        rows.append(ran(call_id, function, start, start + took * scale))
    return rows


def test_critical_path_follows_the_chain_with_most_run_time(tmp_path: Path) -> None:
    path = critical_path(export.load_profile(write(tmp_path, chain_rows())))
    assert [call.function for call in path.calls] == ["m.prep", "m.sim", "m.merge"]
    assert path.run_time == pytest.approx(3.25)  # prep 1 + the slow sim 2 + merge 0.25 beats the lone 3 s call
    assert path.hand_overs() == {("m.prep", "m.sim"), ("m.sim", "m.merge")}


def test_the_page_is_self_contained_and_names_what_ran(tmp_path: Path) -> None:
    html = report.render_report(write(tmp_path, chain_rows()))
    assert "<script src" not in html and "<link" not in html and "url(http" not in html
    assert re.findall(r'(?:src|href)="(?!#)', html) == []  # no resource is referenced, only in-page anchors
    assert "default-src 'none'" in html
    assert len(re.findall(r'<g class="fn[ "]', html)) == 4
    assert len(re.findall(r'<g class="fn critical"', html)) == 3
    assert len(re.findall(r'<rect class="bar [^>]*data-calls="1"', html)) == 5
    assert 'data-fact="host">lab-7<' in html and 'data-fact="Ray">2.x<' in html
    assert 'data-col="real.calls">2<' in html  # m.sim ran twice


def test_user_text_is_escaped(tmp_path: Path) -> None:
    rows = [
        ran(1, "m.<b>bold</b>", 1.0, 2.0, tag="<script>alert(1)</script>"),
        ((_wire.METRIC, 'cost"><img', 1.5, 3.0, None, None), DRIVER),
    ]
    html = report.render_report(write(tmp_path, rows, origin=0.0))
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold" not in html and '"><img' not in html


def test_tiny_calls_share_bars_that_count_them(tmp_path: Path) -> None:
    """10,000 back-to-back 1 ms calls over 10 s: far fewer bars than calls, and every call counted once."""
    rows = [
        ran(index, "m.even" if index % 2 == 0 else "m.odd", 10.0 + index * 1e-3, 10.0009 + index * 1e-3)
        for index in range(10_000)
    ]
    rows.append(ran(99_999, "m.odd", 10.0, 20.0, error="ValueError"))
    html = report.render_report(write(tmp_path, rows, origin=10.0))
    counts = [int(count) for count in re.findall(r'<rect class="bar [^>]*data-calls="(\d+)"', html)]
    assert sum(counts) == 10_001 and len(counts) < 1100
    failed = re.findall(r'<rect class="bar real failed"[^>]*data-calls="(\d+)"', html)
    assert failed == ["1"]  # the long failing call keeps a bar of its own


def test_write_report_creates_parents_and_compares_a_baseline(tmp_path: Path) -> None:
    baseline = write(tmp_path / "a", chain_rows())
    slower = write(tmp_path / "b", chain_rows(scale=2.0))
    target = report.write_report(slower, tmp_path / "out" / "deep" / "report.html", baseline=baseline, title="B vs A")
    html = target.read_text()
    assert "<title>B vs A</title>" in html and 'id="comparison"' in html
    assert re.search(r'data-function="m.sim" data-mode="real">.*?data-col="p50_ratio">2.00<', html)


def test_comparison_rows_ratios_and_units(tmp_path: Path) -> None:
    a = export.load_profile(write(tmp_path / "a", chain_rows()))
    b = export.load_profile(write(tmp_path / "b", chain_rows(scale=0.5)))
    rows = compare.compare(a, b)
    assert [(row.function, row.mode) for row in rows] == [
        ("m.side", "real"),
        ("m.sim", "real"),
        ("m.prep", "real"),
        ("m.merge", "real"),
    ]
    sim = rows[1]
    assert (sim.a.count, sim.b.count) == (2, 2)
    assert sim.p50_ratio == pytest.approx(0.5) and sim.p95_ratio == pytest.approx(0.5)
    assert sim.to_json() == {
        "function": "m.sim",
        "mode": "real",
        "calls_a": 2,
        "calls_b": 2,
        "p50_a_ms": 500.0,
        "p50_b_ms": 250.0,
        "p50_ratio": 0.5,
        "p95_a_ms": 2000.0,
        "p95_b_ms": 1000.0,
        "p95_ratio": 0.5,
    }
    assert compare.comparison_document(rows)[1] == sim.to_json()
    table = compare.format_comparison(rows).splitlines()
    assert (
        " ".join(table[0].split())
        == "function mode calls A calls B p50 A ms p50 B ms p50 B/A p95 A ms p95 B ms p95 B/A"
    )
    assert table[2].split() == ["m.sim", "real", "2", "2", "500.00", "250.00", "0.50", "2000.00", "1000.00", "0.50"]
    only_b = compare.compare(export.load_profile(write(tmp_path / "c", chain_rows()[:2])), b)
    side = next(row for row in only_b if row.function == "m.side")
    assert (side.a.count, side.p50_ratio, side.to_json()["p50_a_ms"]) == (0, None, None)


def test_calls_below_the_clock_resolution_compare_as_equal() -> None:
    instant = export.CallStats(count=4, total=0.0, p50=0.0, p95=0.0)
    same = compare.FunctionComparison("m.tiny", "real", instant, instant)
    assert (same.p50_ratio, same.p95_ratio) == (1.0, 1.0)
    slower = compare.FunctionComparison(
        "m.tiny", "real", instant, export.CallStats(count=4, total=0.4, p50=0.1, p95=0.1)
    )
    assert slower.p50_ratio is None  # no finite ratio over zero
    assert compare.FunctionComparison("m.none", "real", export.CallStats(), instant).p50_ratio is None
