"""The cache's append-only segment log: record format, appends, reads and the scan of a segment.

Owns the ``segment-<n>.log`` files. A record is a fixed header (magic, kind,
flags, tag length, payload length, CRC32 of everything else), the tag, an
optional HMAC-SHA256 and the payload. ``PUT`` records hold values,
``DELETE`` records end a tag's entry. A record is appended by one copy into
room reserved ahead of it in the file (see :class:`Segment`): a writer
killed mid-record leaves a short or half-copied last record, which the scan
reports and the store cuts off. No index, no Ray: values stay opaque bytes
here.
"""

from __future__ import annotations

import hashlib
import hmac
import mmap
import os
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DELETE",
    "MAC_SIZE",
    "MAX_TAG_BYTES",
    "PUT",
    "RECORD",
    "Location",
    "RecordProblem",
    "Scan",
    "ScannedRecord",
    "Segment",
    "check_record",
    "encode_record",
    "record_length",
    "segment_name",
    "segment_number",
    "tag_hash",
    "unpack_versioned",
]

RECORD_MAGIC = b"CCL1"
# magic, kind, flags, reserved, tag length, payload length, header crc32 (the fields before it and the tag),
# record crc32 (continuing the header's over the mac and the payload)
RECORD = struct.Struct("<4sBBHIQII")
_HEAD_COVERED = RECORD.size - 8
_FIELDS = struct.Struct("<4sBBHIQ")
PUT = 1
DELETE = 2
FLAG_SIGNED = 0x1
MAC_SIZE = hashlib.sha256().digest_size
MAX_TAG_BYTES = 1 << 20
_JOIN_BELOW = 64 << 10
# The active segment's room grows with it: by its size, from 64 KiB up to 1 MiB at a time.
_ROOM_MIN = 64 << 10
_ROOM_MAX_STEP = 1 << 20
_HAS_FALLOCATE = hasattr(os, "posix_fallocate")
SEGMENT_PREFIX = "segment-"
SEGMENT_SUFFIX = ".log"
_SEGMENT_NAME = re.compile(r"segment-(\d{8,})\.log")

Location = tuple[int, int, int, int]
"""(segment number, offset, record length, :func:`tag_hash` of the tag) of one record."""


def tag_hash(tag: bytes) -> int:
    """A hash of a tag that every process agrees on (crc32; equal hashes are told apart by the record's tag)."""
    return zlib.crc32(tag)


def segment_name(number: int) -> str:
    """The file name of segment ``number``."""
    return f"{SEGMENT_PREFIX}{number:08d}{SEGMENT_SUFFIX}"


def segment_number(name: str) -> int | None:
    """The number of a segment file name, or None for any other name."""
    match = _SEGMENT_NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def _mac(
    secret: bytes, head: bytes | memoryview, tag: bytes | memoryview, payload: bytes | bytearray | memoryview
) -> bytes:
    signer = hmac.new(secret, head, hashlib.sha256)
    signer.update(tag)
    signer.update(payload)
    return signer.digest()


def encode_record(
    kind: int, tag: bytes, payload: bytes | bytearray | memoryview, secret: bytes | None
) -> list[bytes | bytearray | memoryview]:
    """The parts of one record, in order."""
    flags = 0 if secret is None else FLAG_SIGNED
    fields = _FIELDS.pack(RECORD_MAGIC, kind, flags, 0, len(tag), memoryview(payload).nbytes)
    head_crc = zlib.crc32(tag, zlib.crc32(fields))
    mac = b"" if secret is None else _mac(secret, fields, tag, payload)
    crc = zlib.crc32(payload, zlib.crc32(mac, head_crc))
    return [fields + _CRCS.pack(head_crc, crc), tag, mac, payload]


_CRCS = struct.Struct("<II")


def record_length(tag_len: int, payload_len: int, signed: bool) -> int:
    """Bytes one record takes in its segment."""
    return RECORD.size + tag_len + (MAC_SIZE if signed else 0) + payload_len


class RecordProblem(ValueError):
    """A record that must not be served; the message says why."""


def unpack_versioned(
    data: bytes | memoryview, header: struct.Struct, magic: bytes, version: int, what: str, problem: type[ValueError]
) -> tuple[Any, ...]:
    """The fields of ``header`` (magic first, format version second) at the start of ``data``, checked.

    Raises ``problem`` naming ``what`` the data should be when it is too short,
    has another magic or another version.
    """
    if len(data) < header.size:
        raise problem(f"truncated ({len(data)} bytes, shorter than the header of {what})")
    fields = header.unpack_from(data)
    if fields[0] != magic:
        raise problem(f"not {what} (bad magic)")
    if fields[1] != version:
        raise problem(f"unsupported format version {fields[1]} of {what} (this cache reads {version})")
    return fields


