"""tagged_pids, TaggedProcesses and the ``tagged`` fixture on real subprocesses."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator

import pytest

from chia_testing import TaggedProcesses, free_port, running, tagged_pids, wait_until


@pytest.fixture
def sleeper(tagged: TaggedProcesses) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    tag = tagged.new_tag("chia-testing")
    process = subprocess.Popen(["bash", "-c", f"exec -a {tag}-sleeper sleep 300"])
    wait_until(lambda: tagged_pids(tag), message="the tagged sleeper")
    yield tag, process
    process.kill()
    process.wait()


def test_finds_a_process_by_the_start_of_its_argv0_only(sleeper: tuple[str, subprocess.Popen[bytes]]) -> None:
    tag, process = sleeper
    assert tagged_pids(tag) == [process.pid]
    assert tagged_pids(f"{tag}-sleeper") == [process.pid]
    assert tagged_pids(f"x{tag}") == []  # a prefix, not a substring


def test_a_zombie_is_not_listed(sleeper: tuple[str, subprocess.Popen[bytes]]) -> None:
    tag, process = sleeper
    process.kill()  # not reaped yet: a zombie until wait()
    wait_until(lambda: tagged_pids(tag) == [], message="the killed sleeper to leave the list")
    assert process.wait() == -9


def test_running_until_killed_and_a_zombie_is_not_running(sleeper: tuple[str, subprocess.Popen[bytes]]) -> None:
    _, process = sleeper
    assert running(process.pid)
    process.kill()  # not reaped yet: a zombie until wait()
    wait_until(lambda: not running(process.pid), message="the killed sleeper to stop running")
    assert process.wait() == -9
    assert not running(process.pid)  # reaped: no /proc entry at all


def test_kill_leftovers_kills_every_process_of_every_tag() -> None:
    processes = TaggedProcesses()
    tags = [processes.new_tag("chia-testing-left") for _ in range(2)]
    assert len(set(tags)) == 2 and all(tag.startswith("chia-testing-left-") for tag in tags)
    children = [subprocess.Popen(["bash", "-c", f"exec -a {tag} sleep 300"]) for tag in tags]
    wait_until(lambda: all(tagged_pids(tag) for tag in tags), message="both sleepers")
    processes.kill_leftovers()
    assert [child.wait(timeout=30) for child in children] == [-9, -9]


def test_an_empty_tag_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-empty prefix"):
        tagged_pids("")


def test_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        assert server.getsockname() == ("127.0.0.1", port)
