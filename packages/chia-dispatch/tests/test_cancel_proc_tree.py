"""Process-tree discovery and killing on one node (no Ray): what chia_cancel relies on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from chia.base._dispatch import proc_tree
from chia.base._dispatch.proc_tree import (
    MARKER_VARIABLE,
    KillTarget,
    ProcessId,
    alive,
    describe_trees,
    find_tree,
    kill_tree,
    start_ticks,
)
from chia_testing import wait_until

# Each sleeper's argv[0] starts with a unique tag so the test finds it whatever its parent.
TREE_SCRIPT = (
    "(exec -a {tag}-child sleep 300) & "
    "bash -c '(exec -a {tag}-grandchild sleep 300) & wait' & "
    "(setsid bash -c '(exec -a {tag}-daemon sleep 300) &') ; "
    "wait"
)


@pytest.fixture
def tag(tagged: Any) -> str:
    name: str = tagged.new_tag("chia-tree")
    return name


@pytest.fixture
def pids(tagged: Any) -> Callable[[str], list[int]]:
    finder: Callable[[str], list[int]] = tagged.pids
    return finder


@pytest.fixture
def spawn_tree(pids: Callable[[str], list[int]]) -> Callable[..., subprocess.Popen[bytes]]:
    def spawn(tag: str, *, new_session: bool, marker: str | None = None) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        if marker is not None:
            env[MARKER_VARIABLE] = marker
        process = subprocess.Popen(["bash", "-c", TREE_SCRIPT.format(tag=tag)], start_new_session=new_session, env=env)
        wait_until(lambda: len(pids(tag)) == 3, message="the process tree")
        return process

    return spawn


def ident(process: subprocess.Popen[bytes]) -> ProcessId:
    ticks = start_ticks(process.pid)
    assert ticks is not None
    return ProcessId(process.pid, ticks)


@pytest.mark.parametrize("new_session", [True, False])
def test_kill_tree_kills_children_grandchildren_and_setsid_daemons(
    tag: str, new_session: bool, spawn_tree: Any, pids: Any
) -> None:
    marker = f"job:{tag}"
    root = spawn_tree(tag, new_session=new_session, marker=marker)
    # Each process matches the root, the marker and the prefix, and is reported once.
    # (The prefix is this test's own: a bare "job:" would kill the trees of a run of this module in parallel.)
    killed = kill_tree(KillTarget((ident(root),), frozenset({marker}), (f"job:{tag[:-3]}",)), grace=5.0)
    root.wait(timeout=10)
    assert len(set(killed)) == len(killed)
    assert len(killed) >= 4  # root shell, child, subshell, grandchild, daemon (setsid helper may be gone)
    assert pids(tag) == []


def test_the_setsid_daemon_is_found_only_through_the_marker(tag: str, spawn_tree: Any, pids: Any) -> None:
    root = spawn_tree(tag, new_session=True, marker=f"job:{tag}")
    tree = find_tree(KillTarget(roots=(ident(root),)))
    daemons = [pid for pid in pids(tag) if pid not in tree]
    assert len(daemons) == 1  # the daemon left both the tree and the process group
    assert set(pids(tag)) <= set(find_tree(KillTarget(roots=(ident(root),), markers=frozenset({f"job:{tag}"}))))
    assert set(pids(tag)) <= set(find_tree(KillTarget(marker_prefixes=("job:",))))
    kill_tree(KillTarget(roots=(ident(root),), markers=frozenset({f"job:{tag}"})), grace=5.0)
    root.wait(timeout=10)


def test_describe_trees_shows_each_target_in_one_scan(tag: str, spawn_tree: Any, pids: Any) -> None:
    marked = spawn_tree(f"{tag}-m", new_session=True, marker=f"job:{tag}")
    plain = spawn_tree(f"{tag}-p", new_session=False)
    stale = ProcessId(plain.pid, ident(plain).start_ticks - 1)
    described = describe_trees(
        {
            "marked": KillTarget((ident(marked),), frozenset({f"job:{tag}"})),
            "plain": KillTarget((ident(plain),)),
            "stale": KillTarget((stale,)),
        }
    )
    assert described["stale"] == []
    marked_pids = {info.pid for info in described["marked"]}
    assert set(pids(f"{tag}-m")) <= marked_pids  # the setsid daemon too, through the marker
    plain_infos = {info.pid: info for info in described["plain"]}
    assert set(pids(f"{tag}-p-child")) | set(pids(f"{tag}-p-grandchild")) <= set(plain_infos)
    assert not set(pids(f"{tag}-p-daemon")) & set(plain_infos)  # left the tree, carries no marker
    assert plain_infos[plain.pid].command.startswith("bash -c") and plain_infos[plain.pid].parent_pid == os.getpid()
    assert [info.pid for info in described["plain"]] == sorted(plain_infos)
    assert plain_infos[pids(f"{tag}-p-child")[0]].command == f"{tag}-p-child 300"
    for root in (marked, plain):
        kill_tree(KillTarget((ident(root),), frozenset({f"job:{tag}"})), grace=5.0)
        root.wait(timeout=10)


def test_a_reused_pid_is_never_killed(tag: str, spawn_tree: Any, pids: Any) -> None:
    root = spawn_tree(tag, new_session=True)
    stale = ProcessId(root.pid, ident(root).start_ticks - 1)  # same pid, different start: another process
    assert find_tree(KillTarget(roots=(stale,))) == {}
    assert kill_tree(KillTarget(roots=(stale,)), grace=0.5) == []
    assert alive([ident(root)]) == [ident(root)]
    assert len(pids(tag)) == 3
    kill_tree(KillTarget(roots=(ident(root),), markers=frozenset()), grace=5.0)
    root.wait(timeout=10)


def test_sigkill_follows_sigterm_after_the_grace_period(tag: str, pids: Any) -> None:
    stubborn = subprocess.Popen(
        ["bash", "-c", f"trap '' TERM; (trap '' TERM; exec -a {tag}-stubborn sleep 300) & wait"],
        start_new_session=True,
    )
    wait_until(lambda: len(pids(tag)) == 1, message="the stubborn process")
    killed = kill_tree(KillTarget(roots=(ident(stubborn),)), grace=0.5)
    assert stubborn.wait(timeout=10) == -signal.SIGKILL
    assert len(killed) == 2
    assert pids(tag) == []


def test_stopped_processes_are_continued_so_sigterm_lands(tag: str, spawn_tree: Any) -> None:
    root = spawn_tree(tag, new_session=True)
    os.killpg(root.pid, signal.SIGSTOP)
    kill_tree(KillTarget(roots=(ident(root),)), grace=5.0)
    assert root.wait(timeout=10) == -signal.SIGTERM


def test_negative_grace_is_rejected() -> None:
    with pytest.raises(ValueError, match="grace"):
        kill_tree(KillTarget(), grace=-1)


# A tree that forks while it dies, killed 30 times by a helper that is a child subreaper: every orphan
# the tree leaves becomes the helper's child, so one that escaped is seen whatever it is doing. The root's
# SIGTERM handler starts a line of processes that each fork the next and exit at once. kill_tree must
# follow the line by its marker, although a scan can list a process that exits before its stat is read,
# and so miss the child it forked meanwhile.
FORKING_WHILE_DYING = (
    "hop() { if [ $1 -gt 0 ]; then ( hop $(( $1 - 1 )) & ); else exec sleep 300; fi; }; trap 'hop 30; exit 0' TERM"
)
ESCAPE_HELPER = r"""
import ctypes, json, os, subprocess, sys
from chia.base._dispatch.proc_tree import MARKER_VARIABLE, KillTarget, ProcessId, kill_tree, start_ticks

