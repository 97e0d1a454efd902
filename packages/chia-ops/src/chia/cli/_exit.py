"""The ``chia`` command line's exit codes, one per kind of failure, and the errors that carry them.

Owns :class:`ExitCode` (documented in docs/guide/errors.rst, "The chia
command line") and :class:`CliError`, the one-line error a command raises
with the code of its kind. Every command exits with these codes; ``chia run``
exits with its script's own code once the script has started.
"""

from __future__ import annotations

from enum import IntEnum

import click

__all__ = ["CliError", "ExitCode"]


class ExitCode(IntEnum):
    """What a ``chia`` exit status means. Stable: scripts test these numbers."""

    OK = 0
    ERROR = 1
    """Any other failure: the command ran and failed, or a confirmation was declined."""
    USAGE = 2
    """A bad option, argument or combination (click's own code), or a name that matches several things."""
    NO_CLUSTER = 3
    """No Ray cluster at the address given, or none found on this machine."""
    AUTH = 4
    """The cluster refused this process's Ray authentication token (missing or wrong)."""
    NOT_FOUND = 5
    """The thing named does not exist: an actor, a store, a key, a cached tag, a task."""
    CONFLICT = 6
    """The state changed under the command (a KV compare-and-set that lost the race) or is in use."""


class CliError(click.ClickException):
    """A one-line ``Error: ...`` on stderr and the exit code of its kind."""

    def __init__(self, message: str, code: ExitCode = ExitCode.ERROR) -> None:
        super().__init__(message)
        self.code = code
        # click declares exit_code a class variable; this instance's is its code's.
        object.__setattr__(self, "exit_code", int(code))
