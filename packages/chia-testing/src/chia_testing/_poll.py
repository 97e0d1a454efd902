"""``wait_until``: poll a predicate until it holds, or fail naming what was awaited.

The one poll helper of every chia package's tests (and of code they ship to
Ray workers): a condition on another process or node becomes true some time
later, and a test waits for it with a deadline instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0
DEFAULT_INTERVAL = 0.05


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    message: str | None = None,
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value; return that value.

    A predicate returning ``X | None`` (e.g. a status, or None while pending) makes this return ``X``.

    The deadline is a bound against a hung condition, not a measurement: keep
    it generous (a loaded 2-core machine is slow). The predicate is called
    once more at the deadline, so a condition that holds by then passes.
    Exceptions raised by ``predicate`` propagate at once.

    Args:
        predicate: called with no arguments; its truthy result ends the wait.
        timeout: seconds before giving up (> 0).
        interval: seconds between two calls (> 0).
        message: what is awaited, for the failure (default: the predicate's name).

    Raises:
        AssertionError: ``predicate`` stayed falsy for ``timeout`` seconds;
            the message names what was awaited and the last value seen.
        ValueError: ``timeout`` or ``interval`` is not a positive number.

    Example:
        ``wait_until(lambda: not tagged_pids(tag), timeout=30, message="the tree to be gone")``
    """
    if not timeout > 0:
        raise ValueError(f"wait_until: timeout must be a positive number of seconds, got {timeout!r}")
    if not interval > 0:
        raise ValueError(f"wait_until: interval must be a positive number of seconds, got {interval!r}")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message if message is not None else getattr(predicate, "__qualname__", repr(predicate))
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value: {value!r})")
        time.sleep(interval)