PR_SET_CHILD_SUBREAPER = 36
assert ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
SCRIPT = sys.argv[2] + "; sleep 300 & echo ready; wait"


def children():  # this subreaper's live children, its tree's zombies reaped first
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                break
        except ChildProcessError:
            break
    with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as handle:
        return [int(pid) for pid in handle.read().split()]


escapes = []
for trial in range(int(sys.argv[1])):
    marker = f"escape-test/{os.getpid()}/{trial}"
    root = subprocess.Popen(
        ["bash", "-c", SCRIPT], env={**os.environ, MARKER_VARIABLE: marker}, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    assert root.stdout is not None and root.stdout.readline() == b"ready\n"
    kill_tree(KillTarget((ProcessId(root.pid, start_ticks(root.pid) or 0),), frozenset({marker})), grace=5.0)
    root.wait()
    escapes.extend(children())  # after the zombies were reaped: what is left of the tree escaped
    while children():  # clean up: kill what escaped until nothing is left (a link may have forked meanwhile)
        for pid in children():
            os.kill(pid, 9)
print(json.dumps(escapes))
"""


def test_kill_tree_follows_a_tree_that_forks_while_it_dies() -> None:
    result = subprocess.run(
        [sys.executable, "-c", ESCAPE_HELPER, "30", FORKING_WHILE_DYING],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [], "processes escaped kill_tree"


def test_kill_tree_looks_again_at_an_orphan_caught_in_mid_exec(
    tag: str, pids: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the kernel runs an execve(), the process's environment reads empty, marker included.

    The window is too short to hit on purpose, so the orphan here is real
    and only its first three environment reads are made to come back empty,
    as during an exec.
    """
    marker = f"job:{tag}"
    env = {**os.environ, MARKER_VARIABLE: marker}
    subprocess.run(["bash", "-c", f"(exec -a {tag}-orphan sleep 300) &"], env=env, check=True)
    wait_until(lambda: len(pids(tag)) == 1, message="the orphan")
    (orphan,) = pids(tag)
    reads = 0
    real = proc_tree._marker_of

    def mid_exec(pid: int) -> Any:
        nonlocal reads
        if pid == orphan and reads < 3:
            reads += 1
            return proc_tree._Environ.EMPTY
        return real(pid)

    monkeypatch.setattr(proc_tree, "_marker_of", mid_exec)
    killed = kill_tree(KillTarget(markers=frozenset({marker})), grace=5.0)
    assert reads == 3
    assert [process.pid for process in killed] == [orphan]
    wait_until(lambda: pids(tag) == [], message="the orphan killed")
