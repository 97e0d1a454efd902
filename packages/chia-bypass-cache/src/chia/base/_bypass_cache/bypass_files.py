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


def confine(path: str, roots: Iterable[str], base_dir: str | None = None) -> str:
    """Return the real path of ``path`` if it lies inside one of ``roots``.

    ``roots`` are real paths (see :func:`real_roots`): a directory root admits
    everything below it, a file root admits exactly that file. A relative
    ``path`` (``~`` expanded) starts at ``base_dir``, the working directory of
    the driver that owns the server. Raises ``PermissionError`` naming the
    path, the roots and how to allow a root otherwise (including ``..`` tricks
    and symlinks leading out); ``ValueError`` for a relative path without a
    ``base_dir``, or a path holding a NUL byte.
    """
    if not isinstance(path, str):
        raise TypeError(f"file server paths must be str, got {path!r} ({type(path).__name__})")
    if "\0" in path:
        raise ValueError(f"file server path {path!r} contains a NUL byte")
    expanded = os.path.expanduser(path)
    if not os.path.isabs(expanded):
        if base_dir is None:
            raise ValueError(f"file server paths must be absolute here (no working directory known), got {path!r}")
        expanded = os.path.join(base_dir, expanded)
    real = os.path.realpath(expanded)
    roots = tuple(roots)
    for root in roots:
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            return real
    raise PermissionError(
        f"bypass file server refuses {path!r} (resolves to {real!r}): it is outside the allowed roots "
        f"{list(roots)!r} (the YAML file's directory, the listed data paths and Bypass(allowed_roots=...)); "
        f"to allow it, pass its directory when creating the bypass: "
        f"Bypass(yaml_path, allowed_roots=[{os.path.dirname(real)!r}])"
    )
