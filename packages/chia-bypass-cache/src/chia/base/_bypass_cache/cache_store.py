"""The cache directory: entries in an append-only segment log, the in-memory index, LRU byte budget.

Owns the cache directory. Every write appends one checksummed record to the
active segment (:mod:`~chia.base._bypass_cache.cache_log`); the index (tag ->
record) lives in memory, is checkpointed every few thousand records
(:mod:`~chia.base._bypass_cache.cache_checkpoint`) and is rebuilt at start
from the checkpoint, its deltas and the records after them. Segments mostly made of dead
records are compacted. Damaged records are copied to ``quarantine/`` with a
warning, never served. A directory of the old one-file-per-entry format is
migrated at its first start. Runs without Ray; values stay opaque bytes here.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from chia.base._bypass_cache.cache_checkpoint import (
    CHECKPOINT_NAME,
    DELTA_NAME,
    TMP_PREFIX,
    Base,
    Checkpoint,
    CheckpointProblem,
    Delta,
    Row,
    append_delta,
    read_checkpoint,
    read_deltas,
    write_checkpoint,
)
from chia.base._bypass_cache.cache_directory import LOCK_NAME, CacheDirectoryError, lock_directory, prepare_directory
from chia.base._bypass_cache.cache_generation import GENERATION_NAME, GenerationTable, Stamp
from chia.base._bypass_cache.cache_legacy import LEGACY_INDEX_NAME, is_legacy_name, legacy_order, read_legacy_entry
from chia.base._bypass_cache.cache_log import (
    DELETE,
    PUT,
    Location,
    RecordProblem,
    Segment,
    check_record,
    encode_record,
    record_length,
    segment_name,
    segment_number,
    tag_hash,
)

__all__ = ["LOCK_NAME", "QUARANTINE_DIR", "CacheDirectoryError", "EntryStore", "EntryTooLarge"]

logger = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"
LOCK_WAIT_SECONDS = 30.0
# A new segment is started once the active one holds this many bytes.
SEGMENT_BYTES = 64 << 20
# A checkpoint is due after this many records: a delta of the entries changed since the last one
# (written, read or removed), or the whole index once the deltas would add up to more rows than it
# has. A start after a crash replays at most that many records before its first read is
# answered; after stop_cache, none (the cache writes a whole checkpoint first:
# EntryStore.checkpoint). Rewriting the whole index at a fixed interval made every put cost more
# the bigger the cache (measured: 8 us a put at 10,000 entries, 100 us at 300,000); one rewrite
# per record for every 8 entries kept that bounded but still grew a put from 3.3 us at 10,000
# entries to 5.6 us at 100,000 (3.0 and 3.2 us without checkpoints). A delta costs what changed.
# When reads changed more entries than CHECKPOINT_SHARE per record since the last checkpoint,
# it waits until it (or the whole index) costs no more than that per record.
CHECKPOINT_RECORDS = 4096
CHECKPOINT_SHARE = 8
# Segments are compacted once dead records take more than the live ones and at least this much.
COMPACT_MIN_DEAD_BYTES = 4 << 20
# The interpreter's thread switch interval while the index is built in the background.
WARM_START_SWITCH_SECONDS = 0.0005
# A background index build waits this long at most for the first read to be answered (or a call that needs
# the index) before it starts: the first read then has the process to itself.
BUILD_AFTER_FIRST_READ_SECONDS = 1.0
# Live bytes per segment are summed one segment at a time (in C) up to this many segments.
_COUNT_BY_SEGMENT = 8
_OWN_NAMES = frozenset({LOCK_NAME, QUARANTINE_DIR, GENERATION_NAME, CHECKPOINT_NAME, DELTA_NAME})


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector, then put back the caller's setting.

    An index is hundreds of thousands of objects and no cycle; the
    collector's passes over the rest of the actor's process (Ray's modules)
    took a third of the build at 100,000 entries (measured: 80 ms, 53 ms
    paused) and more the bigger the index.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _let_readers_in() -> None:
    time.sleep(0)  # releases the GIL to a thread waiting for it


class _Early(NamedTuple):
    """What the store reads before it builds the index: enough to find a tag's record."""

    checkpoint: Checkpoint | None
    deltas: list[Delta]
    tail: dict[str, Location | None]  # the records after the last delta (or the checkpoint); None: removed

    def candidates(self, tag: str, tag_bytes: bytes) -> list[Location]:
        """Where ``tag``'s record may be: the records after, else the deltas (newest first), else the checkpoint."""
        if tag in self.tail:
            location = self.tail[tag]
            return [] if location is None else [location]
        for delta in reversed(self.deltas):
            found, location = delta.find(tag, tag_bytes)
            if found:
                return [] if location is None else [location]
        return [] if self.checkpoint is None else self.checkpoint.locations(tag_bytes)


