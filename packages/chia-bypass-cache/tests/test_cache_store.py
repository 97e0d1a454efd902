"""The cache's on-disk store (no Ray): segment log, checkpoint, warm start, quarantine, budget, migration."""

from __future__ import annotations

import errno
import gc
import hashlib
import hmac
import logging
import os
import pickle
import signal
import stat
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from chia.base._bypass_cache import cache_checkpoint, cache_store
from chia.base._bypass_cache.cache_checkpoint import (
    CHECKPOINT_NAME,
    DELTA_HEAD,
    DELTA_NAME,
    TMP_PREFIX,
    Checkpoint,
    read_checkpoint,
    read_deltas,
)
from chia.base._bypass_cache.cache_generation import GENERATION_NAME, GenerationView
from chia.base._bypass_cache.cache_log import RECORD, record_length, segment_name
from chia.base._bypass_cache.cache_store import LOCK_NAME, QUARANTINE_DIR, CacheDirectoryError, EntryStore

FIRST_SEGMENT = segment_name(1)


def quarantined(directory: Path) -> list[str]:
    return sorted(os.listdir(directory / QUARANTINE_DIR))


def segments(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.startswith("segment-"))


def value(store: EntryStore, tag: str) -> bytes | None:
    payload = store.get(tag)
    return None if payload is None else bytes(payload)


def test_put_get_round_trip_and_file_layout(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path / "c"), 10_000)
    assert store.put("iter0/opt 1", b"payload") == []
    assert value(store, "iter0/opt 1") == b"payload"
    assert store.get("missing") is None
    assert "iter0/opt 1" in store and len(store) == 1
    assert sorted(os.listdir(tmp_path / "c")) == sorted(
        [CHECKPOINT_NAME, FIRST_SEGMENT, GENERATION_NAME, LOCK_NAME, QUARANTINE_DIR]
    )
    data = (tmp_path / "c" / FIRST_SEGMENT).read_bytes()
    magic, kind, flags, _reserved, tag_len, payload_len, _head_crc, _crc = RECORD.unpack_from(data)
    assert (magic, kind, flags, tag_len, payload_len) == (b"CCL1", 1, 0, 11, 7)
    size = store.entry_size(7, "iter0/opt 1")
    assert store.total_bytes == size
    assert data[size:] == bytes(len(data) - size)  # room reserved for the next records
    store.close()
    assert (tmp_path / "c" / FIRST_SEGMENT).read_bytes() == data[:size]  # given back once closed
    for name in (FIRST_SEGMENT, CHECKPOINT_NAME):
        assert stat.S_IMODE((tmp_path / "c" / name).stat().st_mode) == 0o600


def test_directory_is_created_private(tmp_path: Path) -> None:
    EntryStore(str(tmp_path / "nested" / "cache"), 100)
    assert stat.S_IMODE((tmp_path / "nested" / "cache").stat().st_mode) == 0o700


def test_shared_directory_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "open"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    with caplog.at_level(logging.WARNING):
        EntryStore(str(directory), 100)
    assert "accessible by other users" in caplog.text


def test_budget_holds_after_every_write_lru_first(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 0)
    one = store.entry_size(100, "a")
    store.budget_bytes = 3 * one
    for tag in "abc":
        store.put(tag, b"x" * 100)
    assert store.get("a") is not None  # a is now the most recently used
    assert store.put("d", b"x" * 100) == ["b"]
    assert store.tags() == ["c", "a", "d"]
    assert store.total_bytes <= store.budget_bytes
    for index in range(20):
        store.put(f"n{index}", b"y" * (index * 7 % 100))
        assert store.total_bytes <= store.budget_bytes
    assert store.evictions > 1
    store.close()
    assert EntryStore(str(tmp_path), 3 * one).tags() == store.tags()


def test_value_larger_than_budget_is_refused_and_nothing_written(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 64)
    store.put("small", b"")
    before, on_disk = store.log_bytes, (tmp_path / FIRST_SEGMENT).read_bytes()
    with pytest.raises(ValueError, match=r"tag 'big' takes \d+ bytes, more than the whole cache budget of 64"):
        store.put("big", b"x" * 64)
    assert store.tags() == ["small"]
    assert store.log_bytes == before and (tmp_path / FIRST_SEGMENT).read_bytes() == on_disk
    store.close()
    assert (tmp_path / FIRST_SEGMENT).stat().st_size == before


