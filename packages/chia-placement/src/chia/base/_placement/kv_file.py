"""The on-disk snapshot of a persistent KV store: atomic writes, strict reads.

Private to chia-placement. A snapshot is one pickle (Ray's cloudpickle, so
values of classes defined in a driver script persist too) of the entries with
their versions and the store's revision counter. It is replaced atomically
(write to a temporary file in the same directory, fsync, rename), so a crash
mid-write leaves the previous snapshot intact.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ray import cloudpickle

__all__ = ["KVSnapshot", "load_snapshot", "write_snapshot"]

_FORMAT = "chia-kv-store/1"
_dumps: Callable[[object], bytes] = cloudpickle.dumps


@dataclass(frozen=True, slots=True)
class KVSnapshot:
    """Entries as ``key -> (value, version)`` and the revision the next write builds on."""

    entries: dict[str, tuple[Any, int]]
    revision: int


def load_snapshot(path: str) -> KVSnapshot | None:
    """The snapshot at ``path``, or None if there is none yet.

    Raises ``ValueError`` naming the file when it exists but is not a KV store
    snapshot (a corrupt file must not silently reset an operator's values).
    """
    try:
        with open(path, "rb") as stream:
            payload = pickle.load(stream)
    except FileNotFoundError:
        return None
    except Exception as exc:
        raise ValueError(
            f"KV store snapshot {path} cannot be read ({type(exc).__name__}: {exc}); "
            "move it away to start the store from its defaults"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a chia KV store snapshot (expected format {_FORMAT!r})")
    entries = payload["entries"]
    revision = payload["revision"]
    return KVSnapshot(dict(entries), int(revision))


def write_snapshot(path: str, snapshot: KVSnapshot) -> None:
    """Replace the snapshot at ``path`` atomically; raises (leaving the old file) if a value cannot be pickled."""
    payload = _dumps({"format": _FORMAT, "entries": snapshot.entries, "revision": snapshot.revision})
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_fd)
    finally:
        os.close(directory_fd)
