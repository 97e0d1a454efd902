"""The compact on-disk log (format 2): what the writer writes reads back as what was recorded."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest

from chia.trace import _logfile, _wire, export

HEAD = "a" * 56
DRIVER: dict[str, Any] = {"node": HEAD, "worker": "d" * 56, "pid": 10, "driver": True}
WORKER: dict[str, Any] = {"node": "b" * 56, "worker": "1" * 56, "pid": 11, "driver": False}
T0 = 1_800_000_000.25
DRIVER_IDS = 0x12345 << 23  # call ids as processes number them: a random prefix, then a counter
WORKER_IDS = 0xABCDE << 23
JOB = "ffffffffffffffffffffffff01000000"


def task(index: int) -> str:
    return f"{index:016x}{JOB}"


def rows() -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """A submission, its run, a dependent call, a local call, an event, a metric, a replaced dispatch."""
    first, second = DRIVER_IDS + 1, DRIVER_IDS + 2
    return [
        ((_wire.SUBMIT, first, "m.build", "b0", T0 + 0.001, {"CPU": 1.0}, None, None, task(1), "str[5]"), DRIVER),
        ((_wire.SUBMIT, second, "m.sim", None, T0 + 0.002, {"CPU": 1.0}, [task(1)], None, task(2), "ref, x=3"), DRIVER),
        (
            (_wire.RUN, WORKER_IDS, "m.build", "b0", T0 + 0.5, T0 + 1.25, task(1), True, False, None, True, None, None),
            WORKER,
        ),
        (
            (
                _wire.RUN,
                second,
                "m.sim",
                None,
                T0 + 1.5,
                T0 + 1.5004,
                task(2),
                True,
                True,
                "m.replay",
                False,
                "KeyError",
                None,
            ),
            WORKER,
        ),
        (
            (
                _wire.RUN,
                WORKER_IDS + 1,
                "m.local",
                None,
                T0 + 0.7,
                T0 + 0.8,
                None,
                False,
                False,
                None,
                False,
                None,
                WORKER_IDS,
                "4",
            ),
            WORKER,
        ),
        ((_wire.EVENT, "mark", T0 + 0.75, {"epoch": 3}, WORKER_IDS), WORKER),
        ((_wire.EVENT, "bare", T0 + 0.76, {}, None), DRIVER),
        ((_wire.METRIC, "best_cost", T0 + 2.0, 41.5, 3, None), DRIVER),
        ((_wire.METRIC, "inner", T0 + 0.9, 0.0, None, WORKER_IDS), WORKER),
        ((_wire.SUBMIT, DRIVER_IDS + 3, "m.never", "t", T0 + 3.0, {}, None, None, None, None), DRIVER),
    ]


def write_compact(directory: Path, batches: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> Path:
    path = directory / "chia-profile-c1.jsonl"
    writer = _logfile.LogWriter(path, {"session": "c1", "ts": T0, "head_node": HEAD, "host": "h", "nodes": 2})
    for row, process in batches:
        writer.write(process, [row])
    writer.write(WORKER, [], dropped=5)
    writer.close()
    assert writer.closed
    return path


def assert_same_record(read: dict[str, Any], expected: dict[str, Any]) -> None:
    assert read.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float) and key in ("ts", "start", "end"):
            assert read[key] == pytest.approx(value, abs=1e-6), key
        else:
            assert read[key] == value, key


def test_every_row_reads_back_as_its_verbose_record(tmp_path: Path) -> None:
    recorded = rows()
    records = list(_logfile.read_records(write_compact(tmp_path, recorded)))
    header, *body, dropped = records
    assert header["format"] == 2 and header["session"] == "c1" and header["host"] == "h"
    assert len(body) == len(recorded)
    for read, (row, process) in zip(body, recorded, strict=True):
        assert_same_record(read, _wire.record(row, process))
    assert dropped["kind"] == "dropped" and dropped["count"] == 5 and dropped["worker"] == WORKER["worker"]


def test_strings_processes_and_ids_are_written_once(tmp_path: Path) -> None:
    log = write_compact(tmp_path, rows() * 3)
    text = "\n".join(log.read_text().splitlines()[:-1])  # the last line, a "dropped" record, names its process
    assert text.count('"m.build"') == 1 and text.count(HEAD) == 2  # the header names the head too
    assert text.count(WORKER["worker"]) == 1 and text.count(JOB) == 1
    data_rows = [json.loads(line) for line in text.splitlines()[1:] if line[1:2].isdigit()]
    assert len(data_rows) == 30
    assert max(len(json.dumps(row, separators=(",", ":"))) for row in data_rows) < 100


def test_values_past_the_table_bound_are_written_inline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_logfile, "MAX_TABLE_VALUES", 2)
    recorded = rows()
    records = list(_logfile.read_records(write_compact(tmp_path, recorded)))[1:-1]
    for read, (row, process) in zip(records, recorded, strict=True):
        assert_same_record(read, _wire.record(row, process))


def test_a_compact_log_loads_as_the_same_profile_as_a_verbose_one(tmp_path: Path) -> None:
    recorded = rows()
    (tmp_path / "compact").mkdir()
    compact = export.load_profile(write_compact(tmp_path / "compact", recorded))
    verbose_log = tmp_path / "chia-profile-v1.jsonl"
    lines = [json.dumps({"kind": "session", "session": "v1", "ts": T0, "head_node": HEAD})]
    lines += [json.dumps(_wire.record(row, process)) for row, process in recorded]
    verbose_log.write_text("\n".join(lines) + "\n")
    verbose = export.load_profile(verbose_log)
    assert len(compact.calls) == len(verbose.calls) == 4
    for left, right in zip(compact.calls, verbose.calls, strict=True):
        assert (left.call_id, left.function, left.deps, left.args, left.mode, left.status, left.caller) == (
            right.call_id,
            right.function,
            right.deps,
            right.args,
            right.mode,
            right.status,
            right.caller,
        )
        if right.duration is None:
            assert left.duration is None
        else:
            assert left.duration == pytest.approx(right.duration, abs=2e-6)
    assert [(p.name, p.value, p.step) for p in compact.metrics] == [("inner", 0.0, None), ("best_cost", 41.5, 3)]
    assert compact.metrics[0].call_id == WORKER_IDS and compact.dropped == 5
    (facts,) = compact.facts
    assert (facts.session, facts.host, facts.nodes, facts.started) == ("c1", "h", 2, T0)
    sim = next(call for call in compact.calls if call.function == "m.sim")
    assert (sim.mode, sim.status, sim.provider, sim.args) == ("replayed", "failed", "m.replay", "ref, x=3")
    build = next(call for call in compact.calls if call.function == "m.build")
    assert build.mode == "cached" and sim.deps == (build.call_id,) and build.call_id == WORKER_IDS


def test_malformed_compact_logs_are_named(tmp_path: Path) -> None:
    log = tmp_path / "chia-profile-x.jsonl"
    log.write_text('{"kind": "session", "session": "x", "ts": 0, "head_node": "h"}\n[0, 0, 1]\n')
    with pytest.raises(ValueError, match=r"chia-profile-x.jsonl:2: a compact row before a format-2 session header"):
        export.load_profile(log)
    log.write_text('{"kind": "session", "format": 2, "session": "x", "ts": 0, "head_node": "h"}\n[0, 7, 1]\n')
    with pytest.raises(
        ValueError, match=r"chia-profile-x.jsonl:2: malformed profile row: refers to entry 0 of a table"
    ):
        export.load_profile(log)
    log.write_text('{"kind": "session", "format": 2, "session": "x", "ts": 0, "head_node": "h"}\n["zz", 1]\n')
    with pytest.raises(ValueError, match=r":2: malformed profile row \(ValueError: unknown row kind 'zz'\)"):
        export.load_profile(log)
    writer = _logfile.LogWriter(tmp_path / "w.jsonl", {"session": "w", "ts": 0.0, "head_node": "h"})
    with pytest.raises(ValueError, match="unknown profile row kind 9"):
        writer.write(DRIVER, [(9,)])


def test_a_last_line_cut_short_by_a_killed_writer_is_skipped(tmp_path: Path) -> None:
    log = write_compact(tmp_path, rows())
    whole = log.read_text()
    expected = export.load_profile(log)
    log.write_text(whole + '[1,0,5,"m.bu')  # the collector died inside write(2)
    cut = export.load_profile(log)
    assert cut.calls == expected.calls and len(cut.calls) >= 3
    log.write_text(whole.replace("\n[", "\n[nonsense", 1))  # a bad line that ends with a newline is still an error
    with pytest.raises(ValueError, match=r"chia-profile-c1.jsonl:2: not a JSON line"):
        export.load_profile(log)


def test_loading_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    # load_profile pauses the cyclic collector while it reads (a log of 100,000 calls is
    # millions of containers); the caller's setting must come back, even when the load fails.
    log = write_compact(tmp_path, rows())
    bad = tmp_path / "bad" / "chia-profile-x.jsonl"
    bad.parent.mkdir()
    bad.write_text('{"kind": "session", "session": "x", "ts": 0, "head_node": "h"}\n[0, 0, 1]\n')
    was_enabled = gc.isenabled()
    try:
        gc.enable()
        assert len(export.load_profile(log).calls) == 4
        assert gc.isenabled()
        with pytest.raises(ValueError, match="a compact row before a format-2 session header"):
            export.load_profile(bad)
        assert gc.isenabled()
        gc.disable()
        assert len(export.load_profile(log).calls) == 4
        assert not gc.isenabled()
    finally:
        if was_enabled:
            gc.enable()