def test_overwrite_replaces_and_accounts(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 10_000)
    store.put("t", b"1" * 50)
    store.put("t", b"2" * 10)
    assert value(store, "t") == b"2" * 10
    assert store.total_bytes == store.entry_size(10, "t")
    store.close()
    assert value(EntryStore(str(tmp_path), 10_000), "t") == b"2" * 10


def test_warm_start_reads_the_checkpoint_not_the_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_store, "CHECKPOINT_RECORDS", 10)
    monkeypatch.setattr(cache_store, "CHECKPOINT_SHARE", 8)  # a delta every 10 records
    store = EntryStore(str(tmp_path), 1 << 20)
    for index in range(50):
        store.put(f"t{index}", b"v%d" % index)
    store.get("t0")  # recency since the last checkpoint is not kept: t0 was read after it
    store.close()
    # Overwrite the records with same-sized garbage: a warm start that read them
    # would find no records; one that reads the checkpoint finds every entry.
    path = tmp_path / FIRST_SEGMENT
    path.write_bytes(b"\0" * path.stat().st_size)
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == [f"t{index}" for index in range(50)]
    assert restarted.quarantined == 0
    assert restarted.total_bytes == store.total_bytes
    assert restarted.get("t7") is None  # the damage is caught when the entry is read
    assert restarted.quarantined == 1 and "t7" not in restarted


def test_checkpoint_now_leaves_no_record_to_replay_and_keeps_recency(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    for index in range(50):  # far fewer than CHECKPOINT_RECORDS: no checkpoint of its own
        store.put(f"t{index}", b"v%d" % index)
    store.get("t0")
    store.checkpoint()
    store.close()
    # The records overwritten with same-sized garbage: a start that replayed any would miss it.
    path = tmp_path / FIRST_SEGMENT
    path.write_bytes(b"\0" * path.stat().st_size)
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == [f"t{index}" for index in range(1, 50)] + ["t0"]  # t0 read last
    assert restarted.quarantined == 0
    restarted.close()
    with pytest.raises(ValueError, match="closed"):
        restarted.checkpoint()


def delta_rows(directory: Path) -> list[list[str]]:
    """The tags of each delta that follows the checkpoint in ``directory`` (removed ones as ``-tag``)."""
    checkpoint = read_checkpoint(str(directory / CHECKPOINT_NAME))
    assert checkpoint is not None
    found = read_deltas(str(directory / DELTA_NAME), checkpoint.base)
    if found is None:
        return []
    assert not found.stale and found.valid_bytes == found.size
    return [
        [tag if segment else f"-{tag}" for tag, segment in zip(delta.tags(), delta.columns[0], strict=True)]
        for delta in found.deltas
    ]


def filled_store(directory: Path, monkeypatch: pytest.MonkeyPatch, records: int, count: int) -> EntryStore:
    """A store of ``directory`` due a checkpoint every ``records`` records, holding ``t0`` to ``t<count - 1>``."""
    monkeypatch.setattr(cache_store, "CHECKPOINT_RECORDS", records)
    store = EntryStore(str(directory), 1 << 20)
    for index in range(count):
        store.put(f"t{index}", b"v")
    return store


def test_a_checkpoint_between_whole_ones_writes_only_what_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rewriting the whole index at every checkpoint made each put cost more the bigger the cache: a
    # delta holds the entries written, read or removed since the checkpoint before, nothing else.
    monkeypatch.setattr(cache_store, "CHECKPOINT_RECORDS", 4)
    whole = EntryStore(str(tmp_path), 1 << 20)  # an empty directory: the whole (empty) index is written
    whole.close()
    written = (tmp_path / CHECKPOINT_NAME).stat().st_ino
    store = filled_store(tmp_path, monkeypatch, 4, 64)
    assert (tmp_path / CHECKPOINT_NAME).stat().st_ino == written  # the index was never rewritten
    assert delta_rows(tmp_path) == [[f"t{index}" for index in range(start, start + 4)] for start in range(0, 64, 4)]
    store.checkpoint()  # the whole index now: the deltas go
    assert delta_rows(tmp_path) == []
    store.get("t0")
    store.put("t5", b"w")
    store.remove("t9")
    store.put("t64", b"v")
    store.put("t65", b"v")
    assert delta_rows(tmp_path) == [["-t9", "t0", "t5", "t64", "t65"]]  # in LRU order, after the removals
    store.close()
    restarted = EntryStore(str(tmp_path), 1 << 20)
    expected = [f"t{index}" for index in range(1, 64) if index not in (5, 9)] + ["t0", "t5", "t64", "t65"]
    assert restarted.tags() == expected
    assert value(restarted, "t5") == b"w" and value(restarted, "t9") is None
    restarted.close()


def test_the_whole_index_is_rewritten_once_the_deltas_would_outgrow_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = filled_store(tmp_path, monkeypatch, 4, 8)  # two deltas of 4 rows: as many as the entries
    whole = (tmp_path / CHECKPOINT_NAME).stat().st_ino
    for index in range(4):  # 4 rows more: the index is rewritten instead
        store.put(f"t{index}", b"w")
    assert (tmp_path / CHECKPOINT_NAME).stat().st_ino != whole
    assert not (tmp_path / DELTA_NAME).exists()
    checkpoint = read_checkpoint(str(tmp_path / CHECKPOINT_NAME))
    assert checkpoint is not None and list(checkpoint.entries()) == [f"t{index}" for index in (4, 5, 6, 7, 0, 1, 2, 3)]
    store.close()


def test_reads_change_only_the_next_delta_and_wait_while_they_outweigh_the_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_store, "CHECKPOINT_SHARE", 2)
    store = filled_store(tmp_path, monkeypatch, 4, 40)
    store.checkpoint()
    for index in range(20):  # 20 entries read: a delta after 4 records would cost 6 rows a record
        store.get(f"t{index}")
    for index in range(40, 59):
        store.put(f"t{index}", b"v")
        assert delta_rows(tmp_path) == []  # 39 rows for 19 records: more than 2 a record
    store.put("t59", b"v")  # 40 rows for 20 records: due
    assert delta_rows(tmp_path) == [[f"t{index}" for index in (*range(20), *range(40, 60))]]
    store.close()


