"""The cache index checkpoint: every live entry's place in the segment log, and the changes since.

Owns the ``checkpoint`` and ``checkpoint.delta`` files. The checkpoint
records, at one position of the log, each live entry in least-recently-used
order: four columns (segment, offset, record length, tag hash) and the tags.
A tag is found by a byte search of the hash column, before any in-memory
index is built (what lets a restarted cache answer its first reads at once);
a warm start loads the rest in the background and replays only the records
after the position. Written to a temporary file and renamed into place; a
header checksum covers the rest.

Rewriting the whole index costs more the bigger the cache, so between two
checkpoints the store appends **deltas** to ``checkpoint.delta``: each holds,
at a later position of the log, the rows of the entries that changed since
the delta before (written, read, or removed: a row whose segment is
:data:`REMOVED`), in the same columns. Each names the checkpoint it follows
(its entry count, position and checksum), so deltas left behind by a
checkpoint that replaced them are told apart and dropped. A delta cut short
by a kill is the file's last bytes and is cut off: the log still holds every
record after the delta before it.
"""

from __future__ import annotations

import contextlib
import itertools
import marshal
import os
import struct
import zlib
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from chia.base._bypass_cache.cache_log import Location, tag_hash, unpack_versioned

__all__ = [
    "CHECKPOINT_NAME",
    "DELTA_NAME",
    "REMOVED",
    "TMP_PREFIX",
    "Base",
    "Checkpoint",
    "CheckpointProblem",
    "Delta",
    "DeltaFile",
    "Row",
    "append_delta",
    "read_checkpoint",
    "read_deltas",
    "write_checkpoint",
]

CHECKPOINT_NAME = "checkpoint"
DELTA_NAME = "checkpoint.delta"
TMP_PREFIX = ".tmp-"
MAGIC = b"CHIACKP1"
VERSION = 1
# magic, version, entries, position (segment, offset), crc32 of the rest
HEAD = struct.Struct("<8sIIQQI")
# The entries' columns, in LRU order: segment (u32), offset (u64), record length (u64), tag hash (u32).
_COLUMN_CODES = ("I", "Q", "Q", "I")
_COLUMN_BYTES = (4, 8, 8, 4)
_ROW_BYTES = sum(_COLUMN_BYTES)
_HASH = struct.Struct("=I")
DELTA_MAGIC = b"CHIADLT1"
DELTA_VERSION = 1
# magic, version, rows, the checkpoint it follows (entries, position, crc32), its position, body bytes, crc32 of the
# body, crc32 of the header's bytes before it (a header is never trusted: a kill leaves a delta short, not wrong)
DELTA_HEAD = struct.Struct("<8sIIIQQIQQQII")
# The segment column of a row that removes its tag (segments are numbered from 1).
REMOVED = 0
# Entries are built (and tags unmarshalled) in chunks this long: each is one C call holding the GIL.
_CHUNK = 2048


def _no_pause() -> None:
    return None


class CheckpointProblem(ValueError):
    """A checkpoint (or its deltas) that cannot be used; the message says why."""


class Base(NamedTuple):
    """What names a checkpoint to its deltas: its entry count, its position in the log and its checksum."""

    entries: int
    segment: int
    offset: int
    crc: int


Row = tuple[str, Location | None]  # a delta's row: the entry's location, None when the tag was removed


Columns = tuple[memoryview, memoryview, memoryview, memoryview]  # segment, offset, length, hash


def _table(body: memoryview, count: int) -> tuple[bytes, Columns, memoryview]:
    """The hash column's bytes (for a byte search), the four columns of ``count`` rows, the tags after them."""
    ends = list(itertools.accumulate(count * size for size in _COLUMN_BYTES))
    segments = body[: ends[0]].cast("I")
    offsets = body[ends[0] : ends[1]].cast("Q")
    lengths = body[ends[1] : ends[2]].cast("Q")
    hashes = body[ends[2] : ends[3]]
    return bytes(hashes), (segments, offsets, lengths, hashes.cast("I")), body[ends[3] :]


def _pack(locations: list[Location], tags: bytes) -> list[bytes]:
    """The column parts of ``locations`` followed by ``tags`` (marshalled): what follows a header."""
    # One comprehension per column: about half the time of zip(*rows), which calls zip with every row.
    parts = [array(code, [row[index] for row in locations]).tobytes() for index, code in enumerate(_COLUMN_CODES)]
    parts.append(tags)
    return parts


