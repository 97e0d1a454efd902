"""Reading the cache directories of chia-bypass-cache 0.1 (one file per entry), to migrate them.

Owns the old format, read-only: entries ``<sha256(tag)[:40]>.entry`` (a
28-byte header: magic, format version 1, flags, tag length, payload length,
CRC32 of tag and payload; the tag; an optional HMAC-SHA256; the pickled
value) and the index journal ``index.log`` (``W``/``E`` lines) that gives
their order. The store copies every valid entry into its log once, at the
first warm start, then deletes these files.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import struct
import zlib
from collections.abc import Iterable

from chia.base._bypass_cache.cache_log import MAC_SIZE, MAX_TAG_BYTES, RecordProblem, unpack_versioned

__all__ = ["LEGACY_INDEX_NAME", "LEGACY_SUFFIX", "is_legacy_name", "legacy_order", "read_legacy_entry"]

logger = logging.getLogger(__name__)

LEGACY_INDEX_NAME = "index.log"
LEGACY_SUFFIX = ".entry"
_MAGIC = b"CHIACACH"
_VERSION = 1
_HEADER = struct.Struct("<8sHHIQI")
_FLAG_SIGNED = 0x1
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def is_legacy_name(name: str) -> bool:
    """Whether ``name`` is a file of the old format."""
    return name == LEGACY_INDEX_NAME or name.endswith(LEGACY_SUFFIX)


def legacy_file_name(tag: bytes) -> str:
    """The old entry file name of an (encoded) tag."""
    return hashlib.sha256(tag).hexdigest()[:40] + LEGACY_SUFFIX


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPED.sub(lambda match: "\n" if match.group(1) == "n" else match.group(1), text)


def legacy_order(journal: bytes, names: Iterable[str]) -> list[str]:
    """The old entry files among ``names``: those of the journal in its order, then the rest by name."""
    present = {name for name in names if name.endswith(LEGACY_SUFFIX)}
    ordered: dict[str, None] = {}
    for line in journal.decode(errors="replace").split("\n"):
        fields = line.split("\t", 3)
        if fields[0] == "W" and len(fields) == 4:
            name = legacy_file_name(_unescape(fields[3]).encode())
        elif fields[0] == "E" and len(fields) == 2:
            ordered.pop(legacy_file_name(_unescape(fields[1]).encode()), None)
            continue
        else:
            continue  # a damaged or cut record: the file (if any) is taken up with the rest
        ordered.pop(name, None)
        ordered[name] = None
    listed = [name for name in ordered if name in present]
    return listed + sorted(present - set(listed))


def read_legacy_entry(name: str, data: bytes, secret: bytes | None) -> tuple[str, memoryview]:
    """The tag and pickled value of an old entry file, or :class:`RecordProblem` saying what is wrong."""
    _magic, _version, flags, tag_len, payload_len, crc = unpack_versioned(
        data, _HEADER, _MAGIC, _VERSION, "a cache entry", RecordProblem
    )
    if flags & ~_FLAG_SIGNED or tag_len > MAX_TAG_BYTES:
        raise RecordProblem("corrupt header")
    signed = bool(flags & _FLAG_SIGNED)
    expected = _HEADER.size + tag_len + (MAC_SIZE if signed else 0) + payload_len
    if len(data) != expected:
        raise RecordProblem(f"truncated or padded ({len(data)} of {expected} bytes)")
    view = memoryview(data)
    tag_bytes = bytes(view[_HEADER.size : _HEADER.size + tag_len])
    if legacy_file_name(tag_bytes) != name:
        raise RecordProblem("file name does not match its tag")
    payload = view[expected - payload_len :]
    if zlib.crc32(payload, zlib.crc32(tag_bytes)) != crc:
        raise RecordProblem("checksum mismatch (corrupt)")
    if secret is not None:
        if not signed:
            raise RecordProblem("unsigned, but this cache requires signed entries (secret set)")
        mac = view[_HEADER.size + tag_len : _HEADER.size + tag_len + MAC_SIZE]
        signer = hmac.new(secret, view[: _HEADER.size], hashlib.sha256)
        signer.update(tag_bytes)
        signer.update(payload)
        if not hmac.compare_digest(mac, signer.digest()):
            raise RecordProblem("bad signature (written with another secret, or tampered with)")
    try:
        tag = tag_bytes.decode()
    except UnicodeDecodeError:
        raise RecordProblem("tag is not UTF-8") from None
    return tag, payload
