"""Finding and killing the process trees that chia tasks started, on one node.

Owns everything that reads ``/proc`` or sends signals for ``chia_cancel``:
the identity of a process (pid + start time, so a reused pid is never
killed), the tree of a tracked process (descendants, its process group and
session, and setsid daemons found by the marker variable in their
environment), the SIGTERM -> grace -> SIGKILL sequence, and describing the
trees for ``chia status`` (``describe_trees``). Linux only; needs
no Ray, so it is tested directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MARKER_VARIABLE = "CHIA_TASK_MARKER"
"""Set in the environment of every subprocess a chia task starts: ``<GCS address>/<job hex>/<task hex>``.

Descendants inherit it, so daemons that left the tree (``setsid`` plus a
double fork) are still found.
"""

_MARKER_PREFIX = MARKER_VARIABLE.encode() + b"="
_RESCAN_INTERVAL = 0.25
_SIGKILL_WAIT = 5.0
_COMMAND_LIMIT = 200  # characters of a command line shown by describe_trees


@dataclass(frozen=True, slots=True)
class ProcessId:
    """A process identity that survives pid reuse: pid plus start time (clock ticks since boot)."""

    pid: int
    start_ticks: int


@dataclass(frozen=True, slots=True)
class KillTarget:
    """What to kill on one node.

    ``roots``: processes recorded when a task started them (ignored when the
    pid now belongs to another process). ``markers``: exact marker values
    (one per task). ``marker_prefixes``: marker prefixes (one matching
    every task of a job).
    """

    roots: tuple[ProcessId, ...] = ()
    markers: frozenset[str] = frozenset()
    marker_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Stat:
    exited: bool  # zombie or dead: its pid is only waiting to be reaped
    ppid: int
    pgid: int
    sid: int
    start_ticks: int


def _read_stat(pid: int) -> _Stat | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    # fields[0] is field 3 (state); field N is fields[N - 3].
    return _Stat(
        exited=fields[0] in (b"Z", b"X", b"x"),
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        start_ticks=int(fields[19]),
    )


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    stat = _read_stat(pid)
    return None if stat is None else stat.start_ticks


def _marker_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:  # gone, or not ours to read
        return None
    start = environ.find(_MARKER_PREFIX)
    if start < 0 or (start > 0 and environ[start - 1] != 0):
        return None
    end = environ.find(b"\0", start)
    return environ[start + len(_MARKER_PREFIX) : end if end >= 0 else None].decode(errors="replace")


def _all_pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def _marked(marker: str | None, target: KillTarget) -> bool:
    return marker is not None and (
        marker in target.markers or any(marker.startswith(p) for p in target.marker_prefixes)
    )


def _scan() -> dict[int, _Stat]:
    """The ``/proc/<pid>/stat`` of every live process on this node."""
    stats: dict[int, _Stat] = {}
    for pid in _all_pids():
        stat = _read_stat(pid)
        if stat is not None and not stat.exited:
            stats[pid] = stat
    return stats


def _members(
    target: KillTarget, stats: dict[int, _Stat], marker_of: Callable[[int], str | None], extra: Iterable[ProcessId]
) -> dict[int, int]:
    members: dict[int, int] = {}
    leaders: set[int] = set()
    for root in (*target.roots, *extra):
        stat = stats.get(root.pid)
        if stat is not None and stat.start_ticks == root.start_ticks:
            members[root.pid] = root.start_ticks
            leaders.add(root.pid)
    by_marker = bool(target.markers or target.marker_prefixes)
    for pid, stat in stats.items():
        if pid not in members and (
            stat.pgid in leaders or stat.sid in leaders or (by_marker and _marked(marker_of(pid), target))
        ):
            members[pid] = stat.start_ticks
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    stack = list(members)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in members:
                members[child] = stats[child].start_ticks
                stack.append(child)
    members.pop(os.getpid(), None)
    return members


def find_tree(target: KillTarget, *, extra: Iterable[ProcessId] = ()) -> dict[int, int]:
    """Every live process that belongs to ``target``: pid -> start ticks.

    A process belongs when it is a root (same pid and start time), shares the
    process group or session a live root leads, carries a matching marker,
    or descends from any of those. ``extra`` adds already-known members (so
    their new children are found on a rescan). Never includes this process.
    """
    return _members(target, _scan(), _marker_of, extra)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """One live process of a tree, for display: pid, parent pid and command line (truncated)."""

    pid: int
    parent_pid: int
    command: str


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read(_COMMAND_LIMIT + 1)
    except OSError:
        return "?"
    text = argv.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    return text[:_COMMAND_LIMIT] + ("..." if len(text) > _COMMAND_LIMIT else "")


def describe_trees(targets: Mapping[str, KillTarget]) -> dict[str, list[ProcessInfo]]:
    """The live processes of each target (the tree :func:`kill_tree` would kill), by key, in pid order.

    One scan of ``/proc`` serves every target, and each process's marker is
    read at most once, so describing thousands of tasks on a node stays cheap.
    """
    stats = _scan()
    markers: dict[int, str | None] = {}

    def marker_of(pid: int) -> str | None:
        if pid not in markers:
            markers[pid] = _marker_of(pid)
        return markers[pid]

    described: dict[str, list[ProcessInfo]] = {}
    for key, target in targets.items():
        members = _members(target, stats, marker_of, ())
        described[key] = [ProcessInfo(pid, stats[pid].ppid, _command(pid)) for pid in sorted(members)]
    return described


class _Victim:
    """One process being killed, held by a pidfd so its pid cannot be recycled under us."""

    __slots__ = ("fd", "ident")

    def __init__(self, ident: ProcessId, fd: int) -> None:
        self.ident = ident
        self.fd = fd

    @classmethod
    def open(cls, ident: ProcessId) -> _Victim | None:
        try:
            fd = os.pidfd_open(ident.pid)
        except OSError:  # already gone
            return None
        # Checked after opening: from here on the fd refers to exactly this process.
        if start_ticks(ident.pid) != ident.start_ticks:
            os.close(fd)
            return None
        return cls(ident, fd)

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.fd, signum)

    def close(self) -> None:
        os.close(self.fd)


def _wait_exited(victims: dict[int, _Victim], deadline: float) -> None:
    """Drop victims as they exit (a pidfd becomes readable on exit) until none remain or ``deadline``."""
    while victims:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        poller = select.poll()
        for victim in victims.values():
            poller.register(victim.fd, select.POLLIN)
        for fd, _ in poller.poll(remaining * 1000):
            for pid, victim in list(victims.items()):
                if victim.fd == fd:
                    victim.close()
                    del victims[pid]


def kill_tree(target: KillTarget, grace: float) -> list[ProcessId]:
    """Kill every process of ``target``: SIGTERM, then SIGKILL whatever is alive after ``grace`` seconds.

    Returns as soon as all of them are gone (at most ``grace`` plus a few
    seconds for SIGKILL to land). Processes that appear while the tree shuts
    down (children forked by a SIGTERM handler) are found by rescans and
    killed too. Returns the processes signalled, each once (callers that run
    several kills at a time count their union).
    """
    if grace < 0:
        raise ValueError(f"grace must be >= 0 seconds, got {grace!r}")
    victims: dict[int, _Victim] = {}
    seen: dict[int, ProcessId] = {}  # pid -> the process enlisted under it, alive or not
    signalled: list[ProcessId] = []

    def enlist(signum: int) -> None:
        for pid, ticks in find_tree(target, extra=seen.values()).items():
            ident = ProcessId(pid, ticks)
            if seen.get(pid) == ident:
                continue
            victim = _Victim.open(ident)
            if victim is None:
                continue
            seen[pid] = ident
            victims[pid] = victim
            victim.signal(signum)
            if signum != signal.SIGKILL:
                victim.signal(signal.SIGCONT)  # a stopped process only acts on SIGTERM once continued
            signalled.append(ident)

    try:
        enlist(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while victims and time.monotonic() < deadline:
            _wait_exited(victims, min(deadline, time.monotonic() + _RESCAN_INTERVAL))
            enlist(signal.SIGTERM)
        if victims:
            for victim in victims.values():
                victim.signal(signal.SIGKILL)
            enlist(signal.SIGKILL)
            _wait_exited(victims, time.monotonic() + _SIGKILL_WAIT)
            if victims:
                logger.warning("processes %s survived SIGKILL for %.0f s", sorted(victims), _SIGKILL_WAIT)
        return signalled
    finally:
        for victim in victims.values():
            victim.close()


def alive(processes: Iterable[ProcessId]) -> list[ProcessId]:
    """The processes of ``processes`` that still run (same pid and start time)."""
    return [p for p in processes if start_ticks(p.pid) == p.start_ticks]