class EntryTooLarge(ValueError):
    """An entry larger than the store's whole budget; the message names the tag, its size and the budget."""


class EntryStore:
    """The entries of one cache directory, least recently used first.

    ``put`` appends one record to the log and returns once it is written (in
    the page cache): a put that returned survives the process being killed,
    and a record cut short by a kill is never read back as a value (its
    length and checksum give it away). Power-loss durability would need an
    ``fsync`` per write and is not provided.

    With ``background=True`` the index is loaded by a thread: ``get`` and
    ``in`` are answered as soon as the checkpoint's table and the records
    after it are read (a binary search of the table, no index needed);
    everything else waits for the index.
    """

    def __init__(
        self,
        directory: str,
        budget_bytes: int,
        secret: bytes | None = None,
        *,
        lock_wait: float = LOCK_WAIT_SECONDS,
        background: bool = False,
    ) -> None:
        self.directory = directory
        self.budget_bytes = budget_bytes
        self.evictions = 0
        self.quarantined = 0
        self.warm_start_seconds = 0.0
        self._secret = secret
        self._signed = secret is not None
        self._entries: OrderedDict[str, Location] = OrderedDict()
        self._total = 0  # bytes of the live records (what the budget counts)
        self._log_bytes = 0  # bytes of every segment, dead records included
        self._live: dict[int, int] = {}  # segment number -> bytes of its live records
        self._segments: dict[int, Segment] = {}
        self._active: Segment | None = None
        self._since_checkpoint = 0
        self._checkpointed_at = 0  # the segment of the last checkpoint's (or delta's) position
        self._checkpoint_path = os.path.join(directory, CHECKPOINT_NAME)
        self._delta_path = os.path.join(directory, DELTA_NAME)
        self._base: Base | None = None  # the checkpoint the deltas follow
        self._delta_rows = 0  # rows in the deltas since it
        self._delta_fd = -1
        self._dirty: set[str] = set()  # tags written, read or removed since the last checkpoint or delta
        self._quarantine = os.path.join(directory, QUARANTINE_DIR)
        # Before the index exists: the checkpoint's table, its deltas and the records after them.
        # Replaced in one assignment and read once per lookup: the build may end during a lookup.
        self._early: _Early | None = None
        prepare_directory(directory, self._quarantine)
        self._lock_fd = lock_directory(directory, lock_wait)
        try:
            self._generations = GenerationTable(directory)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._locatable = threading.Event()
        self._ready = threading.Event()
        self._build_now = threading.Event()  # a read was answered, or a call needs the index
        self._closed = False
        self._warm_start_error: BaseException | None = None
        if not background:
            self._build_now.set()
        if background:
            threading.Thread(target=self._warm_start_in_background, name="chia-cache-warm-start", daemon=True).start()
            return
        try:
            self._warm_start()
        except BaseException:
            self.close()
            raise

    def _warm_start_in_background(self) -> None:
        # Reads are served meanwhile by the thread that waits for the GIL: hand it over sooner than every 5 ms.
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, WARM_START_SWITCH_SECONDS))
        try:
            self._warm_start()
        except BaseException as exc:  # raised again by every call that needs the index
            logger.exception("cache warm start of %s failed", self.directory)
            self._warm_start_error = exc
        finally:
            sys.setswitchinterval(switch_interval)
            self._locatable.set()
            self._ready.set()

    @property
    def ready(self) -> bool:
        """Whether the index is loaded."""
        return self._ready.is_set()

    def _index(self) -> OrderedDict[str, Location]:
        if not self._ready.is_set():
            self._build_now.set()
            self._ready.wait()
        if self._warm_start_error is not None:
            raise self._warm_start_error
        return self._entries

    @property
    def total_bytes(self) -> int:
        """Bytes the live entries take on disk (what the budget counts)."""
        self._index()
        return self._total

    @property
    def log_bytes(self) -> int:
        """Bytes of every segment: the live entries plus dead records not yet compacted away."""
        self._index()
        return self._log_bytes

    # --- setup ------------------------------------------------------------------------

    def _warm_start(self) -> None:
        """Rebuild the index: the checkpoint, its deltas, the records after them, then any old-format entries."""
        began = time.perf_counter()
        names = os.listdir(self.directory)
        numbers = sorted(number for name in names if (number := segment_number(name)) is not None)
        checkpoint, deltas = self._load_checkpoint()
        if deltas:
            position = deltas[-1].position
        else:
            position = checkpoint.position if checkpoint is not None else (numbers[0] if numbers else 1, 0)
        self._checkpointed_at = position[0]
        for number in numbers:
            self._segments[number] = Segment(self.directory, number, append=number == numbers[-1])
        tail = self._replay_tail(position)
        legacy = [name for name in names if is_legacy_name(name)]
        self._early = _Early(checkpoint, deltas, dict(tail))
        if not legacy:
            self._locatable.set()
            waited = self._wait_for_first_read()
            if waited is None:  # closed before anything needed the index
                return
            began += waited  # warm_start_seconds is the work, not the wait
        with _collector_paused():
            self._build(names, checkpoint, deltas, tail, legacy)
        self.warm_start_seconds = time.perf_counter() - began  # before the calls waiting for the index read it
        self._ready.set()
        self._locatable.set()
        self._early = None
        logger.info(
            "cache warm start: %d entries, %d bytes in %s (%.3f s)",
            len(self._entries),
            self._total,
            self.directory,
            self.warm_start_seconds,
        )

    def _build(
        self,
        names: Sequence[str],
        checkpoint: Checkpoint | None,
        deltas: list[Delta],
        tail: list[tuple[str, Location | None]],
        legacy: list[str],
    ) -> None:
        """Build the index from what :meth:`_warm_start` read, migrate old-format entries, then checkpoint."""
        # Readers are served meanwhile: let them in between chunks.
        entries = checkpoint.entries(pause=_let_readers_in) if checkpoint is not None else OrderedDict()
        for delta in deltas:
            delta.apply(entries, pause=_let_readers_in)
        for tag, location in tail:
            entries.pop(tag, None)
            if location is not None:
                entries[tag] = location
        self._entries = entries
        self._dirty = {tag for tag, _location in tail}
        self._count_bytes()
        self._tidy(names)
        self._since_checkpoint = len(tail)
        if legacy:
            self._migrate(names)
        self._enforce_budget(keep=None)
        if checkpoint is None or self._checkpoint_due() or legacy:
            self._checkpoint(whole=checkpoint is None or bool(legacy))
        self._drop_dead_segments()
        if legacy:
            for name in legacy:
                self._unlink(os.path.join(self.directory, name))

    def _tidy(self, names: Sequence[str]) -> None:
        """Remove unfinished checkpoints and move foreign files aside."""
        for name in names:
            if name.startswith(TMP_PREFIX):  # a checkpoint never renamed into place
                self._unlink(os.path.join(self.directory, name))
            elif segment_number(name) is None and name not in _OWN_NAMES and not is_legacy_name(name):
                self._move_aside(name, "not a cache file (foreign file)")

    def _wait_for_first_read(self) -> float | None:
        """Let the first read have the process (and the GIL) to itself: the seconds waited, None once closed."""
        waiting = time.perf_counter()
        self._build_now.wait(BUILD_AFTER_FIRST_READ_SECONDS)
        return None if self._closed else time.perf_counter() - waiting

    def _load_checkpoint(self) -> tuple[Checkpoint | None, list[Delta]]:
        """The checkpoint and the deltas that follow it; ``(None, [])``: replay the whole log."""
        try:
            checkpoint = read_checkpoint(self._checkpoint_path)
        except (CheckpointProblem, OSError) as exc:
            # Every record is still in the log: replay it all.
            self._move_aside(CHECKPOINT_NAME, f"{exc}; replaying the whole log")
            checkpoint = None
        if checkpoint is None:
            if os.path.lexists(self._delta_path):
                self._move_aside(DELTA_NAME, "checkpoint deltas without their checkpoint; replaying the whole log")
            return None, []
        try:
            found = read_deltas(self._delta_path, checkpoint.base)
        except (CheckpointProblem, OSError) as exc:
            self._move_aside(DELTA_NAME, f"{exc}; replaying the whole log")
            self._move_aside(CHECKPOINT_NAME, "its deltas are damaged; replaying the whole log")
            return None, []
        self._base = checkpoint.base
        if found is None:
            return checkpoint, []
        if found.stale:  # a new checkpoint was written, and the process killed before it removed them
            logger.info("cache %s: removing the deltas of a checkpoint since replaced", self.directory)
            self._unlink(self._delta_path)
            return checkpoint, []
        if found.valid_bytes < found.size:  # the records after the delta before it are all in the log
            logger.info("cache %s: cutting off an unfinished last checkpoint delta", self.directory)
            os.truncate(self._delta_path, found.valid_bytes)
        self._delta_rows = sum(map(len, found.deltas))
        return checkpoint, found.deltas

    def _replay_tail(self, position: tuple[int, int]) -> list[tuple[str, Location | None]]:
        """What the records from ``position`` on do, in order: ``(tag, location)``, None for a removal."""
        changes: list[tuple[str, Location | None]] = []
        for number, segment in sorted(self._segments.items()):
            if number < position[0]:
                continue
            found = segment.scan(position[1] if number == position[0] else 0)
            for offset, length, kind, tag_bytes, signed in found.records:
                try:
                    tag = tag_bytes.decode()
                except UnicodeDecodeError:
                    self._quarantine_record(segment, offset, length, "holds a tag that is not UTF-8")
                    continue
                if kind == DELETE:
                    changes.append((tag, None))
                elif self._signed and not signed:
                    self._quarantine_record(segment, offset, length, "unsigned, but this cache requires signed entries")
                    changes.append((tag, None))
                else:
                    changes.append((tag, (number, offset, length, tag_hash(tag_bytes))))
            for begin, stop in found.damaged:
                self._quarantine_record(segment, begin, stop - begin, "not a record (damaged); skipped")
            if found.end < os.fstat(segment.fd).st_size:  # room reserved for appends, maybe a torn record in it
                if found.torn:  # a record cut short by a kill: it was never acknowledged
                    logger.info("cache segment %s: cutting off an unfinished last record", segment.path)
                segment.truncate(found.end)
            segment.size = found.end
        return changes

    def _migrate(self, names: Sequence[str]) -> None:
        """Copy the entries of an old one-file-per-entry directory into the log (their files go afterwards)."""
        try:
            with open(os.path.join(self.directory, LEGACY_INDEX_NAME), "rb") as stream:
                journal = stream.read()
        except FileNotFoundError:
            journal = b""
        migrated = 0
        for name in legacy_order(journal, names):
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as stream:
                    tag, payload = read_legacy_entry(name, stream.read(), self._secret)
            except FileNotFoundError:
                continue  # already migrated by a start that was killed before removing it
            except RecordProblem as problem:
                self._move_aside(name, str(problem))
                continue
            tag_bytes, size = self._record_size(tag, payload)
            if size > self.budget_bytes:
                logger.warning("cache entry %s (tag %r) is larger than the whole budget; not migrated", path, tag)
                continue
            self._append_put(tag, payload, tag_bytes, size)
            migrated += 1
        logger.info(
            "cache %s: migrated %d entries of the one-file-per-entry format into the log", self.directory, migrated
        )

    # --- entries ----------------------------------------------------------------------

    def __contains__(self, tag: object) -> bool:
        if not self._ready.is_set() and isinstance(tag, str):
            return self._early_get(tag) is not None
        return tag in self._index()

    def __len__(self) -> int:
        return len(self._index())

    def tags(self) -> list[str]:
        """Every tag, least recently used first."""
        return list(self._index())

    def touch(self, tag: str) -> None:
        """Mark ``tag`` as just used (LRU order)."""
        if self._ready.is_set() and tag in self._entries:
            self._entries.move_to_end(tag)
            self._dirty.add(tag)

    def entry_size(self, payload_len: int, tag: str) -> int:
        """Bytes an entry of this payload and tag takes on disk (what the budget counts)."""
        return record_length(len(tag.encode()), payload_len, self._signed)

    def _record_size(self, tag: str, payload: bytes | bytearray | memoryview) -> tuple[bytes, int]:
        """``tag`` encoded, and the bytes its record with ``payload`` takes (what :meth:`entry_size` says)."""
        tag_bytes = tag.encode()
        return tag_bytes, record_length(len(tag_bytes), memoryview(payload).nbytes, self._signed)

    def put(self, tag: str, payload: bytes | bytearray | memoryview) -> list[str]:
        """Store ``payload`` under ``tag``; return the tags evicted to keep the budget.

        Raises :class:`EntryTooLarge` when the entry alone is larger than the
        budget (nothing is written then).
        """
        self._index()
        tag_bytes = tag.encode()
        size = record_length(len(tag_bytes), memoryview(payload).nbytes, self._signed)
        if size > self.budget_bytes:
            raise EntryTooLarge(
                f"cache value for tag {tag!r} takes {size} bytes, more than the whole cache budget of "
                f"{self.budget_bytes} bytes; start the cache with a larger size or cache smaller values"
            )
        self._append_put(tag, payload, tag_bytes, size)
        evicted = self._enforce_budget(keep=tag) if self._total > self.budget_bytes else []
        # What _after_records would find due, in the cheapest test that rules out both
        if self._since_checkpoint >= CHECKPOINT_RECORDS or self._log_bytes - self._total > COMPACT_MIN_DEAD_BYTES:
            self._after_records()
        return evicted

    def get(self, tag: str) -> memoryview | None:
        """The payload stored under ``tag``, or None (missing, or moved aside as damaged)."""
        if not self._ready.is_set():
            return self._early_get(tag)
        entries = self._index()
        location = entries.get(tag)
        if location is None:
            return None
        number, offset, length, _hash = location
        segment = self._segments[number]
        try:
            payload = check_record(segment.read(offset, length), tag.encode(), self._secret)[2]
        except RecordProblem as problem:
            self._quarantine_record(segment, offset, length, str(problem))
            self._drop(tag)
            self._after_records()
            return None
        entries.move_to_end(tag)
        self._dirty.add(tag)
        return payload

    def _early_get(self, tag: str) -> memoryview | None:
        """``tag``'s payload before the index exists: the records after the last delta, its deltas, the checkpoint."""
        self._locatable.wait()
        early = self._early
        if early is None or self._ready.is_set():  # the index is built (or its build failed: get raises why)
            return self.get(tag)
        try:
            return self._early_lookup(early, tag)
        finally:
            self._build_now.set()  # the first read is answered: build the index now

    def _early_lookup(self, early: _Early, tag: str) -> memoryview | None:
        """What :meth:`_early_get` finds for ``tag``."""
        tag_bytes = tag.encode()
        for number, offset, length, _hash in early.candidates(tag, tag_bytes):
            # Its own descriptor: the warm start thread may close segments meanwhile.
            try:
                fd = os.open(os.path.join(self.directory, segment_name(number)), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                data = os.pread(fd, length, offset)
            finally:
                os.close(fd)
            with contextlib.suppress(RecordProblem):  # damaged: a miss; the index moves it aside on a later read
                return check_record(memoryview(data), tag_bytes, self._secret)[2]
        return None

    def remove(self, tag: str) -> bool:
        """Delete ``tag``'s entry; False when there was none."""
        if tag not in self._index():
            return False
        self._drop(tag)
        self._after_records()
        return True

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        entries = self._index()
        count = len(entries)
        entries.clear()
        self._generations.bump_all()
        self._total = 0
        self._live = {}
        self._roll()
        self._checkpoint(whole=True)
        self._drop_dead_segments()
        return count

    def checkpoint(self) -> None:
        """Write the index checkpoint now (waits for the index): the next start replays no record.

        It also keeps the entries' recency as of now, which a start after a
        crash knows only as of the last checkpoint. Costs a rewrite of the
        index: ~30 ms at 100,000 entries.
        """
        if self._closed:
            raise ValueError(f"the cache store of {self.directory} is closed")
        self._index()
        self._checkpoint(whole=True)
        self._drop_dead_segments()

    def stamp(self, tag: str) -> Stamp:
        """``tag``'s generation now: equal stamps mean the entry did not change in between."""
        return self._generations.stamp(tag)

    def close(self) -> None:
        """Release the segments, the generation table and the directory lock."""
        self._closed = True
        self._build_now.set()
        self._generations.close()
        for segment in self._segments.values():
            segment.close()
        self._segments.clear()
        self._active = None
        self._close_deltas()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # --- internals ----------------------------------------------------------------------

    def _count_bytes(self) -> None:
        # One pass over the OrderedDict (its iteration is the slow part), then over plain lists.
        rows = list(self._entries.values())
        numbers = [row[0] for row in rows]
        present = set(numbers)
        if not present <= self._segments.keys():
            lost = [tag for tag, location in self._entries.items() if location[0] not in self._segments]
            for tag in lost:
                logger.warning(
                    "cache entry for tag %r: its segment is missing from %s; dropping it", tag, self.directory
                )
                del self._entries[tag]
                self._dirty.add(tag)  # the next delta removes it
            rows = [row for row in rows if row[0] in self._segments]
            numbers = [row[0] for row in rows]
            present &= self._segments.keys()
        lengths = [row[2] for row in rows]
        self._live = dict.fromkeys(self._segments, 0)
        if len(present) <= _COUNT_BY_SEGMENT:  # the usual case: one pass in C per segment
            for number in present:
                self._live[number] = sum(itertools.compress(lengths, map(number.__eq__, numbers)))
        else:
            for number, length in zip(numbers, lengths, strict=True):
                self._live[number] += length
        self._total = sum(lengths)
        self._log_bytes = sum(segment.size for segment in self._segments.values())

    def _writable(self, size: int) -> Segment:
        active = self._active
        if active is None:
            last = max(self._segments, default=0)
            if last and self._segments[last].size < SEGMENT_BYTES:
                active = self._segments[last]
                if not active.writable:
                    active.close()
                    active = self._segments[last] = Segment(self.directory, last, append=True)
                self._active = active
            else:
                active = self._roll()
        elif active.size and active.size + size > SEGMENT_BYTES:
            active = self._roll()
        return active

    def _roll(self) -> Segment:
        """Start a new active segment."""
        if self._active is not None:
            self._active.seal()
        number = max(self._segments, default=0) + 1
        active = self._active = self._segments[number] = Segment(self.directory, number, append=True)
        self._live[number] = 0
        return active

    def _append_put(self, tag: str, payload: bytes | bytearray | memoryview, tag_bytes: bytes, size: int) -> None:
        """Append ``tag``'s record; ``tag_bytes`` and ``size`` are what :meth:`_record_size` gives."""
        parts = encode_record(PUT, tag_bytes, payload, self._secret)
        segment = self._active
        if segment is None or segment.size + size > SEGMENT_BYTES:  # the usual case skips the call
            segment = self._writable(size)
        offset = segment.append(parts)
        self._log_bytes += size
        self._since_checkpoint += 1
        previous = self._entries.pop(tag, None)
        if previous is not None:
            self._forget(previous)
        self._dirty.add(tag)
        hashed = tag_hash(tag_bytes)
        self._entries[tag] = (segment.number, offset, size, hashed)
        self._live[segment.number] += size
        self._total += size
        self._generations.bump_hash(hashed)

    def _forget(self, location: Location) -> None:
        self._live[location[0]] -= location[2]
        self._total -= location[2]

    def _drop(self, tag: str) -> None:
        location = self._entries.pop(tag, None)
        self._generations.bump(tag)
        if location is None:
            return
        self._dirty.add(tag)
        self._forget(location)
        tag_bytes = tag.encode()
        size = record_length(len(tag_bytes), 0, self._signed)
        self._writable(size).append(encode_record(DELETE, tag_bytes, b"", self._secret))
        self._log_bytes += size
        self._since_checkpoint += 1

    def _enforce_budget(self, keep: str | None) -> list[str]:
        evicted = []
        while self._total > self.budget_bytes and self._entries:
            oldest = next(iter(self._entries))
            if oldest == keep:
                break
            self._drop(oldest)
            self.evictions += 1
            evicted.append(oldest)
        return evicted

    def _after_records(self) -> None:
        """Compact or checkpoint when the records appended since call for it."""
        dead = self._log_bytes - self._total
        if dead > max(self._total, COMPACT_MIN_DEAD_BYTES):
            self._compact()
        elif self._checkpoint_due():
            self._checkpoint()

    def _checkpoint_due(self) -> bool:
        since = self._since_checkpoint
        return since >= CHECKPOINT_RECORDS and min(len(self._dirty), len(self._entries)) <= since * CHECKPOINT_SHARE

    def _compact(self) -> None:
        """Copy the live records of mostly dead segments to the active one, checkpoint, delete those segments."""
        active = self._active
        if active is not None and self._live.get(active.number, 0) < active.size:
            self._roll()
        victims = {
            number
            for number, segment in self._segments.items()
            if segment is not self._active and self._live.get(number, 0) * 2 <= segment.size
        }
        for tag, (number, offset, length, hashed) in list(self._entries.items()):
            if number not in victims:
                continue
            source = self._segments[number]
            data = source.read(offset, length)
            try:
                check_record(data, tag.encode(), self._secret)
            except RecordProblem as problem:
                self._quarantine_record(source, offset, length, str(problem))
                self._drop(tag)
                continue
            target = self._writable(length)
            moved = target.append([data])
            self._log_bytes += length
            self._live[number] -= length
            self._live[target.number] += length
            self._entries[tag] = (target.number, moved, length, hashed)  # keeps its place in the LRU order
        self._checkpoint(whole=True)  # entries moved without moving in the LRU order: no delta holds that
        self._drop_dead_segments()

    def _checkpoint(self, *, whole: bool = False) -> None:
        """Append a delta of what changed since the last checkpoint, or write the whole index.

        The whole index when ``whole``, when there is no checkpoint yet, or
        when the deltas would add up to more rows than the index has.
        """
        active = self._active if self._active is not None else self._writable(0)
        position = (active.number, active.size)
        base = self._base
        rows = None if whole or base is None else self._changed_rows()
        if base is None or rows is None or self._delta_rows + len(rows) > max(len(self._entries), CHECKPOINT_RECORDS):
            self._base = write_checkpoint(self._checkpoint_path, self._entries, position)
            self._close_deltas()
            self._unlink(self._delta_path)  # killed before this, the next start finds them stale
            self._delta_rows = 0
        else:
            if self._delta_fd < 0:
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                self._delta_fd = os.open(self._delta_path, flags, 0o600)
            append_delta(self._delta_fd, base, position, rows)
            self._delta_rows += len(rows)
        self._dirty = set()
        self._checkpointed_at = active.number
        self._since_checkpoint = 0

    def _changed_rows(self) -> list[Row] | None:
        """A delta's rows: the removed tags, then the changed entries in LRU order.

        None when those are not the index's last entries (they always are:
        each moved to the end when it changed): write the whole index then.
        """
        dirty, entries = self._dirty, self._entries
        removed: list[Row] = [(tag, None) for tag in dirty if tag not in entries]
        changed: list[Row] = list(itertools.islice(reversed(entries.items()), len(dirty) - len(removed)))
        if not all(tag in dirty for tag, _location in changed):
            return None
        changed.reverse()
        return removed + changed

    def _close_deltas(self) -> None:
        if self._delta_fd >= 0:
            os.close(self._delta_fd)
            self._delta_fd = -1

    def _drop_dead_segments(self) -> None:
        """Delete the segments no live entry and no record after the checkpoint needs."""
        for number, segment in list(self._segments.items()):
            if segment is self._active or self._live.get(number, 0) > 0:
                continue
            if number >= self._checkpointed_at:  # may hold records a replay from the checkpoint needs
                continue
            segment.close()
            self._unlink(segment.path)
            self._log_bytes -= segment.size
            del self._segments[number]
            self._live.pop(number, None)

    def _quarantine_record(self, segment: Segment, offset: int, length: int, reason: str) -> None:
        target = os.path.join(self._quarantine, f"{os.path.basename(segment.path)}@{offset}.{time.time_ns()}")
        try:
            data = os.pread(segment.fd, length, offset)
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(descriptor, data)
            finally:
                os.close(descriptor)
        except OSError as exc:
            logger.warning(
                "cache record at %s offset %d is %s and could not be copied aside (%s)",
                segment.path,
                offset,
                reason,
                exc,
            )
        else:
            logger.warning("cache record at %s offset %d is %s; copied it to %s", segment.path, offset, reason, target)
        self.quarantined += 1

    def _move_aside(self, name: str, reason: str) -> None:
        source = os.path.join(self.directory, name)
        target = os.path.join(self._quarantine, f"{name}.{time.time_ns()}")
        try:
            os.replace(source, target)
        except OSError as exc:
            logger.warning("cache file %s is %s and could not be moved aside (%s); deleting it", source, reason, exc)
            self._unlink(source)
        else:
            logger.warning("cache file %s is %s; moved it to %s", source, reason, target)
        self.quarantined += 1

    @staticmethod
    def _unlink(path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