def test_a_restart_after_a_crash_keeps_the_recency_of_the_last_delta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_store, "CHECKPOINT_RECORDS", 4)
    monkeypatch.setattr(cache_checkpoint, "_CHUNK", 2)  # the delta of six rows is applied two rows at a time
    store = EntryStore(str(tmp_path), 1 << 20)
    for tag in ("a", "b", "c", "d", "e", "f", "g", "h"):
        store.put(tag, tag.encode())
    store.get("b")
    store.get("a")
    for tag in ("i", "j", "k", "l"):  # a delta: the two reads and these
        store.put(tag, tag.encode())
    store.get("c")  # after the last delta: not kept (the log has no record of reads)
    store.put("m", b"m")  # in the log after it: replayed
    store.close()  # as a kill would: no checkpoint
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == ["c", "d", "e", "f", "g", "h", "b", "a", "i", "j", "k", "l", "m"]
    restarted.close()


def test_a_delta_cut_short_by_a_kill_is_cut_off_and_its_records_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = filled_store(tmp_path, monkeypatch, 4, 8)
    store.checkpoint()
    for index in range(8, 12):
        store.put(f"t{index}", b"v")  # a delta
    store.remove("t2")
    for index in range(3):
        store.put(f"t{index}", b"w%d" % index)  # the second delta: t2 removed and written again, t0, t1
    assert delta_rows(tmp_path) == [["t8", "t9", "t10", "t11"], ["t0", "t1", "t2"]]
    store.close()
    path = tmp_path / DELTA_NAME
    whole = path.stat().st_size
    os.truncate(path, whole - 5)  # the kill came inside the last delta's write
    with caplog.at_level(logging.INFO):
        restarted = EntryStore(str(tmp_path), 1 << 20)
    assert "cutting off an unfinished last checkpoint delta" in caplog.text
    assert restarted.tags() == [f"t{index}" for index in range(3, 12)] + ["t0", "t1", "t2"]
    assert [value(restarted, f"t{index}") for index in range(3)] == [b"w0", b"w1", b"w2"]
    assert restarted.quarantined == 0 and quarantined(tmp_path) == []
    # The four records replayed are due a delta: written again, after the whole one
    assert delta_rows(tmp_path) == [["t8", "t9", "t10", "t11"], ["t0", "t1", "t2"]]
    restarted.close()


