"""Submitting a Ray remote function under a task name chosen per call.

Owns the one place chia calls into Ray's ``RemoteFunction`` below its public
surface. Ray's ``.options(name=...)`` re-validates every option and builds a
wrapper class on each call (~15 µs, most of what a tagged call costs); the
options of a chia export were validated when it was built, so a named call
goes straight to the submission ``.options(...).remote(...)`` ends in, with
the same options plus the name. On a Ray whose ``RemoteFunction`` lacks
those internals, or for options Ray must re-derive (``runtime_env``), it
takes ``.options(...)`` as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

_Direct = Callable[..., Any]


class NamedSubmit:
    """``remote_function`` with fixed option overrides, submitted under a per-call task name.

    ``submit(name, args, kwargs)`` does what
    ``remote_function.options(**overrides, name=name).remote(*args, **kwargs)``
    does (``name=None``: Ray's default task name), without re-validating the
    options on every call.
    """

    __slots__ = ("_direct", "_overrides", "remote_function")

    def __init__(self, remote_function: Any, overrides: Mapping[str, Any]) -> None:
        self.remote_function = remote_function
        self._overrides = dict(overrides)
        self._direct = _direct_submit(remote_function, self._overrides)

    def submit(self, name: str | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Submit the task; returns what Ray's ``.remote()`` returns."""
        direct = self._direct
        if direct is None:
            return self.handle(name).remote(*args, **kwargs)
        if name is None:  # the options' own name, if any, else Ray's default
            return direct(args=args, kwargs=kwargs)
        return direct(args=args, kwargs=kwargs, name=name)

    def handle(self, name: str | None) -> Any:
        """The public ``.options(...)`` handle of the same submission (it pickles: the dispatch proxy relays it)."""
        if name is None:
            return self.remote_function.options(**self._overrides) if self._overrides else self.remote_function
        return self.remote_function.options(**{**self._overrides, "name": name})


def _direct_submit(remote_function: Any, overrides: dict[str, Any]) -> _Direct | None:
    """Ray's own submission with the options ``.options(**overrides)`` would pass it, or None.

    Mirrors ``RemoteFunction.options``: the decorator's options without
    ``max_calls`` (which ``.options`` drops) under the overrides, and the
    remote function's serialized base runtime environment. The overrides were
    validated by Ray when the dispatcher was built (``.options(**overrides)``).
    """
    submit = getattr(remote_function, "_remote", None)
    defaults = getattr(remote_function, "_default_options", None)
    runtime_env_info = getattr(remote_function, "_serialized_base_runtime_env_info", None)
    if not callable(submit) or not isinstance(defaults, dict) or not isinstance(runtime_env_info, str):
        return None
    if "runtime_env" in overrides:  # Ray re-parses and re-serializes it in .options(): leave that to Ray
        return None
    options = {**defaults, **overrides}
    options.pop("max_calls", None)
    return functools.partial(submit, serialized_runtime_env_info=runtime_env_info, **options)
