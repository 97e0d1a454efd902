"""The per-driver bypass server actor: confined file reads and the worker snapshot.

Owns the small actor a driver starts on its own node when bypass or cache
write-through is active. It serves the Bypass file server API (``get_text``,
``get_bytes``) inside the allowed roots, and holds the latest versioned
snapshot of the driver's configuration for workers (see ``bypass_sync``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import ray

from chia.base._bypass_cache.bypass_files import confine

__all__ = ["BypassServer"]

SNAPSHOT_WAIT_SECONDS = 120.0


def _read_bytes(path: str, roots: tuple[str, ...], base_dir: str | None) -> bytes:
    with open(confine(path, roots, base_dir), "rb") as stream:
        return stream.read()


class BypassServer:
    """Reads files inside the allowed roots; hands out the driver's snapshot.

    Runs as an async Ray actor (file reads go to a thread so snapshot
    requests are never stuck behind a large file).
    """

    def __init__(self) -> None:
        self._roots: tuple[str, ...] = ()
        self._base_dir: str | None = None
        self._version = 0
        self._snapshot: Any = None
        self._published = asyncio.Event()

    @ray.method
    async def add_roots(self, roots: list[str], base_dir: str | None = None) -> None:
        """Admit ``roots`` (real paths) in addition to the current ones; relative paths start at ``base_dir``."""
        self._admit(roots)
        if base_dir is not None:
            self._base_dir = base_dir

    def _admit(self, roots: list[str]) -> None:
        self._roots = tuple(dict.fromkeys((*self._roots, *roots)))

    @ray.method
    async def get_bytes(self, path: str) -> bytes:
        """The contents of the file at ``path`` (PermissionError outside the roots)."""
        return await asyncio.to_thread(_read_bytes, path, self._roots, self._base_dir)

    @ray.method
    async def get_text(self, path: str) -> str:
        """The UTF-8 text of the file at ``path`` (PermissionError outside the roots)."""
        return (await asyncio.to_thread(_read_bytes, path, self._roots, self._base_dir)).decode()

    @ray.method
    async def exists(self, path: str) -> bool:
        """Whether ``path`` exists (PermissionError outside the roots: existence is not disclosed there)."""
        return os.path.exists(confine(path, self._roots, self._base_dir))

    @ray.method
    async def publish(self, version: int, snapshot: Any, roots: list[str]) -> None:
        """Store ``snapshot`` as ``version`` (older versions are ignored)."""
        self._admit(roots)
        if version > self._version:
            self._version, self._snapshot = version, snapshot
            self._published.set()
            self._published = asyncio.Event()

    @ray.method
    async def snapshot(self, min_version: int) -> tuple[int, Any]:
        """The latest snapshot, waiting until it is at least ``min_version``."""
        deadline = asyncio.get_running_loop().time() + SNAPSHOT_WAIT_SECONDS
        while self._version < min_version:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(
                    f"bypass snapshot version {min_version} was never published (latest: {self._version})"
                )
            try:
                await asyncio.wait_for(self._published.wait(), remaining)
            except TimeoutError:
                continue
        return self._version, self._snapshot
