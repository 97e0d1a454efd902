"""The cache directory itself: checks that it can hold the cache, creation (0700), the one-actor lock.

Owns ``CacheDirectoryError`` and the ``lock`` file. A killed cache actor's
lock goes with its process; a live one keeps it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import time

__all__ = ["LOCK_NAME", "CacheDirectoryError", "check_cache_directory", "lock_directory", "prepare_directory"]

logger = logging.getLogger(__name__)

LOCK_NAME = "lock"


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


def directory_error(code: int, path: str, problem: str, fix: str = _FIX) -> CacheDirectoryError:
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
        raise directory_error(code, directory, f"{existing!r} cannot be used ({os.strerror(code)})") from None
    if not stat.S_ISDIR(info.st_mode):
        what = "is a file" if stat.S_ISREG(info.st_mode) else "is not a directory"
        if existing == directory:
            raise directory_error(errno.ENOTDIR, directory, what, "remove it or choose another cache_dir_path")
        raise directory_error(
            errno.ENOTDIR, directory, f"{existing!r} {what}", f"remove {existing!r} or choose another cache_dir_path"
        )
    filesystem = os.statvfs(existing)
    if filesystem.f_flag & os.ST_RDONLY:
        raise directory_error(errno.EROFS, directory, f"{existing!r} is on a read-only filesystem")
    if filesystem.f_blocks == 0:
        raise directory_error(
            errno.ENOENT,
            directory,
            f"{existing!r} is on a virtual filesystem (such as /proc or /sys) that holds no files",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise directory_error(
            errno.EACCES,
            directory,
            f"{existing!r} is not writable by this process (uid {os.geteuid()})",
            f"chmod u+w it, or {_FIX}",
        )


def prepare_directory(directory: str, quarantine: str) -> None:
    """Check ``directory``, create it (0700) with its ``quarantine`` subdirectory; warn when others can read it."""
    check_cache_directory(directory)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        code = exc.errno or errno.EIO
        raise directory_error(code, directory, f"cannot be created ({os.strerror(code)})") from None
    info = os.stat(directory)
    if info.st_mode & 0o077:
        logger.warning(
            "cache directory %s is accessible by other users (mode %o); cache entries are pickles, "
            "loading them runs code: chmod 700 it",
            directory,
            stat.S_IMODE(info.st_mode),
        )
    try:
        os.makedirs(quarantine, mode=0o700, exist_ok=True)
    except OSError as exc:
        code = exc.errno or errno.EIO
        raise directory_error(code, directory, f"cannot hold files ({os.strerror(code)})") from None


def lock_directory(directory: str, wait: float) -> int:
    """Lock ``directory`` for this process (waiting up to ``wait`` seconds); return the lock's descriptor."""
    # A killed cache actor's lock goes with its process; a live one keeps it.
    fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise BlockingIOError(
                    f"cache directory {directory!r} is in use by another cache actor; use one cache per directory"
                ) from None
            time.sleep(0.05)
