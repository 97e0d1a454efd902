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
import enum
import logging
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

logger = logging.getLogger(__name__)

MARKER_VARIABLE = "CHIA_TASK_MARKER"
"""Set in the environment of every subprocess a chia task starts: ``<GCS address>/<job hex>/<task hex>``.

Descendants inherit it, so daemons that left the tree (``setsid`` plus a
double fork) are still found.
"""

_MARKER_PREFIX = MARKER_VARIABLE.encode() + b"="
_RESCAN_INTERVAL = 0.25
_SIGKILL_WAIT = 5.0
# Once every victim is gone, kill_tree still looks again (for at most _SETTLE_LIMIT) while its last
# scan may have missed part of the tree: (1) a process listed by the scan exited before it was read, so
# children it forked after the listing are not in the scan (they are in the next one); (2) a process
# whose environment read empty may be in the middle of execve() (the kernel sets the new program's
# environment last), so a marked orphan caught there looks unmarked: it is looked at again every
# _EXEC_WAIT (an exec takes about a millisecond) until it reads otherwise, or has read empty for
# _EXEC_LIMIT (then it has no environment at all).
_EXEC_WAIT = 0.005
_EXEC_LIMIT = 0.1
_SETTLE_LIMIT = 0.5
_PF_KTHREAD = 0x00200000  # /proc/<pid>/stat flags: a kernel thread (no environment ever)
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
    kernel: bool  # a kernel thread
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
        kernel=bool(int(fields[6]) & _PF_KTHREAD),
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        start_ticks=int(fields[19]),
    )


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    stat = _read_stat(pid)
    return None if stat is None else stat.start_ticks


class _Environ(enum.Enum):
    EMPTY = "empty"
    """The environment read empty: a process in the middle of execve(), or one without any."""
    GONE = "gone"
    """The process exited before its environment was read."""


_Marker: TypeAlias = str | Literal[_Environ.EMPTY, _Environ.GONE] | None


def _marker_of(pid: int) -> _Marker:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except PermissionError:  # not ours to read
        return None
    except OSError:
        return _Environ.GONE
    if not environ:
        return _Environ.EMPTY
    start = environ.find(_MARKER_PREFIX)
    if start < 0 or (start > 0 and environ[start - 1] != 0):
        return None
    end = environ.find(b"\0", start)
    return environ[start + len(_MARKER_PREFIX) : end if end >= 0 else None].decode(errors="replace")


def _all_pids() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def _marked(marker: _Marker, target: KillTarget) -> bool:
    return isinstance(marker, str) and (
        marker in target.markers or any(marker.startswith(p) for p in target.marker_prefixes)
    )


@dataclass(slots=True)
class _Doubts:
    """What one scan may have missed: it is not atomic, and an exec hides a process's environment."""

    dead: set[int] = field(default_factory=set)
    """Pids listed that had exited (zombies) or were gone when read: their late children are not in the scan."""
    empty: list[ProcessId] = field(default_factory=list)
    """Processes (not members, not kernel threads) whose environment read empty: maybe in mid-exec."""
    unrelated: set[int] = field(default_factory=set)
    """Pids read alive, without the marker and outside the tree: their exit later is no news."""

    def note_unmarked(self, pid: int, stat: _Stat, marker: _Marker) -> None:
        """File a process the scan read alive whose marker is not the target's (its descendants are sorted later)."""
        if marker is _Environ.GONE:
            self.dead.add(pid)
        elif marker is not _Environ.EMPTY:
            self.unrelated.add(pid)
        elif not stat.kernel:
            self.empty.append(ProcessId(pid, stat.start_ticks))


def _scan(doubts: _Doubts | None = None) -> dict[int, _Stat]:
    """The ``/proc/<pid>/stat`` of every live process on this node (``doubts.dead``: those that were not)."""
    stats: dict[int, _Stat] = {}
    for pid in _all_pids():
        stat = _read_stat(pid)
        if stat is not None and not stat.exited:
            stats[pid] = stat
        elif doubts is not None:
            doubts.dead.add(pid)
    return stats


def _direct_members(
    target: KillTarget,
    stats: dict[int, _Stat],
    marker_of: Callable[[int], _Marker],
    extra: Iterable[ProcessId],
    doubts: _Doubts | None,
) -> dict[int, int]:
    """The roots (and ``extra``) still alive, the processes in their groups and sessions, and the marked ones."""
    members: dict[int, int] = {}
    leaders: set[int] = set()
    for root in (*target.roots, *extra):
        stat = stats.get(root.pid)
        if stat is not None and stat.start_ticks == root.start_ticks:
            members[root.pid] = root.start_ticks
            leaders.add(root.pid)
    by_marker = bool(target.markers or target.marker_prefixes)
    for pid, stat in stats.items():
        if pid in members:
            continue
        if stat.pgid in leaders or stat.sid in leaders:
            members[pid] = stat.start_ticks
        elif by_marker:
            marker = marker_of(pid)
            if _marked(marker, target):
                members[pid] = stat.start_ticks
            elif doubts is not None:
                doubts.note_unmarked(pid, stat, marker)
    return members


def _members(
    target: KillTarget,
    stats: dict[int, _Stat],
    marker_of: Callable[[int], _Marker],
    extra: Iterable[ProcessId],
    doubts: _Doubts | None = None,
) -> dict[int, int]:
    """The members of ``target`` in ``stats``, noting in ``doubts`` the processes that may be missed."""
    members = _direct_members(target, stats, marker_of, extra, doubts)
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
    if doubts is not None:
        doubts.empty = [process for process in doubts.empty if process.pid not in members]
        doubts.unrelated.difference_update(members)
    return members