def test_deltas_a_newer_checkpoint_replaced_are_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_store, "CHECKPOINT_RECORDS", 2)
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("x", b"1")
    store.remove("x")  # a delta: x removed
    left_behind = (tmp_path / DELTA_NAME).read_bytes()
    store.put("x", b"2")
    store.checkpoint()  # the whole index; the deltas go
    store.close()
    (tmp_path / DELTA_NAME).write_bytes(left_behind)  # as if killed between the checkpoint and their removal
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert value(restarted, "x") == b"2"
    assert not (tmp_path / DELTA_NAME).exists() and restarted.quarantined == 0
    restarted.close()


@pytest.mark.parametrize("damage", ["a byte of the middle delta", "the first delta's length"])
def test_damaged_deltas_are_moved_aside_with_their_checkpoint_and_the_log_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    filled_store(tmp_path, monkeypatch, 2, 6).close()  # three deltas
    path = tmp_path / DELTA_NAME
    data = bytearray(path.read_bytes())
    if damage == "a byte of the middle delta":
        data[len(data) // 2] ^= 0xFF
    else:  # read as is, the first delta would run past the end of the file as if a kill had cut it short
        struct.pack_into("<Q", data, DELTA_HEAD.size - 16, 1 << 40)
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == [f"t{index}" for index in range(6)]
    assert [name.split(".")[0] for name in quarantined(tmp_path)] == ["checkpoint", "checkpoint"]
    assert "replaying the whole log" in caplog.text and restarted.quarantined == 2
    restarted.close()


def test_records_after_the_checkpoint_are_replayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_store, "CHECKPOINT_RECORDS", 3)
    store = EntryStore(str(tmp_path), 1 << 20)
    for tag in ("a", "b", "c", "d"):  # a checkpoint after c; d only in the log
        store.put(tag, tag.encode())
    store.remove("b")  # after the checkpoint too
    store.put("a", b"A")
    store.close()
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == ["c", "d", "a"]
    assert [value(restarted, tag) for tag in ("a", "b", "c", "d")] == [b"A", None, b"c", b"d"]


def test_a_record_cut_short_by_a_kill_is_cut_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("kept", b"1")
    store.put("torn", b"2" * 100)
    store.close()
    path = tmp_path / FIRST_SEGMENT
    os.truncate(path, path.stat().st_size - 30)  # the writer died inside its last write
    with caplog.at_level(logging.INFO):
        restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == ["kept"]
    assert "unfinished last record" in caplog.text
    restarted.put("next", b"3")
    restarted.close()
    again = EntryStore(str(tmp_path), 1 << 20)
    assert again.tags() == ["kept", "next"]
    assert (value(again, "kept"), value(again, "next")) == (b"1", b"3")
    assert again.quarantined == 0


# A child that puts, says how far it got, and waits to be killed (its store never closed: the room stays).
ROOM_WRITER = """
import resource, signal, sys
from chia.base._bypass_cache.cache_store import EntryStore
directory, limit = sys.argv[1], int(sys.argv[2])
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
store = EntryStore(directory, 1 << 30)
for index in range(200):
    try:
        store.put(f"t{index}", bytes([index]) * 1000)
    except OSError as exc:
        print("failed", index, exc.errno, exc.filename == store._segments[1].path, flush=True)
        break
else:
    print("done", 200, 0, True, flush=True)
sys.stdin.read()
"""


