"""Process-tree discovery and killing on one node (no Ray): what chia_cancel relies on."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

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
    killed = kill_tree(KillTarget((ident(root),), frozenset({marker}), ("job:",)), grace=5.0)
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
