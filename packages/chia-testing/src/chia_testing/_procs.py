"""Processes found by a tag at the start of their argv[0], read from /proc.

Tests start subprocesses as ``exec -a <tag>-child sleep 300`` so they can
find them wherever they end up (reparented, in a new session, on a worker):
``tagged_pids`` scans /proc on the machine it runs on, so it works in the test
process and inside a Ray task alike (workers run in the same environment).
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid

_ENDED = (b"Z", b"X")  # a zombie awaiting its reaper, or a process being torn down


def _state(pid: int) -> bytes | None:
    """The state letter of /proc/PID/stat, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):  # exited, or mid-exit
        return None


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process: False once it has exited, a zombie not yet reaped included."""
    state = _state(pid)
    return state is not None and state not in _ENDED


def tagged_pids(tag: str) -> list[int]:
    """The live processes whose argv[0] starts with ``tag`` (zombies and vanished processes are left out).

    Raises:
        ValueError: ``tag`` is empty (every process would match).
    """
    if not tag:
        raise ValueError("tagged_pids: tag must be a non-empty prefix of argv[0], got ''")
    prefix = tag.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv0 = handle.read().split(b"\0", 1)[0]
        except OSError:  # exited between listdir and open
            continue
        if argv0.startswith(prefix) and running(int(name)):
            found.append(int(name))
    return found


class TaggedProcesses:
    """Unique tags for one test's subprocesses; ``kill_leftovers`` SIGKILLs whatever still carries one."""

    def __init__(self) -> None:
        self.tags: list[str] = []

    def new_tag(self, prefix: str = "chia-test") -> str:
        """A fresh tag ``<prefix>-<10 hex digits>``, remembered for ``kill_leftovers``."""
        tag = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.tags.append(tag)
        return tag

    @staticmethod
    def pids(tag: str) -> list[int]:
        """``tagged_pids(tag)``."""
        return tagged_pids(tag)

    def kill_leftovers(self) -> None:
        """SIGKILL every live process carrying one of this object's tags."""
        for tag in self.tags:
            for pid in tagged_pids(tag):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