def find_tree(target: KillTarget, *, extra: Iterable[ProcessId] = (), doubts: _Doubts | None = None) -> dict[int, int]:
    """Every live process that belongs to ``target``: pid -> start ticks.

    A process belongs when it is a root (same pid and start time), shares the
    process group or session a live root leads, carries a matching marker,
    or descends from any of those. ``extra`` adds already-known members (so
    their new children are found on a rescan); ``doubts`` receives what the
    scan may have missed (see :class:`_Doubts`). Never includes this process.
    """
    return _members(target, _scan(doubts), _marker_of, extra, doubts)


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
    markers: dict[int, _Marker] = {}

    def marker_of(pid: int) -> _Marker:
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


class _Missed(enum.Enum):
    """Why a scan may have missed part of a tree (see _SETTLE_LIMIT)."""

    NOTHING = "nothing"
    EXITED = "a listed process exited during the scan"
    IN_EXEC = "a process may be in mid-exec"


class _TreeKill:
    """One run of :func:`kill_tree`: the processes signalled so far and the scans that find more."""

    def __init__(self, target: KillTarget) -> None:
        self.target = target
        self.victims: dict[int, _Victim] = {}  # signalled and still alive
        self.seen: dict[int, ProcessId] = {}  # pid -> the process enlisted under it, alive or not
        self.signalled: list[ProcessId] = []
        self.deaths: set[int] = set()  # the pids the last scan found exited or gone
        self.unrelated: set[int] = set()  # the pids the last scan found alive and unmarked, outside the tree
        self.empty_since: dict[ProcessId, float] = {}  # processes whose environment read empty -> first time

    def enlist(self, signum: int) -> _Missed:
        """Scan, and signal the members not signalled yet; returns why this scan may have missed some."""
        doubts = _Doubts()
        for pid, ticks in find_tree(self.target, extra=self.seen.values(), doubts=doubts).items():
            ident = ProcessId(pid, ticks)
            if self.seen.get(pid) == ident:
                continue
            victim = _Victim.open(ident)
            if victim is None:
                continue
            self.seen[pid] = ident
            self.victims[pid] = victim
            victim.signal(signum)
            if signum != signal.SIGKILL:
                victim.signal(signal.SIGCONT)  # a stopped process only acts on SIGTERM once continued
            self.signalled.append(ident)
        # News: a process that exited which the scan before did not see exited, nor alive and unrelated.
        exited_meanwhile = bool(doubts.dead - self.deaths - self.unrelated)
        self.deaths, self.unrelated = doubts.dead, doubts.unrelated
        now = time.monotonic()
        in_exec = False
        for process in doubts.empty:
            in_exec |= now - self.empty_since.setdefault(process, now) < _EXEC_LIMIT
        if in_exec:
            return _Missed.IN_EXEC
        return _Missed.EXITED if exited_meanwhile else _Missed.NOTHING

    def settle(self, until: float, signum: int, missed: _Missed) -> _Missed:
        """Rescan until no victim is left and a scan missed nothing, or ``until``; returns the last ``missed``."""
        quiet_since: float | None = None  # since when no victim is left
        while time.monotonic() < until:
            if self.victims:
                quiet_since = None
                _wait_exited(self.victims, min(until, time.monotonic() + _RESCAN_INTERVAL))
            else:
                now = time.monotonic()
                quiet_since = now if quiet_since is None else quiet_since
                if missed is _Missed.NOTHING or now - quiet_since >= _SETTLE_LIMIT:
                    return _Missed.NOTHING
                if missed is _Missed.IN_EXEC:
                    time.sleep(_EXEC_WAIT)
            missed = self.enlist(signum)
        return missed

    def close(self) -> None:
        for victim in self.victims.values():
            victim.close()


def kill_tree(target: KillTarget, grace: float) -> list[ProcessId]:
    """Kill every process of ``target``: SIGTERM, then SIGKILL whatever is alive after ``grace`` seconds.

    Returns as soon as all of them are gone (at most ``grace`` plus a few
    seconds for SIGKILL to land). Processes that appear while the tree shuts
    down (children forked by a SIGTERM handler, orphans left by a process
    that forked and exited) are found by rescans and killed too; a scan that
    may have missed some (a listed process exited before it was read, or an
    orphan was in the middle of an exec, when its marker cannot be read) is
    followed by another. Returns the processes signalled, each once (callers
    that run several kills at a time count their union).
    """
    if grace < 0:
        raise ValueError(f"grace must be >= 0 seconds, got {grace!r}")
    kill = _TreeKill(target)
    try:
        missed = kill.settle(time.monotonic() + grace, signal.SIGTERM, kill.enlist(signal.SIGTERM))
        if kill.victims or missed is not _Missed.NOTHING:
            for victim in kill.victims.values():
                victim.signal(signal.SIGKILL)
            kill.settle(time.monotonic() + _SIGKILL_WAIT, signal.SIGKILL, kill.enlist(signal.SIGKILL))
            if kill.victims:
                logger.warning("processes %s survived SIGKILL for %.0f s", sorted(kill.victims), _SIGKILL_WAIT)
        return kill.signalled
    finally:
        kill.close()


def alive(processes: Iterable[ProcessId]) -> list[ProcessId]:
    """The processes of ``processes`` that still run (same pid and start time)."""
    return [p for p in processes if start_ticks(p.pid) == p.start_ticks]
