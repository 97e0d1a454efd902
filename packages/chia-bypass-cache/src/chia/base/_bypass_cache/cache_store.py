"""Crash-safe on-disk entries of the cache: file format, index journal, LRU byte budget.

Owns the cache directory. Each entry is one file (a header with format
version, lengths and checksum, an optional HMAC, the tag, the pickled value),
written to a temporary file and renamed into place. An append-only index
journal gives a warm start without opening the entries. Corrupt, truncated or
foreign files are moved to ``quarantine/`` with a warning, never served.
Runs without Ray; values stay opaque bytes here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import itertools
import logging
import os
import re
import stat
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Sequence

from chia.base._bypass_cache.cache_generation import GENERATION_NAME, GenerationTable, Stamp

__all__ = ["FORMAT_VERSION", "CacheDirectoryError", "EntryStore", "entry_file_name"]

logger = logging.getLogger(__name__)

MAGIC = b"CHIACACH"
FORMAT_VERSION = 1
# magic, format version, flags, tag length, payload length, crc32(tag + payload)
HEADER = struct.Struct("<8sHHIQI")
FLAG_SIGNED = 0x1
MAC_SIZE = hashlib.sha256().digest_size
ENTRY_SUFFIX = ".entry"
TMP_PREFIX = ".tmp-"
INDEX_NAME = "index.log"
LOCK_NAME = "lock"
QUARANTINE_DIR = "quarantine"
LOCK_WAIT_SECONDS = 30.0
# The journal is rewritten when it holds this many records more than twice the live entries.
INDEX_SLACK_RECORDS = 4096
_OWN_NAMES = frozenset({INDEX_NAME, LOCK_NAME, QUARANTINE_DIR, GENERATION_NAME})
_MAX_TAG_BYTES = 1 << 20


class CacheDirectoryError(OSError):
    """The cache directory cannot be used; the message names the path and the fix. Stable.

    An ``OSError`` with the errno of the cause (``ENOTDIR`` a file is in the
    way, ``EROFS`` read-only filesystem, ``EACCES`` not writable, ``ENOENT``
    a virtual or vanished filesystem...) and ``filename`` the path at fault.
    Raised before anything is created in or under the directory.
    """

    def __str__(self) -> str:
        return str(self.strerror)


_FIX = "choose a cache_dir_path (chia run --cache-dir) on a writable local disk of the head node"


def _directory_error(code: int, path: str, problem: str, fix: str = _FIX) -> CacheDirectoryError:
    return CacheDirectoryError(code, f"cache directory {path!r}: {problem}; {fix}", path)


def check_cache_directory(directory: str) -> None:
    """Refuse a directory that cannot hold the cache, creating nothing.

    Walks up to the nearest existing path: it must be a directory, on a
    writable, real (not virtual, such as /proc) filesystem, and writable by
    this process.
    """
    existing = directory
    while not os.path.lexists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    try:
        info = os.stat(existing)
    except OSError as exc:  # a dangling symlink, or a path component that is a file
        code = exc.errno or errno.ENOENT
        raise _directory_error(code, directory, f"{existing!r} cannot be used ({os.strerror(code)})") from None
    if not stat.S_ISDIR(info.st_mode):
        what = "is a file" if stat.S_ISREG(info.st_mode) else "is not a directory"
        if existing == directory:
            raise _directory_error(errno.ENOTDIR, directory, what, "remove it or choose another cache_dir_path")
        raise _directory_error(
            errno.ENOTDIR, directory, f"{existing!r} {what}", f"remove {existing!r} or choose another cache_dir_path"
        )
    filesystem = os.statvfs(existing)
    if filesystem.f_flag & os.ST_RDONLY:
        raise _directory_error(errno.EROFS, directory, f"{existing!r} is on a read-only filesystem")
    if filesystem.f_blocks == 0:
        raise _directory_error(
            errno.ENOENT,
            directory,
            f"{existing!r} is on a virtual filesystem (such as /proc or /sys) that holds no files",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _directory_error(
            errno.EACCES,
            directory,
            f"{existing!r} is not writable by this process (uid {os.geteuid()})",
            f"chmod u+w it, or {_FIX}",
        )


def _write_record(name: str, size: int, tag: str) -> bytes:
    return f"W\t{name}\t{size}\t{_escape(tag)}\n".encode()


def _evict_record(tag: str) -> bytes:
    return f"E\t{_escape(tag)}\n".encode()


def _escape(tag: str) -> str:
    # Index records are lines: keep a tag's newlines (and the escape character) out of them.
    if "\\" in tag or "\n" in tag:
        return tag.replace("\\", "\\\\").replace("\n", "\\n")
    return tag


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPED.sub(lambda match: "\n" if match.group(1) == "n" else match.group(1), text)


_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def entry_file_name(tag: bytes) -> str:
    """The entry file name of an (encoded) tag: tags may hold any character."""
    return hashlib.sha256(tag).hexdigest()[:40] + ENTRY_SUFFIX


def _write_all(fd: int, parts: Sequence[bytes | bytearray | memoryview]) -> None:
    views = [memoryview(part).cast("B") for part in parts if len(part)]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


class EntryStore:
    """The entries of one cache directory, least recently used first.

    ``put`` is atomic with respect to crashes: a reader (or a restarted
    store) sees the old entry or the new one, never a partial one; a put
    that returned survives the process being killed. Power-loss durability
    would need an ``fsync`` per write and is not provided.

    With ``background=True`` the index is loaded by a thread: ``get`` and
    ``in`` answer at once by reading the entry file (its name derives from
    the tag), everything else waits for the index.
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
        self._total = 0
        self.evictions = 0
        self.quarantined = 0
        self.warm_start_seconds = 0.0
        self._secret = secret
        self._entries: OrderedDict[str, int] = OrderedDict()
        self._tmp_prefix = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-")
        self._tmp_names = itertools.count()
        self._quarantine = os.path.join(directory, QUARANTINE_DIR)
        self._index_path = os.path.join(directory, INDEX_NAME)
        self._prepare_directory()
        self._lock_fd = self._lock_directory(lock_wait)
        try:
            self._generations = GenerationTable(directory)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._index_fd = -1
        self._index_records = 0
        self._ready = threading.Event()
        self._warm_start_error: BaseException | None = None
        if background:
            threading.Thread(target=self._warm_start_in_background, name="chia-cache-warm-start", daemon=True).start()
            return
        try:
            self._warm_start()
        except BaseException:
            self.close()
            raise
        self._ready.set()

    def _warm_start_in_background(self) -> None:
        try:
            self._warm_start()
        except BaseException as exc:  # raised again by every call that needs the index
            logger.exception("cache warm start of %s failed", self.directory)
            self._warm_start_error = exc
        finally:
            self._ready.set()

    @property
    def ready(self) -> bool:
        """Whether the index is loaded."""
        return self._ready.is_set()

    def _index(self) -> OrderedDict[str, int]:
        self._ready.wait()
        if self._warm_start_error is not None:
            raise self._warm_start_error
        return self._entries

    @property
    def total_bytes(self) -> int:
        """Bytes the entries take on disk (what the budget counts)."""
        self._index()
        return self._total

    # --- setup ------------------------------------------------------------------------

    def _prepare_directory(self) -> None:
        check_cache_directory(self.directory)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            code = exc.errno or errno.EIO
            raise _directory_error(code, self.directory, f"cannot be created ({os.strerror(code)})") from None
        info = os.stat(self.directory)
        if info.st_mode & 0o077:
            logger.warning(
                "cache directory %s is accessible by other users (mode %o); cache entries are pickles, "
                "loading them runs code: chmod 700 it",
                self.directory,
                stat.S_IMODE(info.st_mode),
            )
        try:
            os.makedirs(self._quarantine, mode=0o700, exist_ok=True)
        except OSError as exc:
            code = exc.errno or errno.EIO
            raise _directory_error(code, self.directory, f"cannot hold files ({os.strerror(code)})") from None

    def _lock_directory(self, wait: float) -> int:
        # A killed cache actor's lock goes with its process; a live one keeps it.
        fd = os.open(os.path.join(self.directory, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise BlockingIOError(
                        f"cache directory {self.directory!r} is in use by another cache actor; "
                        "use one cache per directory"
                    ) from None
                time.sleep(0.05)

    def _warm_start(self) -> None:
        """Rebuild the entry list from the index journal plus one directory listing."""
        began = time.perf_counter()
        names = set(os.listdir(self.directory))
        journal, records, clean_end = self._read_journal()
        entries: OrderedDict[str, int] = OrderedDict()
        listed: set[str] = set()
        stale = not clean_end
        for tag, (name, size) in journal.items():
            if name in names:
                entries[tag] = size
                listed.add(name)
            else:
                stale = True
        recovered: list[tuple[str, str, int]] = []
        for name in names - listed - _OWN_NAMES:
            path = os.path.join(self.directory, name)
            if name.startswith(TMP_PREFIX):
                # A write that was never acknowledged: its process died before the rename.
                self._unlink(path)
            elif name.endswith(ENTRY_SUFFIX):
                found = self._recover(name)
                if found is not None:
                    recovered.append((found[0], name, found[1]))
            else:
                self._move_aside(name, "not a cache entry (foreign file)")
        for tag, _name, size in recovered:
            entries[tag] = size
        self._entries = entries
        self._total = sum(entries.values())
        self._index_records = records
        if stale or self._index_bloated():
            self._rewrite_index()
        self._open_index()

        for tag, name, size in recovered:
            self._append(_write_record(name, size, tag))
        self._enforce_budget(keep=None)
        self.warm_start_seconds = time.perf_counter() - began
        logger.info(
            "cache warm start: %d entries, %d bytes in %s (%.3f s)",
            len(entries),
            self._total,
            self.directory,
            self.warm_start_seconds,
        )

    def _read_journal(self) -> tuple[OrderedDict[str, tuple[str, int]], int, bool]:
        try:
            with open(self._index_path, "rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            return OrderedDict(), 0, True
        journal: OrderedDict[str, tuple[str, int]] = OrderedDict()
        lines = data.decode(errors="replace").split("\n")
        # A record cut short by a crash is ignored; its entry file, if any, is
        # recovered from the file's own header.
        clean_end = lines.pop() == ""
        for line in lines:
            fields = line.split("\t", 3)
            try:
                if fields[0] == "W" and len(fields) == 4:
                    tag = _unescape(fields[3])
                    journal.pop(tag, None)
                    journal[tag] = (fields[1], int(fields[2]))
                elif fields[0] == "E" and len(fields) == 2:
                    journal.pop(_unescape(fields[1]), None)
                else:
                    raise ValueError(line)
            except ValueError:
                logger.warning("cache index %s: ignoring a damaged record %r", self._index_path, line[:80])
                clean_end = False
        return journal, len(lines), clean_end

    def _recover(self, name: str) -> tuple[str, int] | None:
        """Tag and size of an entry file missing from the index, read from its header only."""
        try:
            with open(os.path.join(self.directory, name), "rb") as stream:
                size = os.fstat(stream.fileno()).st_size
                head = stream.read(HEADER.size)
                if len(head) < HEADER.size:
                    problem = "truncated (shorter than the header)"
                else:
                    magic, version, flags, tag_len, payload_len, _crc = HEADER.unpack(head)
                    header_problem = self._header_problem(magic, version, flags, tag_len, payload_len, size)
                    tag_bytes = stream.read(tag_len) if header_problem is None else b""
                    if header_problem is not None:
                        problem = header_problem
                    elif entry_file_name(tag_bytes) != name:
                        problem = "file name does not match its tag"
                    else:
                        return tag_bytes.decode(), size
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"unreadable ({exc})"
        self._move_aside(name, problem)
        return None

    def _header_problem(
        self, magic: bytes, version: int, flags: int, tag_len: int, payload_len: int, file_size: int
    ) -> str | None:
        if magic != MAGIC:
            return "not a cache entry (bad magic)"
        if version != FORMAT_VERSION:
            return f"unsupported format version {version} (this cache writes {FORMAT_VERSION})"
        if flags & ~FLAG_SIGNED:
            return f"unknown flags {flags:#x}"
        if tag_len > _MAX_TAG_BYTES:
            return "corrupt header (tag length)"
        expected = HEADER.size + tag_len + (MAC_SIZE if flags & FLAG_SIGNED else 0) + payload_len
        if file_size < expected:
            return f"truncated ({file_size} of {expected} bytes)"
        if file_size > expected:
            return f"has {file_size - expected} trailing bytes"
        if self._secret is not None and not flags & FLAG_SIGNED:
            return "unsigned, but this cache requires signed entries (secret set)"
        return None

    def _open_index(self) -> None:
        self._index_fd = os.open(self._index_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _rewrite_index(self) -> None:
        """Replace the journal, atomically, with one record per live entry."""
        lines = [_write_record(entry_file_name(tag.encode()), size, tag) for tag, size in self._entries.items()]
        if self._index_fd >= 0:
            os.close(self._index_fd)
            self._index_fd = -1
        self._atomic_write(self._index_path, [b"".join(lines)])
        self._index_records = len(lines)

    # --- entries ----------------------------------------------------------------------

    def __contains__(self, tag: object) -> bool:
        if not self._ready.is_set() and isinstance(tag, str):
            return os.path.exists(os.path.join(self.directory, entry_file_name(tag.encode())))
        return tag in self._index()

    def __len__(self) -> int:
        return len(self._index())

    def tags(self) -> list[str]:
        """Every tag, least recently used first."""
        return list(self._index())

    def touch(self, tag: str) -> None:
        """Mark ``tag`` as just used (LRU order)."""
        if self._ready.is_set() and tag in self._index():
            self._entries.move_to_end(tag)

    def entry_size(self, payload_len: int, tag: str) -> int:
        """Bytes an entry of this payload and tag takes on disk (what the budget counts)."""
        return HEADER.size + len(tag.encode()) + (MAC_SIZE if self._secret is not None else 0) + payload_len

    def put(self, tag: str, payload: bytes | bytearray | memoryview) -> list[str]:
        """Store ``payload`` under ``tag`` atomically; return the tags evicted to keep the budget.

        Raises ``ValueError`` when the entry alone is larger than the budget
        (nothing is written then).
        """
        entries = self._index()
        tag_bytes = tag.encode()
        payload_len = memoryview(payload).nbytes
        size = self.entry_size(payload_len, tag)
        if size > self.budget_bytes:
            raise ValueError(
                f"cache value for tag {tag!r} takes {size} bytes, more than the whole cache budget of "
                f"{self.budget_bytes} bytes; start the cache with a larger size or cache smaller values"
            )
        flags = 0 if self._secret is None else FLAG_SIGNED
        crc = zlib.crc32(payload, zlib.crc32(tag_bytes))
        header = HEADER.pack(MAGIC, FORMAT_VERSION, flags, len(tag_bytes), payload_len, crc)
        parts: list[bytes | bytearray | memoryview] = [header, tag_bytes]
        if self._secret is not None:
            parts.append(self._mac(header, tag_bytes, payload))
        parts.append(payload)
        name = entry_file_name(tag_bytes)
        self._atomic_write(os.path.join(self.directory, name), parts)
        self._append(_write_record(name, size, tag))
        self._generations.bump(tag)
        previous = entries.pop(tag, None)
        self._total += size - (previous or 0)
        entries[tag] = size
        return self._enforce_budget(keep=tag)

    def get(self, tag: str) -> memoryview | None:
        """The payload stored under ``tag``, or None (missing, or moved aside as damaged)."""
        tag_bytes = tag.encode()
        if not self._ready.is_set():
            # Before the index is loaded: a valid entry file is served, a damaged
            # one is a miss, and the warm start (or a later read) moves it aside.
            return self._load(tag_bytes)[0]
        entries = self._index()
        if tag not in entries:
            return None
        payload, problem, size = self._load(tag_bytes)
        if payload is None:
            if problem is None:
                logger.warning("cache entry for tag %r disappeared from %s; dropping it", tag, self.directory)
            else:
                self._move_aside(entry_file_name(tag_bytes), problem)
            self._drop(tag)
            return None
        if entries[tag] != size:
            self._total += size - entries[tag]
            entries[tag] = size
        entries.move_to_end(tag)
        return payload

    def _load(self, tag_bytes: bytes) -> tuple[memoryview | None, str | None, int]:
        """``(payload, problem, file size)``: no payload and no problem means no file."""
        try:
            with open(os.path.join(self.directory, entry_file_name(tag_bytes)), "rb", buffering=0) as stream:
                data = bytearray(os.fstat(stream.fileno()).st_size)
                size = stream.readinto(data)
        except FileNotFoundError:
            return None, None, 0
        problem = self._check(memoryview(data)[:size], tag_bytes, size)
        if problem is not None:
            return None, problem, size
        return memoryview(data)[size - HEADER.unpack_from(data)[4] : size], None, size

    def _check(self, data: memoryview, tag_bytes: bytes, size: int) -> str | None:
        if size < HEADER.size:
            return f"truncated ({size} bytes, shorter than the header)"
        magic, version, flags, tag_len, payload_len, crc = HEADER.unpack_from(data)
        problem = self._header_problem(magic, version, flags, tag_len, payload_len, size)
        if problem is not None:
            return problem
        offset = HEADER.size
        stored_tag = data[offset : offset + tag_len]
        offset += tag_len
        if stored_tag != tag_bytes:
            return "holds another tag"
        mac = None
        if flags & FLAG_SIGNED:
            mac = data[offset : offset + MAC_SIZE]
            offset += MAC_SIZE
        payload = data[offset:]
        if zlib.crc32(payload, zlib.crc32(stored_tag)) != crc:
            return "checksum mismatch (corrupt)"
        if (
            self._secret is not None
            and mac is not None
            and not hmac.compare_digest(mac, self._mac(data[: HEADER.size], tag_bytes, payload))
        ):
            return "bad signature (written with another secret, or tampered with)"
        return None

    def _mac(self, header: bytes | memoryview, tag_bytes: bytes, payload: bytes | bytearray | memoryview) -> bytes:
        assert self._secret is not None
        signer = hmac.new(self._secret, header, hashlib.sha256)
        signer.update(tag_bytes)
        signer.update(payload)
        return signer.digest()

    def remove(self, tag: str) -> bool:
        """Delete ``tag``'s entry; False when there was none."""
        if tag not in self._index():
            return False
        self._delete(tag)
        return True

    def clear(self) -> int:
        """Delete every entry; return how many there were."""
        entries = self._index()
        count = len(entries)
        for tag in entries:
            self._unlink(os.path.join(self.directory, entry_file_name(tag.encode())))
        entries.clear()
        self._generations.bump_all()
        self._total = 0
        self._rewrite_index()
        self._open_index()
        return count

    def stamp(self, tag: str) -> Stamp:
        """``tag``'s generation now: equal stamps mean the entry did not change in between."""
        return self._generations.stamp(tag)

    def close(self) -> None:
        """Release the index, the generation table and the directory lock."""
        self._generations.close()
        for fd in (self._index_fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._index_fd = self._lock_fd = -1

    # --- internals ----------------------------------------------------------------------

    def _enforce_budget(self, keep: str | None) -> list[str]:
        evicted = []
        while self._total > self.budget_bytes and self._entries:
            oldest = next(iter(self._entries))
            if oldest == keep:
                break
            self._delete(oldest)
            self.evictions += 1
            evicted.append(oldest)
        return evicted

    def _delete(self, tag: str) -> None:
        self._unlink(os.path.join(self.directory, entry_file_name(tag.encode())))
        self._drop(tag)

    def _drop(self, tag: str) -> None:
        size = self._entries.pop(tag, None)
        self._generations.bump(tag)
        if size is not None:
            self._total -= size
            self._append(_evict_record(tag))

    def _append(self, record: bytes) -> None:
        os.write(self._index_fd, record)
        self._index_records += 1
        if self._index_bloated():
            self._rewrite_index()
            self._open_index()

    def _index_bloated(self) -> bool:
        return self._index_records > 2 * len(self._entries) + INDEX_SLACK_RECORDS

    def _atomic_write(self, path: str, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        tmp = f"{self._tmp_prefix}{next(self._tmp_names)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                _write_all(fd, parts)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            self._unlink(tmp)
            raise

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