def _crc(parts: list[bytes]) -> int:
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return crc


def _rows_with_hash(hash_bytes: bytes, wanted: int) -> Iterator[int]:
    """The rows whose tag hash is ``wanted``: a byte search of the hash column (in C), on column boundaries."""
    pattern = _HASH.pack(wanted)
    at = hash_bytes.find(pattern)
    while at >= 0:
        index, misaligned = divmod(at, _HASH.size)
        if not misaligned:
            yield index
        at = hash_bytes.find(pattern, at + 1)


@dataclass(slots=True)
class Checkpoint:
    """A checkpoint as read: the log position it covers and its entries' columns, least recently used first."""

    position: tuple[int, int]
    hash_bytes: bytes
    columns: Columns
    tags_blob: memoryview
    base: Base

    def locations(self, tag: bytes) -> list[Location]:
        """Every location whose tag has the hash of ``tag`` (usually one; the record tells which is ``tag``)."""
        wanted = tag_hash(tag)
        segments, offsets, lengths, _hashes = self.columns
        return [
            (segments[index], offsets[index], lengths[index], wanted)
            for index in _rows_with_hash(self.hash_bytes, wanted)
        ]

    def entries(self, pause: Callable[[], None] = _no_pause) -> OrderedDict[str, Location]:
        """Every entry, least recently used first; ``pause()`` runs between chunks (to let other threads in)."""
        chunks = marshal.loads(self.tags_blob)
        locations = zip(*self.columns, strict=True)
        entries: OrderedDict[str, Location] = OrderedDict()
        for chunk in chunks:
            tags = marshal.loads(chunk)
            entries.update(zip(tags, itertools.islice(locations, len(tags)), strict=True))
            pause()
        return entries


def read_checkpoint(path: str) -> Checkpoint | None:
    """The checkpoint at ``path``; None when there is none; :class:`CheckpointProblem` when it is damaged."""
    try:
        with open(path, "rb", buffering=0) as stream:
            data = memoryview(stream.read())
    except FileNotFoundError:
        return None
    _magic, _version, count, segment, offset, crc = unpack_versioned(
        data, HEAD, MAGIC, VERSION, "a cache checkpoint", CheckpointProblem
    )
    body = data[HEAD.size :]
    if zlib.crc32(body) != crc:
        raise CheckpointProblem("checksum mismatch (corrupt)")
    if len(body) < count * _ROW_BYTES:
        raise CheckpointProblem(f"truncated ({len(data)} bytes for {count} entries)")
    return Checkpoint((segment, offset), *_table(body, count), Base(count, segment, offset, crc))


def write_checkpoint(path: str, entries: OrderedDict[str, Location], position: tuple[int, int]) -> Base:
    """Replace the checkpoint at ``path`` with ``entries`` (least recently used first) at ``position``."""
    tags = list(entries)
    chunks = marshal.dumps([marshal.dumps(tags[start : start + _CHUNK]) for start in range(0, len(tags), _CHUNK)])
    parts = _pack(list(entries.values()), chunks)
    crc = _crc(parts)
    head = HEAD.pack(MAGIC, VERSION, len(entries), position[0], position[1], crc)
    temporary = os.path.join(os.path.dirname(path), f"{TMP_PREFIX}{os.path.basename(path)}-{os.getpid()}")
    try:
        with open(temporary, "wb") as stream:
            os.fchmod(stream.fileno(), 0o600)
            stream.write(head)
            for part in parts:
                stream.write(part)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return Base(len(entries), position[0], position[1], crc)


# --- deltas -----------------------------------------------------------------------------


