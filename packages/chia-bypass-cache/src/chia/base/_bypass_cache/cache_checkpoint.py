"""The cache index checkpoint: every live entry's place in the segment log, written atomically.

Owns the ``checkpoint`` file. It records, at one position of the log, each
live entry in least-recently-used order: four columns (segment, offset,
record length, tag hash) and the tags. A tag is found by a byte search of
the hash column, before any in-memory index is built (what lets a restarted
cache answer its first reads at once); a warm start loads the rest in the
background and replays only the records after the position. Written to a
temporary file and renamed into place; a header checksum covers the rest.
"""

from __future__ import annotations

import contextlib
import itertools
import marshal
import os
import struct
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from chia.base._bypass_cache.cache_log import Location, tag_hash, unpack_versioned

__all__ = ["CHECKPOINT_NAME", "TMP_PREFIX", "Checkpoint", "CheckpointProblem", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_NAME = "checkpoint"
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
# Entries are built (and tags unmarshalled) in chunks this long: each is one C call holding the GIL.
_CHUNK = 2048


def _no_pause() -> None:
    return None


class CheckpointProblem(ValueError):
    """A checkpoint that cannot be used; the message says why."""


@dataclass(slots=True)
class Checkpoint:
    """A checkpoint as read: the log position it covers and its entries' columns, least recently used first."""

    position: tuple[int, int]
    hash_bytes: bytes
    columns: tuple[memoryview, memoryview, memoryview, memoryview]  # segment, offset, length, hash
    tags_blob: memoryview

    def locations(self, tag: bytes) -> list[Location]:
        """Every location whose tag has the hash of ``tag`` (usually one; the record tells which is ``tag``)."""
        wanted = tag_hash(tag)
        pattern = _HASH.pack(wanted)
        segments, offsets, lengths, _hashes = self.columns
        found: list[Location] = []
        # A byte search of the hash column (in C), keeping the matches on a column boundary.
        at = self.hash_bytes.find(pattern)
        while at >= 0:
            index, misaligned = divmod(at, _HASH.size)
            if not misaligned:
                found.append((segments[index], offsets[index], lengths[index], wanted))
            at = self.hash_bytes.find(pattern, at + 1)
        return found

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
    ends = list(itertools.accumulate(count * size for size in _COLUMN_BYTES))
    segments = body[: ends[0]].cast("I")
    offsets = body[ends[0] : ends[1]].cast("Q")
    lengths = body[ends[1] : ends[2]].cast("Q")
    hashes = body[ends[2] : ends[3]]
    return Checkpoint((segment, offset), bytes(hashes), (segments, offsets, lengths, hashes.cast("I")), body[ends[3] :])


def write_checkpoint(path: str, entries: OrderedDict[str, Location], position: tuple[int, int]) -> None:
    """Replace the checkpoint at ``path`` with ``entries`` (least recently used first) at ``position``."""
    rows = list(entries.values())
    # One comprehension per column: about half the time of zip(*rows), which calls zip with every row.
    parts = [array(code, [row[index] for row in rows]).tobytes() for index, code in enumerate(_COLUMN_CODES)]
    tags = list(entries)
    parts.append(marshal.dumps([marshal.dumps(tags[start : start + _CHUNK]) for start in range(0, len(tags), _CHUNK)]))
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
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
