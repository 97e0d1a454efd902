"""Reading profile logs back (no cluster): call joins, percentiles, Chrome trace, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chia.trace import _wire, export

HEAD, OTHER = "a" * 56, "b" * 56
DRIVER = {"node": HEAD, "worker": "d" * 56, "pid": 10, "driver": True}
WORKER_1 = {"node": HEAD, "worker": "1" * 56, "pid": 11, "driver": False}
WORKER_2 = {"node": OTHER, "worker": "2" * 56, "pid": 12, "driver": False}


def submit(
    call_id: int, fn: str, ts: float, task: str | None, deps: list[str] | None = None, caller: int | None = None
) -> tuple[Any, ...]:
    return (_wire.SUBMIT, call_id, fn, None, ts, {"CPU": 1.0}, deps, caller, task)


def run(
    call_id: int,
    fn: str,
    start: float,
    end: float,
    task: str | None,
    *,
    error: str | None = None,
    bypassed: bool = False,
    remote: bool = True,
) -> tuple[Any, ...]:
    provider = "tests.replay" if bypassed else None
    return (_wire.RUN, call_id, fn, "t0", start, end, task, remote, bypassed, provider, False, error, None)


def write_log(path: Path, rows: list[tuple[tuple[Any, ...], dict[str, Any]]], session: str = "s1") -> Path:
    lines = [json.dumps({"kind": "session", "session": session, "ts": 0.0, "head_node": HEAD})]
    lines += [json.dumps(_wire.record(row, process)) for row, process in rows]
    log = path / f"chia-profile-{session}.jsonl"
    log.write_text("\n".join(lines) + "\n")
    return log


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """Ten calls of ``work`` (10..100 ms, on two nodes), one ``merge`` fed by two of them.

    As on a cluster, workers number their run rows themselves (100 + i): rows
    join by Ray task id. The bypassed ``merge`` shipped its call id (same id).
    """
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for index in range(10):
        worker = WORKER_1 if index % 2 == 0 else WORKER_2
        start = 100.0 + index
        rows.append((submit(index, "m.work", start - 0.5, f"task{index}"), DRIVER))
        rows.append((run(100 + index, "m.work", start, start + (index + 1) / 100, f"task{index}"), worker))
    rows.append((submit(50, "m.merge", 120.0, "task50", deps=["task0", "task1", "not-ours"]), DRIVER))
    rows.append((run(50, "m.merge", 121.0, 121.5, "task50", error="KeyError", bypassed=True), WORKER_2))
    rows.append((submit(60, "m.lost", 130.0, "task60"), DRIVER))
    rows.append(((_wire.EVENT, "mark", 121.2, {"epoch": 3}, 50), WORKER_2))
    return write_log(tmp_path, rows)


def test_submit_and_run_rows_join_into_call_records(log: Path) -> None:
    data = export.load_profile(log)
    assert len(data.calls) == 12 and data.sessions == ("s1",) and data.head_nodes == {HEAD}
    merge = next(call for call in data.calls if call.function == "m.merge")
    assert merge.deps == (100, 101)  # producers outside the profile are dropped
    work = sorted((call for call in data.calls if call.function == "m.work"), key=lambda call: call.call_id)
    assert [call.call_id for call in work] == list(range(100, 110))
    assert all(call.submitted is not None and call.started is not None for call in work)
    assert work[3].task_id == "task3" and work[3].queue_time == pytest.approx(0.5)
    assert merge.queue_time == pytest.approx(1.0) and merge.duration == pytest.approx(0.5)
    assert (merge.bypassed, merge.provider, merge.error, merge.node) == (True, "tests.replay", "KeyError", OTHER)
    assert merge.submit_worker == DRIVER["worker"] and DRIVER["worker"] in data.drivers
    lost = next(call for call in data.calls if call.function == "m.lost")
    assert lost.started is None and lost.duration is None and lost.queue_time is None
    assert (lost.call_id, lost.task_id) == (60, "task60")


def test_rows_without_a_submitted_task_and_older_logs(tmp_path: Path) -> None:
    """A dispatch replaced without a task stands alone; submit rows without a task field join by call id."""
    rows = [
        (submit(1, "m.replaced", 10.0, None), DRIVER),
        (run(2, "m.other", 10.5, 11.0, "task2"), WORKER_1),
    ]
    log = write_log(tmp_path, rows)
    old_submit = {
        "kind": "submit",
        "id": 7,
        "fn": "m.old",
        "tag": None,
        "ts": 20.0,
        "resources": {},
        "deps": [],
        "caller": None,
        **DRIVER,
    }  # written before submit rows carried the task id
    old_run = _wire.record(run(7, "m.old", 20.25, 21.0, "task7"), WORKER_2)
    with log.open("a") as out:
        out.write(json.dumps(old_submit) + "\n" + json.dumps(old_run) + "\n")
    calls = {call.function: call for call in export.load_profile(log).calls}
    assert len(calls) == 3
    replaced = calls["m.replaced"]
    assert (replaced.call_id, replaced.submitted, replaced.started, replaced.task_id) == (1, 10.0, None, None)
    assert calls["m.other"].submitted is None
    old = calls["m.old"]
    assert (old.call_id, old.node) == (7, OTHER) and old.queue_time == pytest.approx(0.25)


def test_summary_percentiles_queue_time_and_nodes(log: Path) -> None:
    rows = {row.function: row for row in export.summarize(export.load_profile(log))}
    work = rows["m.work"]
    assert work.count == 10 and work.total == pytest.approx(0.55)
    assert work.p50 == pytest.approx(0.05) and work.p95 == pytest.approx(0.10)
    assert work.queue_p50 == pytest.approx(0.5) and work.nodes == tuple(sorted((HEAD, OTHER)))
    assert (rows["m.merge"].errors, rows["m.merge"].bypassed) == (1, 1)
    assert (rows["m.lost"].count, rows["m.lost"].unfinished, rows["m.lost"].queue_p50) == (0, 1, None)
    assert list(rows) == ["m.work", "m.merge", "m.lost"]  # slowest total first
    table = [line.split() for line in export.format_summary(list(rows.values())).splitlines()]
    assert " ".join(table[0]) == "function mode calls total ms p50 ms p95 ms queue p50 ms failed cancelled nodes"
    assert table[1] == ["m.work", "real", "10", "550.0", "50.00", "100.00", "500.00", "0", "0", "2"]
    assert table[2] == ["m.merge", "replayed", "1", "500.0", "500.00", "500.00", "1000.00", "1", "0", "1"]
    assert table[3] == ["m.lost", "unfinished", "1", "-", "-", "-", "-", "-", "-", "0"]


def test_real_replayed_and_cached_calls_are_kept_apart(tmp_path: Path) -> None:
    """One function's real, cache-writing and replayed calls: separate percentiles, failures and cancels."""
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for index in range(4):  # real: 100, 200, 300, 400 ms; the last one cancelled
        error = "TaskCancelledError" if index == 3 else None
        rows.append((run(index, "m.sim", 10.0, 10.0 + (index + 1) / 10, f"r{index}", error=error), WORKER_1))
    for index in range(2):  # replayed: 1 and 2 ms, one failed
        error = "KeyError" if index else None
        rows.append(
            (
                run(10 + index, "m.sim", 20.0, 20.0 + (index + 1) / 1000, f"b{index}", bypassed=True, error=error),
                WORKER_2,
            )
        )
    cached = (_wire.RUN, 20, "m.sim", "t0", 30.0, 30.05, "c0", True, False, None, True, None, None)
    rows.append((cached, WORKER_2))
    (summary,) = export.summarize(export.load_profile(write_log(tmp_path, rows)))
    assert (summary.count, summary.errors, summary.cancelled, summary.bypassed) == (7, 2, 1, 2)
    real, cached_stats, replayed = summary.real, summary.cached, summary.replayed
    assert (real.count, real.failed, real.cancelled) == (4, 0, 1)
    assert real.p50 == pytest.approx(0.2) and real.p95 == pytest.approx(0.4)
    assert (replayed.count, replayed.failed) == (2, 1) and replayed.p50 == pytest.approx(0.001)
    assert cached_stats.count == 1 and cached_stats.p50 == pytest.approx(0.05)
    document = summary.to_json()
    assert document["real"] == {
        "calls": 4,
        "total_ms": 1000.0,
        "p50_ms": 200.0,
        "p95_ms": 400.0,
        "queue_p50_ms": None,
        "failed": 0,
        "cancelled": 1,
    }
    assert document["replayed"]["p95_ms"] == 2.0 and document["calls"] == 7
    assert export.FunctionSummary.from_json(json.loads(json.dumps(document))).to_json() == document
    modes = [line.split()[1] for line in export.format_summary([summary]).splitlines()[1:]]
    assert modes == ["real", "cached", "replayed"]