@dataclass(slots=True)
class Delta:
    """A delta as read: the log position it covers and its rows' columns, in the order they apply."""

    position: tuple[int, int]
    hash_bytes: bytes
    columns: Columns  # a segment of REMOVED: the tag was removed
    tags_blob: memoryview
    _tags: list[str] | None = None

    def __len__(self) -> int:
        return len(self.columns[0])

    def tags(self) -> list[str]:
        if self._tags is None:
            self._tags = marshal.loads(self.tags_blob)
        return self._tags

    def find(self, tag: str, tag_bytes: bytes) -> tuple[bool, Location | None]:
        """``(True, location)`` when this delta has a row for ``tag`` (location None: removed), else ``(False, None)``.

        ``tag_bytes`` is ``tag`` encoded.
        """
        segments, offsets, lengths, _hashes = self.columns
        wanted = tag_hash(tag_bytes)
        for index in _rows_with_hash(self.hash_bytes, wanted):
            if self.tags()[index] == tag:
                segment = segments[index]
                return True, None if segment == REMOVED else (segment, offsets[index], lengths[index], wanted)
        return False, None

    def apply(self, entries: OrderedDict[str, Location], pause: Callable[[], None] = _no_pause) -> None:
        """Apply the rows to ``entries``: removed tags go, the others move to the end with their new location.

        ``pause()`` runs between chunks of rows (to let other threads in).
        """
        tags = self.tags()
        for start in range(0, len(tags), _CHUNK):
            chunk = tags[start : start + _CHUNK]
            columns = [column[start : start + _CHUNK] for column in self.columns]
            deque(map(entries.pop, chunk, itertools.repeat(None)), maxlen=0)  # each tag's old place, in C
            kept = columns[0]
            located = itertools.compress(zip(*columns, strict=True), kept)
            entries.update(zip(itertools.compress(chunk, kept), located, strict=True))
            pause()


@dataclass(slots=True)
class DeltaFile:
    """``checkpoint.delta`` as read: the deltas that follow the checkpoint, in order, and what else it held."""

    deltas: list[Delta]
    valid_bytes: int  # the deltas' bytes; anything after is a delta cut short by a kill
    size: int
    stale: bool  # written after another checkpoint, which a newer one replaced: none apply


def read_deltas(path: str, base: Base) -> DeltaFile | None:
    """The deltas at ``path`` that follow the checkpoint ``base``; None when there is no file.

    Raises :class:`CheckpointProblem` for bytes that are no delta before the
    file's end (a delta cut short at the end is a kill's, reported by
    ``valid_bytes``).
    """
    try:
        with open(path, "rb", buffering=0) as stream:
            data = memoryview(stream.read())
    except FileNotFoundError:
        return None
    deltas: list[Delta] = []
    at = 0
    while len(data) - at >= DELTA_HEAD.size:
        _magic, _version, rows, *follows, segment, offset, length, crc, head_crc = unpack_versioned(
            data[at:], DELTA_HEAD, DELTA_MAGIC, DELTA_VERSION, "a cache checkpoint delta", CheckpointProblem
        )
        if zlib.crc32(data[at : at + DELTA_HEAD.size - 4]) != head_crc or length < rows * _ROW_BYTES:
            raise CheckpointProblem(f"the delta header at byte {at} is corrupt (checksum mismatch)")
        body = data[at + DELTA_HEAD.size : at + DELTA_HEAD.size + length]
        if len(body) < length:
            break  # cut short
        if zlib.crc32(body) != crc:
            raise CheckpointProblem(f"the delta at byte {at} is corrupt (checksum mismatch)")
        if Base(*follows) != base:
            if at == 0:
                return DeltaFile([], 0, len(data), stale=True)
            raise CheckpointProblem(f"the delta at byte {at} follows another checkpoint than the deltas before it")
        deltas.append(Delta((segment, offset), *_table(body, rows)))
        at += DELTA_HEAD.size + length
    return DeltaFile(deltas, at, len(data), stale=False)


def append_delta(fd: int, base: Base, position: tuple[int, int], rows: list[Row]) -> None:
    """Append a delta of ``rows`` at ``position`` following ``base`` to the delta file open (``O_APPEND``) at ``fd``.

    One ``write`` of the whole delta; if it fails, the file is cut back to
    what it was, so no partial delta is left before the next one.
    """
    tags = [tag for tag, _location in rows]
    locations = [(REMOVED, 0, 0, tag_hash(tag.encode())) if location is None else location for tag, location in rows]
    parts = _pack(locations, marshal.dumps(tags))
    length = sum(map(len, parts))
    head = DELTA_HEAD.pack(DELTA_MAGIC, DELTA_VERSION, len(rows), *base, *position, length, _crc(parts), 0)
    head = head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))
    data = memoryview(b"".join([head, *parts]))
    size = os.fstat(fd).st_size
    try:
        while data:
            data = data[os.write(fd, data) :]
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise
