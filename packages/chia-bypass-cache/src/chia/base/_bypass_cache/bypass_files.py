"""Path confinement for the bypass file server.

Owns the rule deciding which files the file server may read: only files
inside the allowed roots, after resolving ``..`` and symlinks. Runs without Ray.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["confine", "real_roots"]


def real_roots(paths: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    """The real (symlink-free, absolute) form of each root, without duplicates."""
    seen: dict[str, None] = {}
    for path in paths:
        seen[os.path.realpath(os.fspath(path))] = None
    return tuple(seen)


def confine(path: str, roots: Iterable[str]) -> str:
    """Return the real path of ``path`` if it lies inside one of ``roots``.

    ``roots`` are real paths (see :func:`real_roots`): a directory root admits
    everything below it, a file root admits exactly that file. Raises
    ``PermissionError`` naming the path and the roots otherwise (including
    ``..`` tricks and symlinks leading out), ``ValueError`` for a relative path.
    """
    if not isinstance(path, str):
        raise TypeError(f"file server paths must be str, got {path!r} ({type(path).__name__})")
    if not os.path.isabs(path):
        raise ValueError(f"file server paths must be absolute, got {path!r}")
    real = os.path.realpath(path)
    roots = tuple(roots)
    for root in roots:
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return real
    raise PermissionError(
        f"bypass file server refuses {path!r} (resolves to {real!r}): it is outside the allowed roots "
        f"{list(roots)!r} (the YAML file's directory, the listed data paths and Bypass(allowed_roots=...))"
    )