def put_until_killed(directory: Path, file_size_limit: int = 0) -> tuple[str, int, int, bool]:
    """Run :data:`ROOM_WRITER` in a child, SIGKILL it once it reports; return its report."""
    child = subprocess.Popen(
        [sys.executable, "-c", ROOM_WRITER, str(directory), str(file_size_limit)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    outcome, count, code, names_segment = child.stdout.readline().split()
    child.kill()
    assert child.wait() == -signal.SIGKILL
    return outcome, int(count), int(code), names_segment == "True"


def test_room_a_killed_writer_leaves_is_given_back_without_a_word(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert put_until_killed(tmp_path) == ("done", 200, 0, True)
    path = tmp_path / FIRST_SEGMENT
    data = path.read_bytes()
    records = sum(record_length(len(f"t{index}"), 1000, False) for index in range(200))
    assert len(data) > records and data[records:] == bytes(len(data) - records)  # room, as zeros
    with caplog.at_level(logging.INFO):
        restarted = EntryStore(str(tmp_path), 1 << 30)
    assert restarted.tags() == [f"t{index}" for index in range(200)]
    assert [value(restarted, f"t{index}") for index in (0, 199)] == [b"\0" * 1000, bytes([199]) * 1000]
    assert restarted.quarantined == 0 and "unfinished" not in caplog.text
    restarted.put("next", b"n")
    restarted.close()
    assert path.stat().st_size == records + record_length(len("next"), 1, False)
    assert value(EntryStore(str(tmp_path), 1 << 30), "next") == b"n"


def test_a_full_disk_fails_the_put_that_needs_room_before_writing_anything(tmp_path: Path) -> None:
    # A file size limit stands in for a full disk: reserving room past it fails as ENOSPC would.
    outcome, acknowledged, code, names_segment = put_until_killed(tmp_path, file_size_limit=100_000)
    assert (outcome, code, names_segment) == ("failed", errno.EFBIG, True)
    assert 0 < acknowledged < 100
    restarted = EntryStore(str(tmp_path), 1 << 30)
    assert restarted.tags() == [f"t{index}" for index in range(acknowledged)]
    assert value(restarted, f"t{acknowledged - 1}") == bytes([acknowledged - 1]) * 1000
    assert restarted.quarantined == 0


# The bytes of the last record a kill left uncopied (zeros), from its length.
@pytest.mark.parametrize(
    "uncopied",
    [
        pytest.param(lambda length: (20, length), id="only-the-start"),
        pytest.param(lambda length: (length - 50, length), id="all-but-the-end"),  # a whole header
        pytest.param(lambda length: (0, length - 50), id="only-the-end"),
    ],
)
def test_a_record_half_copied_into_the_room_is_cut_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, uncopied: Callable[[int], tuple[int, int]]
) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("kept", b"1")
    store.put("torn", b"2" * 300)
    store.close()
    path = tmp_path / FIRST_SEGMENT
    kept = store.entry_size(1, "kept")
    data = bytearray(path.read_bytes())
    begin, end = uncopied(len(data) - kept)
    data[kept + begin : kept + end] = bytes(end - begin)
    path.write_bytes(bytes(data) + bytes(60_000))  # and the room after it
    with caplog.at_level(logging.INFO):
        restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == ["kept"]
    assert "unfinished last record" in caplog.text and restarted.quarantined == 0
    assert path.stat().st_size == kept
    restarted.put("next", b"3")
    restarted.close()
    assert EntryStore(str(tmp_path), 1 << 20).tags() == ["kept", "next"]


def test_any_tag_survives_restart(tmp_path: Path) -> None:
    tags = ["plain", "with\nnewline", "back\\slash\\n", "tab\there", "ünïcode ✓", " spaced ", "E\tfake record", ""]
    store = EntryStore(str(tmp_path), 1 << 20)
    for index, tag in enumerate(tags):
        store.put(tag, b"%d" % index)
    store.remove("tab\there")
    store.close()
    restarted = EntryStore(str(tmp_path), 1 << 20)
    expected = [tag for tag in tags if tag != "tab\there"]
    assert restarted.tags() == expected
    for tag in expected:
        assert value(restarted, tag) == b"%d" % tags.index(tag)
    assert restarted.quarantined == 0


def test_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    EntryStore(str(tmp_path), 100).close()
    leftover = tmp_path / f"{TMP_PREFIX}{CHECKPOINT_NAME}-123"
    leftover.write_bytes(b"half a checkpoint")
    store = EntryStore(str(tmp_path), 100)
    assert not leftover.exists()
    assert len(store) == 0 and quarantined(tmp_path) == []


def _flip_payload(data: bytearray, start: int) -> None:
    data[start + RECORD.size + len(b"victim") + 3] ^= 0xFF


def _foreign_magic(data: bytearray, start: int) -> None:
    data[start : start + 4] = b"XXXX"


def _other_tag(data: bytearray, start: int) -> None:
    data[start + RECORD.size] ^= 0x01  # "victim" -> "wictim": caught by the header's checksum


@pytest.mark.parametrize(
    ("damage", "reason"),
    [(_flip_payload, "checksum mismatch"), (_foreign_magic, "bad magic"), (_other_tag, "header checksum mismatch")],
    ids=["flipped-bit", "foreign-magic", "other-tag"],
)
def test_damaged_records_are_copied_aside_never_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[bytearray, int], None], reason: str
) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("fine", b"ok")
    start = store.log_bytes
    store.put("victim", b"precious value")
    path = tmp_path / FIRST_SEGMENT
    data = bytearray(path.read_bytes())
    damage(data, start)
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        assert store.get("victim") is None
    assert reason in caplog.text and str(path) in caplog.text
    assert "victim" not in store
    assert len(quarantined(tmp_path)) == 1 and store.quarantined == 1
    assert value(store, "fine") == b"ok"
    store.close()
    assert EntryStore(str(tmp_path), 1 << 20).tags() == ["fine"]


