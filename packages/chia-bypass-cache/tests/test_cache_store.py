"""The cache's on-disk store (no Ray): format, atomic writes, warm start, quarantine, budget."""

from __future__ import annotations

import errno
import logging
import os
import pickle
import stat
import threading
from pathlib import Path

import pytest

from chia.base._bypass_cache import cache_store
from chia.base._bypass_cache.cache_generation import GENERATION_NAME, GenerationView
from chia.base._bypass_cache.cache_store import (
    ENTRY_SUFFIX,
    HEADER,
    INDEX_NAME,
    LOCK_NAME,
    QUARANTINE_DIR,
    TMP_PREFIX,
    CacheDirectoryError,
    EntryStore,
    entry_file_name,
)


def entry_path(directory: Path, tag: str) -> Path:
    return directory / entry_file_name(tag.encode())


def quarantined(directory: Path) -> list[str]:
    return sorted(os.listdir(directory / QUARANTINE_DIR))


def test_put_get_round_trip_and_file_layout(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path / "c"), 10_000)
    assert store.put("iter0/opt 1", b"payload") == []
    assert bytes(store.get("iter0/opt 1") or b"") == b"payload"
    assert store.get("missing") is None
    assert "iter0/opt 1" in store and len(store) == 1
    path = entry_path(tmp_path / "c", "iter0/opt 1")
    data = path.read_bytes()
    magic, version, flags, tag_len, payload_len, _crc = HEADER.unpack_from(data)
    assert (magic, version, flags, tag_len, payload_len) == (b"CHIACACH", 1, 0, 11, 7)
    assert store.total_bytes == len(data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [name for name in os.listdir(tmp_path / "c") if name.startswith(TMP_PREFIX)]


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
    assert sorted(os.listdir(tmp_path)) == sorted(
        [INDEX_NAME, "lock", GENERATION_NAME, QUARANTINE_DIR, *(entry_file_name(tag.encode()) for tag in store.tags())]
    )


def test_value_larger_than_budget_is_refused_and_nothing_written(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 64)
    store.put("small", b"")
    with pytest.raises(ValueError, match=r"tag 'big' takes \d+ bytes, more than the whole cache budget of 64"):
        store.put("big", b"x" * 64)
    assert store.tags() == ["small"]
    assert not entry_path(tmp_path, "big").exists()


def test_overwrite_replaces_and_accounts(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 10_000)
    store.put("t", b"1" * 50)
    store.put("t", b"2" * 10)
    assert bytes(store.get("t") or b"") == b"2" * 10
    assert store.total_bytes == store.entry_size(10, "t")


def test_warm_start_uses_the_index_without_opening_entries(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    for index in range(50):
        store.put(f"t{index}", b"v%d" % index)
    store.get("t0")  # recency is not persisted: order after restart is write order
    store.close()
    # Overwrite every entry with same-sized garbage: a warm start that opened
    # the entries would move them aside; one that reads the index does not.
    for name in os.listdir(tmp_path):
        if name.endswith(ENTRY_SUFFIX):
            path = tmp_path / name
            path.write_bytes(b"\0" * path.stat().st_size)
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == [f"t{index}" for index in range(50)]
    assert restarted.quarantined == 0
    assert restarted.total_bytes == store.total_bytes
    assert restarted.get("t7") is None  # the damage is caught when the entry is read


def test_entry_missing_from_the_index_is_recovered_from_its_header(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("indexed", b"1")
    store.put("orphan", b"2")
    store.close()
    # A crash between the rename and the index record: drop the last record.
    index = tmp_path / INDEX_NAME
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(b"".join(lines[:-1]))
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert sorted(restarted.tags()) == ["indexed", "orphan"]
    assert bytes(restarted.get("orphan") or b"") == b"2"


def test_partial_index_record_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("abcdef", b"1")
    store.close()
    index = tmp_path / INDEX_NAME
    index.write_bytes(index.read_bytes()[:-6])  # cut inside the hex tag
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == ["abcdef"]
    assert bytes(restarted.get("abcdef") or b"") == b"1"
    restarted.put("next", b"2")
    restarted.close()
    assert sorted(EntryStore(str(tmp_path), 1 << 20).tags()) == ["abcdef", "next"]


def test_any_tag_survives_restart(tmp_path: Path) -> None:
    tags = ["plain", "with\nnewline", "back\\slash\\n", "tab\there", "ünïcode ✓", " spaced ", "E\tfake record"]
    store = EntryStore(str(tmp_path), 1 << 20)
    for index, tag in enumerate(tags):
        store.put(tag, b"%d" % index)
    store.remove("tab\there")
    store.close()
    restarted = EntryStore(str(tmp_path), 1 << 20)
    expected = [tag for tag in tags if tag != "tab\there"]
    assert restarted.tags() == expected
    for tag in expected:
        assert bytes(restarted.get(tag) or b"") == b"%d" % tags.index(tag)
    assert restarted.quarantined == 0


def test_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    EntryStore(str(tmp_path), 100).close()
    leftover = tmp_path / f"{TMP_PREFIX}123-0"
    leftover.write_bytes(b"half a write")
    store = EntryStore(str(tmp_path), 100)
    assert not leftover.exists()
    assert len(store) == 0 and quarantined(tmp_path) == []


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[:-3], "truncated"),
        (lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]), "checksum mismatch"),
        (lambda data: b"NOTCACHE" + data[8:], "bad magic"),
        (lambda data: data + b"junk", "trailing bytes"),
        (lambda data: data[:10], "truncated"),
    ],
    ids=["truncated", "flipped-bit", "foreign-magic", "trailing", "header-cut"],
)
def test_damaged_entries_are_moved_aside_never_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object, reason: str
) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("victim", b"precious value")
    store.put("fine", b"ok")
    path = entry_path(tmp_path, "victim")
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with caplog.at_level(logging.WARNING):
        assert store.get("victim") is None
    assert reason in caplog.text and str(path) in caplog.text
    assert "victim" not in store and not path.exists()
    assert len(quarantined(tmp_path)) == 1 and store.quarantined == 1
    assert bytes(store.get("fine") or b"") == b"ok"
    store.close()
    assert EntryStore(str(tmp_path), 1 << 20).tags() == ["fine"]