def check_record(data: memoryview, tag: bytes | None, secret: bytes | None) -> tuple[int, bytes, memoryview]:
    """Verify a whole record; return ``(kind, tag, payload)``, or raise :class:`RecordProblem`.

    ``tag`` (when given) must be the record's. With a ``secret`` the record
    must be signed with it.
    """
    if len(data) < RECORD.size:
        raise RecordProblem(f"truncated ({len(data)} bytes, shorter than a record header)")
    magic, kind, flags, _reserved, tag_len, payload_len, head_crc, crc = RECORD.unpack_from(data)
    if magic != RECORD_MAGIC:
        raise RecordProblem("not a cache record (bad magic)")
    signed = bool(flags & FLAG_SIGNED)
    expected = record_length(tag_len, payload_len, signed)
    if len(data) != expected:
        raise RecordProblem(f"truncated ({len(data)} of {expected} bytes)")
    offset = RECORD.size
    stored_tag = bytes(data[offset : offset + tag_len])
    offset += tag_len
    if zlib.crc32(stored_tag, zlib.crc32(data[:_HEAD_COVERED])) != head_crc:
        raise RecordProblem("header checksum mismatch (corrupt)")
    if tag is not None and stored_tag != tag:
        raise RecordProblem("holds another tag")
    mac = data[offset : offset + MAC_SIZE] if signed else b""
    payload = data[offset + len(mac) :]
    if zlib.crc32(payload, zlib.crc32(mac, head_crc)) != crc:
        raise RecordProblem("checksum mismatch (corrupt)")
    if secret is not None:
        if not signed:
            raise RecordProblem("unsigned, but this cache requires signed entries (secret set)")
        if not hmac.compare_digest(mac, _mac(secret, data[:_HEAD_COVERED], stored_tag, payload)):
            raise RecordProblem("bad signature (written with another secret, or tampered with)")
    return kind, stored_tag, payload


ScannedRecord = tuple[int, int, int, bytes, bool]
"""One record found by :meth:`Segment.scan`: offset, length, kind, tag, signed (the payload is not read)."""


@dataclass(slots=True)
class Scan:
    """What :meth:`Segment.scan` found: records, damage skipped, where the records end, whether the last was torn."""

    records: list[ScannedRecord]
    damaged: list[tuple[int, int]]
    end: int
    torn: bool = False


def _header_at(mapped: mmap.mmap, offset: int, size: int) -> tuple[int, int, bytes, bool] | None:
    """``(kind, length, tag, signed)`` of a record header with a valid checksum at ``offset``, else None."""
    if offset + RECORD.size > size:
        return None
    magic, kind, flags, _reserved, tag_len, payload_len, head_crc, _crc = RECORD.unpack_from(mapped, offset)
    tag_end = offset + RECORD.size + tag_len
    if magic != RECORD_MAGIC or kind not in (PUT, DELETE) or tag_len > MAX_TAG_BYTES or tag_end > size:
        return None
    tag = mapped[offset + RECORD.size : tag_end]
    if zlib.crc32(tag, zlib.crc32(mapped[offset : offset + _HEAD_COVERED])) != head_crc:
        return None
    signed = bool(flags & FLAG_SIGNED)
    return kind, record_length(tag_len, payload_len, signed), tag, signed