def test_chrome_trace_tracks_flows_and_instants(log: Path) -> None:
    trace = export.chrome_trace(export.load_profile(log))
    events = trace["traceEvents"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert sorted(names.values()) == ["worker 11111111 (pid 11)", "worker 22222222 (pid 12)"]
    assert [e["args"]["name"] for e in events if e["name"] == "process_name"] == [
        f"node {HEAD[:12]} (head)",
        f"node {OTHER[:12]}",
    ]
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == 11 and slices[0]["ts"] == 0.0 and slices[0]["dur"] == pytest.approx(10_000)
    merge = next(e for e in slices if e["args"]["function"] == "m.merge")
    assert merge["cat"] == "bypassed" and merge["name"] == "merge [t0]" and merge["args"]["error"] == "KeyError"
    flows = [e for e in events if e["ph"] in "sf"]
    assert sorted((e["ph"], e["id"]) for e in flows) == [("f", 1), ("f", 2), ("s", 1), ("s", 2)]
    for flow in flows:
        if flow["ph"] == "f":
            assert (flow["pid"], flow["tid"], flow["ts"]) == (merge["pid"], merge["tid"], merge["ts"])
    (mark,) = [e for e in events if e["ph"] == "i"]
    assert mark["args"] == {"epoch": 3, "call_id": 50} and (mark["pid"], mark["tid"]) == (merge["pid"], merge["tid"])
    json.dumps(trace)  # serializable as is


def test_flow_arrows_leave_the_producer_and_enter_the_consumer_once_per_producer(tmp_path: Path) -> None:
    """A consumer given two refs of one producer and one of another: two arrows, each bound inside its slices."""
    rows = [
        (run(1, "m.a", 10.0, 11.0, "ta"), WORKER_1),
        (run(2, "m.b", 10.5, 10.75, "tb"), WORKER_2),
        (submit(3, "m.c", 9.0, "tc", deps=["ta", "ta", "tb"]), DRIVER),
        (run(3, "m.c", 12.0, 13.0, "tc"), WORKER_2),
    ]
    events = export.chrome_trace(export.load_profile(write_log(tmp_path, rows)))["traceEvents"]
    slices = {e["args"]["function"]: e for e in events if e["ph"] == "X"}
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    finishes = {e["id"]: e for e in events if e["ph"] == "f"}
    assert len(starts) == len(finishes) == 2 and starts.keys() == finishes.keys()
    producers = []
    for flow_id, start in starts.items():
        producer = next(
            s
            for s in slices.values()
            if (s["pid"], s["tid"]) == (start["pid"], start["tid"]) and s["ts"] <= start["ts"] < s["ts"] + s["dur"]
        )
        producers.append(producer["args"]["function"])
        finish, consumer = finishes[flow_id], slices["m.c"]
        assert (finish["pid"], finish["tid"], finish["ts"], finish["bp"]) == (
            consumer["pid"],
            consumer["tid"],
            consumer["ts"],
            "e",
        )
        assert start["ts"] < finish["ts"]
    assert sorted(producers) == ["m.a", "m.b"]


def test_json_document_and_render(log: Path) -> None:
    data = export.load_profile(log)
    document = export.render(data, "json")
    assert document == export.profile_document(data)
    assert {"calls", "events", "metrics", "summary", "sessions", "head_nodes", "dropped_rows", "facts"} == set(document)
    assert json.loads(json.dumps(document))["calls"][0]["deps"] == []
    assert document["facts"] == [
        {
            "session": "s1",
            "started": 0.0,
            "head_node": HEAD,
            "host": None,
            "ray_version": None,
            "versions": {},
            "nodes": None,
            "resources": {},
        }
    ]  # a log of the first format has no facts beyond its header
    work = next(row for row in document["summary"] if row["function"] == "m.work")
    assert (work["calls"], work["total_ms"], work["p50_ms"], work["queue_p50_ms"]) == (10, 550.0, 50.0, 500.0)
    with pytest.raises(ValueError, match=r"unknown profile export format 'svg'; expected one of \('chrome', 'json'\)"):
        export.render(data, "svg")


def test_a_directory_reads_every_session_log(log: Path) -> None:
    write_log(log.parent, [(run(99, "m.other", 1.0, 2.0, "t99"), WORKER_1)], session="s2")
    data = export.load_profile(log.parent)
    assert data.sessions == ("s1", "s2") and len(data.calls) == 13


def test_missing_and_malformed_logs_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no profile logs"):
        export.load_profile(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.load_profile(tmp_path / "nope.jsonl")
    bad = tmp_path / "chia-profile-bad.jsonl"
    bad.write_text('{"kind": "session", "session": "x", "ts": 0, "head_node": "h"}\nnot json\n')
    with pytest.raises(ValueError, match=r"chia-profile-bad.jsonl:2: not a JSON line"):
        export.load_profile(bad)
    bad.write_text('{"kind": "surprise"}\n')
    with pytest.raises(ValueError, match=r":1: unknown record kind 'surprise'"):
        export.load_profile(bad)


def test_unknown_wire_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile row kind 7"):
        _wire.record((7,), {})
