"""Generation counters of the cache's entries, shared through a memory-mapped file.

Owns the ``generation`` file in the cache directory. The cache actor bumps a
counter whenever an entry is written, evicted, removed or dropped as damaged
(one counter per hash slot of the tag, plus one for ``flush``), and stamps
each hit with the counters' values. A process on the same node that still
holds an earlier hit's value compares its stamp with the file: equal stamps
mean the entry has not changed since, so the value can be served again
without asking the actor (see :mod:`chia.base._bypass_cache.cache_memo`).

Layout (little-endian): magic, incarnation (random per actor, never 0), flush
counter, then ``SLOTS`` per-slot counters, all 8 bytes.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import secrets
import struct
import zlib

__all__ = ["GENERATION_NAME", "GenerationTable", "GenerationView", "Stamp", "slot_offset"]

GENERATION_NAME = "generation"
MAGIC = b"CHIAGEN1"
SLOTS = 4096
_COUNTER = struct.Struct("<Q")
_HEAD = struct.Struct("<8sQQ")
_SIZE = _HEAD.size + SLOTS * _COUNTER.size

Stamp = tuple[int, int, int]
"""(incarnation, flush counter, slot counter) of one tag at one moment."""


def slot_offset(tag: str) -> int:
    """Where ``tag``'s counter sits in the table."""
    # crc32, not hash(): every process must agree on the slot.
    return _hash_offset(zlib.crc32(tag.encode()))


def _hash_offset(hashed: int) -> int:
    return _HEAD.size + (hashed % SLOTS) * _COUNTER.size


class GenerationTable:
    """The writer side, owned by the cache actor (one per directory, under its lock)."""

    def __init__(self, directory: str) -> None:
        path = os.path.join(directory, GENERATION_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self.incarnation = secrets.randbits(63) | 1
        self._map[_HEAD.size :] = bytes(_SIZE - _HEAD.size)
        _HEAD.pack_into(self._map, 0, MAGIC, self.incarnation, 0)

    def bump(self, tag: str) -> None:
        """Mark ``tag``'s entry as changed."""
        self.bump_hash(zlib.crc32(tag.encode()))

    def bump_hash(self, hashed: int) -> None:
        """Mark the entry whose tag's crc32 (the log's ``tag_hash``) is ``hashed`` as changed."""
        offset = _hash_offset(hashed)
        _COUNTER.pack_into(self._map, offset, _COUNTER.unpack_from(self._map, offset)[0] + 1)

    def bump_all(self) -> None:
        """Mark every entry as changed (flush)."""
        flushes = _HEAD.unpack_from(self._map, 0)[2]
        _HEAD.pack_into(self._map, 0, MAGIC, self.incarnation, flushes + 1)

    def stamp(self, tag: str) -> Stamp:
        """The counters ``tag``'s entry has now."""
        return (
            self.incarnation,
            _HEAD.unpack_from(self._map, 0)[2],
            _COUNTER.unpack_from(self._map, slot_offset(tag))[0],
        )

    def close(self) -> None:
        """Unmap the file (it stays: readers tell a newer actor by the incarnation)."""
        self._map.close()


class GenerationView:
    """The reader side: a read-only map of another process's table, on the same node."""

    def __init__(self, directory: str, lock_name: str) -> None:
        fd = os.open(os.path.join(directory, GENERATION_NAME), os.O_RDONLY | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size != _SIZE:
                raise ValueError(f"{directory}/{GENERATION_NAME} is not a generation table")
            self._map = mmap.mmap(fd, _SIZE, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        if _HEAD.unpack_from(self._map, 0)[0] != MAGIC:
            self._map.close()
            raise ValueError(f"{directory}/{GENERATION_NAME} is not a generation table")
        self._lock_fd = os.open(os.path.join(directory, lock_name), os.O_RDONLY | os.O_CLOEXEC)

    def stamp(self, tag: str) -> Stamp:
        """The counters ``tag``'s entry has now."""
        return self.stamp_at(slot_offset(tag))

    def stamp_at(self, slot: int) -> Stamp:
        """The counters of the entries whose :func:`slot_offset` is ``slot``, now."""
        _, incarnation, flushes = _HEAD.unpack_from(self._map, 0)
        return incarnation, flushes, _COUNTER.unpack_from(self._map, slot)[0]

    def writer_alive(self) -> bool:
        """Whether a cache actor holds the directory lock (a killed one's lock went with its process)."""
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        return False

    def close(self) -> None:
        """Release the map and the lock file."""
        self._map.close()
        os.close(self._lock_fd)