def test_damaged_orphans_and_foreign_files_are_moved_aside_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("keep", b"1")
    store.close()
    (tmp_path / "notes.txt").write_text("not ours")
    (tmp_path / entry_file_name(b"forged")).write_bytes(b"garbage that is no cache entry at all, really")
    with caplog.at_level(logging.WARNING):
        restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == ["keep"]
    assert len(quarantined(tmp_path)) == 2
    assert "foreign file" in caplog.text and "bad magic" in caplog.text


def test_entry_renamed_to_another_tag_is_not_served(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("a", b"value of a")
    store.put("b", b"value of b")
    entry_path(tmp_path, "a").replace(entry_path(tmp_path, "b"))
    assert store.get("b") is None
    assert len(quarantined(tmp_path)) == 1


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
    assert bytes(signed.get("mine") or b"") == b"3"
    signed.close()
    assert EntryStore(str(tmp_path), 1 << 20, secret=b"s3cret").tags() == ["mine"]


def test_remove_clear_and_journal_survive_restart(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    for tag in ("a", "b", "c"):
        store.put(tag, tag.encode())
    assert store.remove("b") and not store.remove("b")
    store.close()
    store = EntryStore(str(tmp_path), 1 << 20)
    assert store.tags() == ["a", "c"]
    assert store.clear() == 2 and store.total_bytes == 0
    store.close()
    assert len(EntryStore(str(tmp_path), 1 << 20)) == 0


def test_index_is_compacted_while_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_store, "INDEX_SLACK_RECORDS", 10)
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("other", b"o")
    for round_index in range(100):
        store.put("same", b"%d" % round_index)
    assert len((tmp_path / INDEX_NAME).read_bytes().splitlines()) <= 2 * 2 + 10
    store.close()
    restarted = EntryStore(str(tmp_path), 1 << 20)
    assert restarted.tags() == ["other", "same"]
    assert bytes(restarted.get("same") or b"") == b"99"


def test_smaller_budget_at_restart_evicts_oldest(tmp_path: Path) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    for tag in ("a", "b", "c"):
        store.put(tag, b"x" * 100)
    size = store.entry_size(100, "a")
    store.close()
    assert EntryStore(str(tmp_path), 2 * size).tags() == ["b", "c"]


def test_background_warm_start_serves_reads_before_the_index_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EntryStore(str(tmp_path), 1 << 20)
    store.put("a", b"1")
    store.put("damaged", b"2")
    store.close()
    path = entry_path(tmp_path, "damaged")
    path.write_bytes(path.read_bytes()[:-1])
    gate = threading.Event()
    warm_start = EntryStore._warm_start

    def held_back(self: EntryStore) -> None:
        gate.wait()
        warm_start(self)

    monkeypatch.setattr(EntryStore, "_warm_start", held_back)
    early = EntryStore(str(tmp_path), 1 << 20, background=True)
    assert not early.ready
    assert bytes(early.get("a") or b"") == b"1" and "a" in early
    assert early.get("damaged") is None and early.get("missing") is None and "missing" not in early
    gate.set()
    assert early.tags() == ["a", "damaged"]  # waits for the index
    assert early.ready and early.quarantined == 0
    assert early.get("damaged") is None  # with the index loaded, a damaged entry is moved aside
    assert early.tags() == ["a"] and early.quarantined == 1
    early.put("b", b"3")
    assert early.total_bytes == early.entry_size(1, "a") + early.entry_size(1, "b")


def test_failed_background_warm_start_is_raised_by_later_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: EntryStore) -> None:
        raise PermissionError("index unreadable")

    monkeypatch.setattr(EntryStore, "_warm_start", broken)
    store = EntryStore(str(tmp_path), 100, background=True)
    with pytest.raises(PermissionError, match="index unreadable"):
        store.tags()


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
