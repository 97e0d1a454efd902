"""The reserved call keywords (``_chia_tag``, ``_chia_display_name``, setup and cleanup).

Owns their names, their validation at the call site and :class:`Around`,
the setup/cleanup pair that travels with a call and runs on the worker
around the function body. ``ChiaFunction`` strips these keywords before
anything reaches the user's function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

TAG = "_chia_tag"
DISPLAY_NAME = "_chia_display_name"
SETUP = "_chia_setup"
SETUP_ARGS = "_chia_setup_args"
CLEANUP = "_chia_cleanup"
CLEANUP_ARGS = "_chia_cleanup_args"

RESERVED = frozenset({TAG, DISPLAY_NAME, SETUP, SETUP_ARGS, CLEANUP, CLEANUP_ARGS})
"""Every reserved keyword: ``not RESERVED.isdisjoint(kwargs)`` is the hot path's one check."""

_NO_KWARGS: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Around:
    """A setup callable run before the body and a cleanup callable run after it, even when it raises."""

    setup: Callable[..., Any] | None = None
    setup_args: tuple[Any, ...] = ()
    setup_kwargs: Mapping[str, Any] = field(default_factory=dict)
    cleanup: Callable[..., Any] | None = None
    cleanup_args: tuple[Any, ...] = ()
    cleanup_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def run(self, body: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``setup``, then ``body(*args, **kwargs)``, then ``cleanup`` (also when the body raised).

        A failing setup skips body and cleanup. When the body raised and the
        cleanup raises too, the cleanup's error is logged and the body's is
        raised; when only the cleanup raises, the call fails with its error.
        """
        if self.setup is not None:
            self.setup(*self.setup_args, **self.setup_kwargs)
        if self.cleanup is None:
            return body(*args, **kwargs)
        try:
            result = body(*args, **kwargs)
        except BaseException:
            try:
                self.cleanup(*self.cleanup_args, **self.cleanup_kwargs)
            except Exception:
                logger.exception("_chia_cleanup %r failed after the function raised", self.cleanup)
            raise
        self.cleanup(*self.cleanup_args, **self.cleanup_kwargs)
        return result


@dataclass(frozen=True, slots=True)
class Reserved:
    """The reserved keywords in effect for one call (or one ``.options(...)`` handle)."""

    tag: str | None = None
    display_name: str | None = None
    around: Around | None = None


NONE = Reserved()


def _check_name(keyword: str, value: object, qualname: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise TypeError(f"{keyword} of a call to {qualname} must be a str or None, got {value!r} ({type(value).__name__})")


def _check_callable(keyword: str, value: object, qualname: str) -> Callable[..., Any] | None:
    if value is None or callable(value):
        return value
    raise TypeError(f"{keyword} of a call to {qualname} must be a callable or None, got {value!r}")


def _split_args(keyword: str, value: object, qualname: str) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
    if value is None:
        return (), _NO_KWARGS
    if isinstance(value, (tuple, list)):
        return tuple(value), _NO_KWARGS
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return (), dict(value)
    raise TypeError(
        f"{keyword} of a call to {qualname} must be a tuple or list of positional arguments "
        f"or a dict of keyword arguments, got {value!r} ({type(value).__name__})"
    )


def take(kwargs: dict[str, Any], current: Reserved, qualname: str) -> Reserved:
    """Pop the reserved keywords out of ``kwargs``, layered over ``current``; validates them.

    Raises ``TypeError`` naming the keyword and the value for a wrong type,
    or for setup/cleanup arguments given without the callable they are for.
    """
    tag = _check_name(TAG, kwargs.pop(TAG), qualname) if TAG in kwargs else current.tag
    display = (
        _check_name(DISPLAY_NAME, kwargs.pop(DISPLAY_NAME), qualname)
        if DISPLAY_NAME in kwargs
        else current.display_name
    )
    around = current.around
    if not {SETUP, SETUP_ARGS, CLEANUP, CLEANUP_ARGS}.isdisjoint(kwargs):
        base = around or Around()
        setup = _check_callable(SETUP, kwargs.pop(SETUP), qualname) if SETUP in kwargs else base.setup
        cleanup = _check_callable(CLEANUP, kwargs.pop(CLEANUP), qualname) if CLEANUP in kwargs else base.cleanup
        setup_args, setup_kwargs = (
            _split_args(SETUP_ARGS, kwargs.pop(SETUP_ARGS), qualname)
            if SETUP_ARGS in kwargs
            else (base.setup_args, base.setup_kwargs)
        )
        cleanup_args, cleanup_kwargs = (
            _split_args(CLEANUP_ARGS, kwargs.pop(CLEANUP_ARGS), qualname)
            if CLEANUP_ARGS in kwargs
            else (base.cleanup_args, base.cleanup_kwargs)
        )
        if setup is None and (setup_args or setup_kwargs):
            raise TypeError(f"{SETUP_ARGS} given without {SETUP} in a call to {qualname}")
        if cleanup is None and (cleanup_args or cleanup_kwargs):
            raise TypeError(f"{CLEANUP_ARGS} given without {CLEANUP} in a call to {qualname}")
        around = (
            None
            if setup is None and cleanup is None
            else Around(setup, setup_args, setup_kwargs, cleanup, cleanup_args, cleanup_kwargs)
        )
    return Reserved(tag, display, around)