def test_foreign_files_and_a_damaged_checkpoint_are_moved_aside_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("keep", b"1")
    store.put("gone", b"2")
    store.remove("gone")
    store.checkpoint()  # the entries are in the checkpoint, and the log still has every record
    store.close()
    (tmp_path / "notes.txt").write_text("not ours")
    checkpoint = tmp_path / CHECKPOINT_NAME
    data = bytearray(checkpoint.read_bytes())
    data[-1] ^= 0xFF
    checkpoint.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == ["keep"]  # the whole log replayed
    assert value(restarted, "keep") == b"1"
    assert len(quarantined(tmp_path)) == 2
    assert "foreign file" in caplog.text and "replaying the whole log" in caplog.text


def test_signed_store_refuses_unsigned_and_foreign_signed_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unsigned = EntryStore(str(tmp_path), 1 << 20)
    unsigned.put("plain", b"1")
    unsigned.close()
    other = EntryStore(str(tmp_path), 1 << 20, secret=b"other secret")
    other.put("other", b"2")
    other.close()
    with caplog.at_level(logging.WARNING):
        signed = EntryStore(str(tmp_path), 1 << 20, secret=b"s3cret")
        # The unsigned entry is refused as soon as it is looked at, the foreign signature when read.
        assert signed.get("plain") is None
        assert signed.get("other") is None
    assert "unsigned" in caplog.text and "bad signature" in caplog.text
    assert "s3cret" not in caplog.text
    signed.put("mine", b"3")
    assert value(signed, "mine") == b"3"
    signed.close()
    assert EntryStore(str(tmp_path), 1 << 20, secret=b"s3cret").tags() == ["mine"]


def test_remove_clear_and_the_log_survive_restart(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    for tag in ("a", "b", "c"):
        store.put(tag, tag.encode())
    assert store.remove("b") and not store.remove("b")
    store.close()
    store = EntryStore(str(tmp_path), 1 << 20)
    assert store.tags() == ["a", "c"]
    assert store.clear() == 2 and store.total_bytes == 0 == store.log_bytes
    store.put("after", b"x")
    store.close()
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == ["after"]
    assert segments(tmp_path) == [segment_name(2)]  # the flushed segment is gone


def test_dead_records_are_compacted_while_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_store, "COMPACT_MIN_DEAD_BYTES", 1000)
    monkeypatch.setattr(cache_store, "SEGMENT_BYTES", 2000)
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("other", b"o" * 100)
    for round_index in range(300):
        store.put("same", b"%03d" % round_index * 30)
        store.put(f"evicted{round_index}", b"e")
        store.remove(f"evicted{round_index}")
        assert store.log_bytes <= 2 * store.total_bytes + 1000 + 2000
    assert store.tags() == ["other", "same"]
    log_bytes = store.log_bytes
    store.close()  # gives back the active segment's room
    assert sum((tmp_path / name).stat().st_size for name in segments(tmp_path)) == log_bytes
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == ["other", "same"]
    assert (value(restarted, "other"), value(restarted, "same")) == (b"o" * 100, b"299" * 30)


def test_smaller_budget_at_restart_evicts_oldest(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    for tag in ("a", "b", "c"):
        store.put(tag, b"x" * 100)
    size = store.entry_size(100, "a")
    store.close()
    assert EntryStore(str(tmp_path), 2 * size).tags() == ["b", "c"]


def test_background_warm_start_serves_reads_before_the_index_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_store, "CHECKPOINT_RECORDS", 2)
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("a", b"1")
    store.put("damaged", b"2")  # both in the checkpoint
    store.put("late", b"3")  # after it
    store.close()
    path = tmp_path / FIRST_SEGMENT
    data = bytearray(path.read_bytes())
    data[store.entry_size(1, "a") + store.entry_size(1, "damaged") - 1] ^= 0xFF
    path.write_bytes(bytes(data))
    gate = threading.Event()
    entries = Checkpoint.entries

    def held_back(self: Checkpoint, pause: Callable[[], None]) -> object:
        gate.wait()
        return entries(self, pause)

    monkeypatch.setattr(Checkpoint, "entries", held_back)
    early = EntryStore(str(tmp_path), 1 << 20, background=True)
    assert value(early, "a") == b"1" and "a" in early and value(early, "late") == b"3"
    assert not early.ready
    assert early.get("damaged") is None and early.get("missing") is None and "missing" not in early
    gate.set()
    assert early.tags() == ["a", "damaged", "late"]  # waits for the index
    assert early.ready and early.quarantined == 0
    assert early.get("damaged") is None  # with the index built, a damaged entry is moved aside
    assert early.tags() == ["a", "late"] and early.quarantined == 1
    early.put("b", b"4")
    assert early.total_bytes == sum(early.entry_size(1, tag) for tag in ("a", "late", "b"))