class Segment:
    """One segment file, open for reading (and appending, for the active one).

    The active segment appends by copying records into a shared map of room
    reserved ahead of them (``posix_fallocate``: a full disk fails the
    append that needs more room with ``ENOSPC``, before anything is
    written). A copy into the map is in the page cache once it returns, as a
    ``write`` would be, so an append that returned survives the process
    being killed; it costs no system call. The room is given back when the
    segment is sealed (another becomes active, or the store closes); a
    killed process leaves it as zeros after the last record, which
    :meth:`scan` tells from records.
    """

    __slots__ = ("_base", "_map", "_room", "fd", "number", "path", "size", "writable")

    def __init__(self, directory: str, number: int, *, append: bool) -> None:
        self.number = number
        self.writable = append
        self.path = os.path.join(directory, segment_name(number))
        flags = (os.O_RDWR | os.O_CREAT) if append else os.O_RDONLY
        self.fd = os.open(self.path, flags | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self.fd).st_size
        self._map: mmap.mmap | None = None
        self._base = 0  # the file offset the map starts at
        self._room = 0  # the file's size once room is reserved: the map covers [_base, _room)

    def append(self, parts: Sequence[bytes | bytearray | memoryview]) -> int:
        """Append one record (``parts``, in order); return its offset."""
        offset = self.size
        if sum(map(len, parts)) <= _JOIN_BELOW:  # one copy of the joined record costs less than one per part
            joined = b"".join(parts)
            end = offset + len(joined)
            mapped = self._map
            if mapped is None or end > self._room:
                mapped = self._reserve(end)
            mapped[offset - self._base : end - self._base] = joined
        else:
            views = [memoryview(part).cast("B") for part in parts if len(part)]
            end = offset + sum(view.nbytes for view in views)
            mapped = self._map
            if mapped is None or end > self._room:
                mapped = self._reserve(end)
            at = offset - self._base
            for view in views:
                mapped[at : at + view.nbytes] = view
                at += view.nbytes
        self.size = end
        return offset

    def _reserve(self, end: int) -> mmap.mmap:
        """Grow the file to hold bytes up to ``end`` and some room after (in step with the segment's size); map it."""
        room = self._room if self._map is not None else os.fstat(self.fd).st_size
        step = min(max(self.size, _ROOM_MIN), _ROOM_MAX_STEP)
        wanted = -(-max(end, self.size + step) // mmap.ALLOCATIONGRANULARITY) * mmap.ALLOCATIONGRANULARITY
        if wanted > room:
            try:
                if _HAS_FALLOCATE:
                    os.posix_fallocate(self.fd, room, wanted - room)
                else:  # macOS: the room is not reserved, only made part of the file
                    os.ftruncate(self.fd, wanted)
            except OSError as exc:  # ENOSPC, EDQUOT, EFBIG: say which file could not grow
                raise OSError(
                    exc.errno, f"cannot reserve {wanted - room} bytes for cache records: {exc.strerror}", self.path
                ) from exc
        base = self.size - self.size % mmap.ALLOCATIONGRANULARITY
        if self._map is not None:
            self._map.close()
            self._map = None
        mapped = self._map = mmap.mmap(self.fd, wanted - base, offset=base)
        self._base, self._room = base, wanted
        return mapped

    def read(self, offset: int, length: int) -> memoryview:
        """The bytes of one record (shorter if the file is)."""
        return memoryview(os.pread(self.fd, length, offset))

    def scan(self, start: int = 0) -> Scan:
        """The records from ``start`` on (headers and tags only; payloads are checked when read).

        Bytes that are no record (damage) are skipped up to the next valid
        header; ``end`` is short of the file's size when the records end
        before it: room reserved for appends (zeros), or a last record a
        kill cut short (``torn``).
        """
        found = Scan([], [], start)
        size = os.fstat(self.fd).st_size
        if size <= start:
            return found
        # A map reads only the pages the headers and tags are on, not the payloads.
        with mmap.mmap(self.fd, size, prot=mmap.PROT_READ) as mapped:
            offset = start
            while offset < size:
                header = _header_at(mapped, offset, size)
                if header is None:
                    if _torn(mapped, offset, size):
                        found.torn = True
                        break
                    resume = _next_header(mapped, offset + 1, size)
                    if resume == size and mapped[size - 1] == 0:
                        # Nothing valid up to the end, which is zeros: the room of an appender that was killed
                        # (and, when not all zeros, the start of the record it was copying there).
                        found.torn = bool(mapped[offset:size].strip(b"\0"))
                        _check_last(mapped, found, offset)
                        offset = found.end
                        break
                    found.damaged.append((offset, resume))
                    offset = resume
                    continue
                kind, length, tag, signed = header
                if offset + length > size:
                    found.torn = True
                    break  # a valid header whose record was cut short
                found.records.append((offset, length, kind, tag, signed))
                offset += length
            found.end = offset
        return found

    def truncate(self, size: int) -> None:
        """Cut the file at ``size`` (room, or a torn last record, after the records); only before appends."""
        os.truncate(self.path, size)
        self.size = size

    def seal(self) -> None:
        """Stop appending: give back the room after the last record."""
        if self._map is not None:
            self._map.close()
            self._map = None
            os.ftruncate(self.fd, self.size)
            self._room = self.size

    def close(self) -> None:
        """Close the file (sealed first, when it took appends)."""
        if self.fd >= 0:
            try:
                self.seal()
            except OSError:  # the room stays: the next warm start tells it from records
                pass
            finally:
                os.close(self.fd)
                self.fd = -1


def _check_last(mapped: mmap.mmap, found: Scan, room: int) -> None:
    """Set ``found.end`` to ``room``, or, when the record before it was copied only in part, to that record."""
    found.end = room
    if found.records and found.records[-1][0] + found.records[-1][1] == room:
        offset, length = found.records[-1][:2]
        try:
            check_record(memoryview(mapped[offset : offset + length]), None, None)
        except RecordProblem:
            found.records.pop()
            found.end = offset
            found.torn = True


def _torn(mapped: mmap.mmap, offset: int, size: int) -> bool:
    """Whether the bytes from ``offset`` to the end can be the start of a record cut short by a kill."""
    rest = size - offset
    if rest < len(RECORD_MAGIC):
        return RECORD_MAGIC.startswith(bytes(mapped[offset:size]))
    if mapped[offset : offset + len(RECORD_MAGIC)] != RECORD_MAGIC:
        return False
    if rest < RECORD.size:
        return True
    tag_len: int = RECORD.unpack_from(mapped, offset)[4]
    return offset + RECORD.size + tag_len > size  # the header is whole, its tag is not


def _next_header(mapped: mmap.mmap, offset: int, size: int) -> int:
    """The offset of the next valid record header from ``offset`` on, else ``size``."""
    while True:
        offset = mapped.find(RECORD_MAGIC, offset, size)
        if offset < 0:
            return size
        if _header_at(mapped, offset, size) is not None:
            return offset
        offset += 1