@pytest.mark.parametrize("first_call", ["read", "write", "keys"])
def test_background_index_is_built_after_the_first_read_or_when_a_call_needs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_call: str
) -> None:
    monkeypatch.setattr(cache_store, "CHECKPOINT_RECORDS", 2)
    store = EntryStore(str(tmp_path), 1 << 20)
    for tag in ("a", "b", "c"):
        store.put(tag, tag.encode() * 10)
    store.close()
    # Without a read or a call that needs the index, the build would wait this long: no call below does.
    monkeypatch.setattr(cache_store, "BUILD_AFTER_FIRST_READ_SECONDS", 3600.0)
    restarted = EntryStore(str(tmp_path), 1 << 20, background=True)
    if first_call == "read":
        assert value(restarted, "b") == b"b" * 10
    elif first_call == "write":
        restarted.put("d", b"d")
    assert restarted.tags()[:3] == ["a", "b", "c"]
    assert restarted.ready and restarted.quarantined == 0
    restarted.close()


def test_failed_background_warm_start_is_raised_by_later_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: EntryStore) -> None:
        raise PermissionError("index unreadable")

    monkeypatch.setattr(EntryStore, "_warm_start", broken)
    store = EntryStore(str(tmp_path), 100, background=True)
    with pytest.raises(PermissionError, match="index unreadable"):
        store.tags()
    with pytest.raises(PermissionError, match="index unreadable"):
        store.get("any")


@pytest.mark.parametrize("collecting", [True, False])
def test_the_garbage_collector_is_paused_while_the_index_is_built_then_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, collecting: bool
) -> None:
    # Its passes over the actor's process took a third of the build at 100,000 entries.
    filled_store(tmp_path, monkeypatch, 2, 4).close()
    seen: list[bool] = []
    entries = Checkpoint.entries

    def watched(self: Checkpoint, pause: Callable[[], None]) -> object:
        seen.append(gc.isenabled())
        return entries(self, pause)

    monkeypatch.setattr(Checkpoint, "entries", watched)

    def broken(self: Checkpoint, pause: Callable[[], None]) -> object:
        raise ZeroDivisionError("the build failed")

    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        built = EntryStore(str(tmp_path), 1 << 20, background=True)
        assert len(built.tags()) == 4
        built.close()
        assert seen == [False] and gc.isenabled() is collecting
        monkeypatch.setattr(Checkpoint, "entries", broken)
        with pytest.raises(ZeroDivisionError, match="the build failed"):
            EntryStore(str(tmp_path), 1 << 20)
        assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()


# --- directories of the one-file-per-entry format (chia-bypass-cache 0.1) -------------------------


def old_entry(directory: Path, tag: str, payload: bytes, secret: bytes | None = None) -> Path:
    """Write ``tag``'s entry as the 0.1 cache did: header, tag, optional HMAC, payload, in its own file."""
    tag_bytes = tag.encode()
    header = struct.pack(
        "<8sHHIQI", b"CHIACACH", 1, 0 if secret is None else 1, len(tag_bytes), len(payload),
        zlib.crc32(payload, zlib.crc32(tag_bytes)),
    )  # fmt: skip
    mac = b"" if secret is None else hmac.new(secret, header + tag_bytes + payload, hashlib.sha256).digest()
    path = directory / (hashlib.sha256(tag_bytes).hexdigest()[:40] + ".entry")
    path.write_bytes(header + tag_bytes + mac + payload)
    return path


def test_a_directory_of_the_old_format_is_migrated_with_its_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tmp_path.chmod(0o700)
    values = {tag: pickle.dumps({"metric": index}) for index, tag in enumerate(["b", "a", "line\nbreak", "orphan"])}
    paths = [old_entry(tmp_path, tag, payload) for tag, payload in values.items()]
    old_entry(tmp_path, "evicted", b"old")
    damaged = old_entry(tmp_path, "damaged", b"value")
    damaged.write_bytes(damaged.read_bytes()[:-1])
    journal = "W\tx\t1\tb\nW\tx\t1\ta\nW\tx\t1\tline\\nbreak\nW\tx\t1\tevicted\nE\tevicted\nW\tx\t1\tdamaged\n"
    (tmp_path / "index.log").write_text(journal)
    (tmp_path / "lock").touch()
    with caplog.at_level(logging.WARNING):
        store = EntryStore(str(tmp_path), 1 << 20)
    assert store.tags() == ["b", "a", "line\nbreak", "evicted", "orphan"]  # the journal's order, then the rest
    for tag, payload in values.items():
        assert value(store, tag) == payload
    assert "truncated" in caplog.text and store.quarantined == 1
    assert not [path for path in (*paths, tmp_path / "index.log") if path.exists()]
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".entry")]
    store.close()
    again = EntryStore(str(tmp_path), 1 << 20)
    assert again.tags() == ["b", "a", "line\nbreak", "evicted", "orphan"]
    assert value(again, "orphan") == values["orphan"]


def test_signed_old_entries_migrate_and_unsigned_ones_are_refused(tmp_path: Path) -> None:
    old_entry(tmp_path, "signed", b"1", secret=b"s3cret")
    old_entry(tmp_path, "unsigned", b"2")
    store = EntryStore(str(tmp_path), 1 << 20, secret=b"s3cret")
    assert store.tags() == ["signed"]
    assert value(store, "signed") == b"1" and store.quarantined == 1
    store.close()
    assert value(EntryStore(str(tmp_path), 1 << 20, secret=b"s3cret"), "signed") == b"1"


# --- the directory ----------------------------------------------------------------------------------


def test_one_store_per_directory(tmp_path: Path) -> None:
    EntryStore(str(tmp_path), 100)
    with pytest.raises(BlockingIOError, match="in use by another cache actor"):
        EntryStore(str(tmp_path), 100, lock_wait=0.2)


def test_directory_that_is_a_file_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheDirectoryError, match=r"'.*/file': is a file; remove it or choose another") as caught:
        EntryStore(str(tmp_path / "file"), 100)
    assert caught.value.errno == errno.ENOTDIR and caught.value.filename == str(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"


def test_a_file_above_the_directory_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("x")
    with pytest.raises(CacheDirectoryError, match=r"'.*/data' is a file; remove '.*/data'"):
        EntryStore(str(tmp_path / "data" / "cache" / "deeper"), 100)
    assert os.listdir(tmp_path) == ["data"]


def test_a_directory_on_a_virtual_filesystem_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CacheDirectoryError, match=r"'/proc/chia-cache/c'.*virtual filesystem.*writable local disk"):
        EntryStore("/proc/chia-cache/c", 100)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod: the permission check cannot fail")
def test_a_directory_without_write_permission_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(CacheDirectoryError, match=r"is not writable by this process.*chmod u\+w") as caught:
            EntryStore(str(locked / "cache"), 100)
        assert caught.value.errno == errno.EACCES
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)


def test_cache_directory_error_survives_pickling_with_its_message(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheDirectoryError) as caught:
        EntryStore(str(tmp_path / "file"), 100)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is CacheDirectoryError
    assert (str(copy), copy.errno, copy.filename) == (str(caught.value), errno.ENOTDIR, str(tmp_path / "file"))


def test_generation_stamps_change_with_the_entry_and_are_seen_by_readers(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 1000)
    view = GenerationView(str(tmp_path), LOCK_NAME)
    store.put("t", b"one")
    stamp = view.stamp("t")
    assert stamp == store.stamp("t")
    store.put("u", b"other")
    store.get("t")
    assert view.stamp("t") == stamp  # other entries and reads leave it alone (barring a shared hash slot)
    for change in (lambda: store.put("t", b"two"), lambda: store.remove("t"), store.clear):
        before = view.stamp("t")
        change()
        assert view.stamp("t") != before
    store.put("u", b"other")
    before = view.stamp("u")
    store.put("v", b"y" * 950)  # the budget pushes "u" out
    assert "u" not in store and view.stamp("u") != before
    assert view.writer_alive()
    store.close()
    assert not view.writer_alive()
    again = EntryStore(str(tmp_path), 1000)
    assert view.stamp("v")[0] != stamp[0]  # a new store is a new incarnation
    assert view.writer_alive()
    again.close()
    view.close()
