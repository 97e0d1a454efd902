"""chia_cancel, the pid registry and kill_all_tracked on a real two-node local Ray cluster."""

from __future__ import annotations

import functools
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from typing import Any

import pytest
import ray
from ray.exceptions import TaskCancelledError

from chia.base import ChiaFunction as chia_function_module
from chia.base._dispatch import job_actors, pid_tracking
from chia.base._dispatch.proc_tree import MARKER_VARIABLE, ProcessId
from chia.base._dispatch.registry import Spawn, TaskEnd, get_registry, job_marker_prefix
from chia.base.ChiaFunction import ChiaFunction, get
from chia.base.pid_registry import TrackedTask, cancel_tasks, chia_cancel, kill_all_tracked, tracked_tasks
from chia_testing import running, tagged_pids, wait_until

pytestmark = pytest.mark.usefixtures("cluster")

# Three sleepers per tree: a child, a grandchild and a setsid daemon (argv[0] = <tag>-...).
TREE = (
    "(exec -a {tag}-child sleep 300) & "
    "bash -c '(exec -a {tag}-grandchild sleep 300) & wait' & "
    "(setsid bash -c '(exec -a {tag}-daemon sleep 300) &') ; "
    "wait"
)


@ChiaFunction(num_cpus=1)
def run_trees(tag: str, foreground_new_session: bool) -> str:
    """Start a background tree in its own session, then block on a foreground tree."""
    subprocess.Popen(["bash", "-c", TREE.format(tag=f"{tag}-bg")], start_new_session=True)
    subprocess.run(["bash", "-c", TREE.format(tag=f"{tag}-fg")], start_new_session=foreground_new_session)
    return "finished"


@ChiaFunction(num_cpus=1)
def spawn_and_return(count: int) -> list[int]:
    return [subprocess.run(["true"]).returncode for _ in range(count)]


@ChiaFunction(num_cpus=1)
def markers_of_concurrent_spawns() -> tuple[str | None, str | None]:
    """Spawn from the task thread and, concurrently, from a thread outside the task scope."""
    started = threading.Event()
    outside: list[subprocess.Popen[bytes]] = []

    def spawn_outside() -> None:
        outside.append(subprocess.Popen(["sleep", "30"]))
        started.set()

    thread = threading.Thread(target=spawn_outside)
    thread.start()
    inside = subprocess.Popen(["sleep", "30"])
    started.wait(30)
    thread.join()
    result = (_marker(inside.pid), _marker(outside[0].pid))
    for process in (inside, outside[0]):
        process.kill()
        process.wait()
    return result


@ChiaFunction(num_cpus=1)
def environments_of_spawns_with_explicit_env() -> list[dict[bytes, bytes]]:
    """The environment children see when the task passes ``env`` (str or bytes keys)."""
    seen = []
    environments = (
        {"PATH": os.environ["PATH"], "USER_SETTING": "1"},
        {b"PATH": os.environb[b"PATH"], b"USER_SETTING": b"2"},
    )
    for env in environments:
        child = subprocess.Popen(["sleep", "30"], env=env)
        # Popen returns mid-exec: the kernel shows the new environment a moment later.
        environ = wait_until(
            functools.partial(_proc_file, child.pid, "environ"), timeout=30, interval=0.01, message="its environment"
        )
        seen.append(dict(item.split(b"=", 1) for item in environ.split(b"\0") if item))
        child.kill()
        child.wait()
    return seen


@ChiaFunction(num_cpus=1)
def spawn_with_reports_held(tag: str) -> str:
    """Start a tree while this worker's spawn reports are held back until the tree is gone.

    Holding the reporter's lock makes the race deterministic: the processes
    exist (with the job's marker) and the registry has not heard of them.
    """
    reporter = pid_tracking._reporter
    if reporter._registry is None:  # a worker's first report is delivered synchronously, not queued
        reporter._registry = get_registry()
    holding = threading.Event()
    pid_file = os.path.join(tempfile.gettempdir(), f"{tag}.pid")  # the tree's bash writes its pid first

    def seen_or_already_killed() -> bool:
        # The driver kills the tree as soon as it sees it: on a loaded machine, before this thread
        # polled it. The tree's bash, which carries the job's marker too, is then gone (or a zombie:
        # this worker reaps it only when its Popen returns, after the held report).
        try:
            with open(pid_file) as handle:
                pid = int(handle.read())
        except (OSError, ValueError):
            return False  # not started, or the pid only half written
        return len(tagged_pids(tag)) >= 3 or not running(pid)

    def hold_reports() -> None:
        with reporter._condition:
            holding.set()
            wait_until(seen_or_already_killed, timeout=120, interval=0.02, message="the held tree")
            wait_until(lambda: not tagged_pids(tag), timeout=120, interval=0.02, message="the held tree killed")

    holder = threading.Thread(target=hold_reports, daemon=True)
    holder.start()
    holding.wait()
    # Popen returns only once the holder lets its spawn report through.
    subprocess.Popen(
        ["bash", "-c", f"echo $$ > {shlex.quote(pid_file)}; " + TREE.format(tag=tag)], start_new_session=True
    )
    holder.join()
    os.unlink(pid_file)
    return "finished"


def _proc_file(pid: int, name: str) -> bytes:
    with open(f"/proc/{pid}/{name}", "rb") as handle:
        return handle.read()


def _marker(pid: int) -> str | None:
    # Popen returns mid-exec: read the environment only once the child is `sleep`.
    wait_until(
        lambda: _proc_file(pid, "cmdline").startswith(b"sleep\0"), timeout=30, interval=0.01, message=f"{pid} to exec"
    )
    for item in _proc_file(pid, "environ").split(b"\0"):
        if item.startswith(MARKER_VARIABLE.encode() + b"="):
            return item.split(b"=", 1)[1].decode()
    return None


def _start_trees(tagged: Any, node: str, *, foreground_new_session: bool) -> tuple[Any, str]:
    tag = tagged.new_tag("chia-cancel")
    ref = run_trees.options(resources={node: 0.01}).chia_remote(tag, foreground_new_session)
    wait_until(lambda: len(tagged.pids(tag)) == 6, message="six sleepers of the task")
    return ref, tag


@pytest.mark.ray_compat
@pytest.mark.parametrize("node", ["head", "node_b"])
@pytest.mark.parametrize("foreground_new_session", [True, False])
def test_cancel_kills_every_process_of_the_task_and_get_raises_cancelled(
    tagged: Any, node: str, foreground_new_session: bool
) -> None:
    ref, tag = _start_trees(tagged, node, foreground_new_session=foreground_new_session)
    chia_cancel(ref, grace=5.0)
    assert tagged.pids(tag) == []  # gone when chia_cancel returns: children, grandchildren, daemons
    with pytest.raises(TaskCancelledError):
        get(ref)


def test_a_task_whose_subprocess_dies_before_ray_cancel_arrives_still_raises_cancelled(tagged: Any) -> None:
    # The race chia_cancel must win: the kill lands before Ray's cooperative cancel
    # reaches the worker, so the task body sees its subprocess exit and returns.
    ref, tag = _start_trees(tagged, "node_b", foreground_new_session=False)
    registry = get_registry()
    task_hex = ref.task_id().hex()
    ray.get(registry.begin_cancel.remote(task_hex, 5.0))
    ray.get(registry.kill_task.remote(task_hex, 5.0))  # no ray.cancel at all
    assert tagged.pids(tag) == []
    with pytest.raises(TaskCancelledError, match="cancelled by chia_cancel"):
        get(ref)
    assert get(spawn_and_return.chia_remote(2)) == [0, 0]  # tasks nobody cancels still return


def test_force_cancel_kills_the_tree_and_the_worker(tagged: Any) -> None:
    ref, tag = _start_trees(tagged, "node_b", foreground_new_session=False)
    chia_cancel(ref, force=True, grace=5.0)
    assert tagged.pids(tag) == []
    with pytest.raises(TaskCancelledError):
        get(ref)


def test_chia_cancel_is_reexported_from_chia_function() -> None:
    assert chia_function_module.chia_cancel is chia_cancel
    assert "chia_cancel" in chia_function_module.__all__


@pytest.mark.ray_compat
def test_registry_lives_on_the_head_and_forgets_tasks_when_they_end(cluster: Any) -> None:
    refs = [spawn_and_return.options(resources={node: 0.01}).chia_remote(3) for node in ("head", "node_b")] * 10
    assert get(refs) == [[0, 0, 0]] * 20
    registry = get_registry()
    # Bounded memory: every entry goes once its task's exit reports arrive. The reports travel through
    # each node's reaper, which a loaded 2-core CI machine (two suites side by side) can delay past 60 s.
    left: list[dict[str, Any]] = []

    def empty() -> bool:
        tracked: dict[str, Any] = ray.get(registry.tracked.remote())
        left[:] = [tracked]
        return not tracked

    try:
        wait_until(empty, timeout=180, message="an empty registry")
    except AssertionError as exc:  # say what stayed: which tasks, on which nodes
        raise AssertionError(f"{exc}; still tracked: {left[0]!r}") from None
    info = ray._private.state.actors(actor_id=registry._actor_id.hex())
    assert info["Address"]["NodeID"] == cluster.node_ids["head"]
    assert info["Name"] == job_actors.registry_name(ray.get_runtime_context().get_job_id())


def test_a_spawn_reported_after_its_task_ended_is_not_kept(cluster: Any) -> None:
    # Ray runs an async actor's calls in any order, so a worker's spawn report can reach the registry after
    # the report of its task's end; kept, it would stay tracked until the job ends. A retry of the same task
    # in the same worker is a new run, and its spawns are tracked.
    registry = get_registry()
    # Pids above Linux's largest pid_max: no process has them, so the registry's sweep cannot touch one.
    node, worker, process = cluster.node_ids["head"], ProcessId(4_194_400, 1), ProcessId(4_194_401, 1)
    task_id = "ff" * 20 + ray.get_runtime_context().get_job_id()
    ray.get(registry.report.remote([TaskEnd(task_id, node, worker, 7)]))
    ray.get(registry.report.remote([Spawn(task_id, node, worker, process, 7)]))
    assert task_id not in ray.get(registry.tracked.remote())
    ray.get(registry.report.remote([Spawn(task_id, node, worker, process, 8)]))
    assert ray.get(registry.tracked.remote())[task_id] == {node: [process]}
    ray.get(registry.report.remote([TaskEnd(task_id, node, worker, 8)]))
    assert task_id not in ray.get(registry.tracked.remote())


def test_tracked_entries_carry_pid_and_start_time(cluster: Any, tagged: Any) -> None:
    ref, tag = _start_trees(tagged, "node_b", foreground_new_session=True)
    registry = get_registry()
    task_id, node_b = ref.task_id().hex(), cluster.node_ids["node_b"]

    def tracked() -> Any:
        return ray.get(registry.tracked.remote()).get(task_id, {}).get(node_b, [])

    wait_until(lambda: len(tracked()) == 2, message="both direct children tracked")
    for process in tracked():
        with open(f"/proc/{process.pid}/stat", "rb") as handle:
            assert int(handle.read().rsplit(b")", 1)[1].split()[19]) == process.start_ticks
    chia_cancel(ref, grace=5.0)
    assert tagged.pids(tag) == []
    assert task_id not in ray.get(registry.tracked.remote())


def test_tracked_tasks_and_cancel_tasks_work_by_task_id(cluster: Any, tagged: Any) -> None:
    ref, tag = _start_trees(tagged, "node_b", foreground_new_session=False)
    task_id, node_b = ref.task_id().hex(), cluster.node_ids["node_b"]
    # Both direct children reported: the whole tree, the setsid daemons too (found by the task's marker).
    wait_until(lambda: len(tracked_tasks().get(task_id, TrackedTask("", "")).processes) >= 8, message="the tree")
    task = tracked_tasks()[task_id]
    assert task.job_id == ray.get_runtime_context().get_job_id() and task.stuck_cause is None
    assert {process.node_id for process in task.processes} == {node_b}
    assert set(tagged.pids(tag)) <= {process.pid for process in task.processes}  # six sleepers
    commands = {process.pid: process.command for process in task.processes}
    assert all(commands[pid].startswith(tag) and commands[pid].endswith(" 300") for pid in tagged.pids(tag))
    with pytest.raises(ValueError, match="'nonsense' is not a Ray task id"):
        cancel_tasks(["nonsense"])
    assert cancel_tasks([task_id], grace=5.0) >= 8  # the tree kill of chia_cancel, without the ObjectRef
    assert tagged.pids(tag) == []
    with pytest.raises(TaskCancelledError, match="cancelled by chia_cancel"):
        get(ref)


def test_concurrent_spawns_in_one_worker_do_not_mix() -> None:
    inside, outside = get(markers_of_concurrent_spawns.chia_remote())
    assert inside is not None and inside.startswith(job_marker_prefix(ray.get_runtime_context().get_job_id()))
    assert outside is None  # spawned by a thread outside the task scope: not marked, not tracked


def test_a_given_env_is_kept_and_gets_the_marker() -> None:
    first, second = get(environments_of_spawns_with_explicit_env.chia_remote())
    job = job_marker_prefix(ray.get_runtime_context().get_job_id()).encode()
    for environment, setting in ((first, b"1"), (second, b"2")):
        assert environment[b"USER_SETTING"] == setting
        assert environment[MARKER_VARIABLE.encode()].startswith(job)
        assert set(environment) == {b"PATH", b"USER_SETTING", MARKER_VARIABLE.encode()}


def test_kill_all_tracked_kills_every_tracked_tree_of_the_job(tagged: Any) -> None:
    started = [_start_trees(tagged, node, foreground_new_session=True) for node in ("head", "node_b")]
    registry = get_registry()
    task_ids = {ref.task_id().hex() for ref, _ in started}
    wait_until(lambda: task_ids <= set(ray.get(registry.tracked.remote())), message="both tasks tracked")
    assert kill_all_tracked(grace=5.0) >= 12
    for ref, tag in started:
        assert tagged.pids(tag) == []
        assert get(ref) == "finished"  # its subprocesses died; the task itself was not cancelled
    with pytest.raises(ValueError, match="grace"):
        kill_all_tracked(grace=-1)


@pytest.mark.parametrize("all_jobs", [False, True])
def test_kill_all_tracked_kills_subprocesses_whose_spawn_is_not_reported_yet(
    cluster: Any, tagged: Any, all_jobs: bool
) -> None:
    node_b = cluster.node_ids["node_b"]
    assert get(spawn_and_return.options(resources={"node_b": 0.01}).chia_remote(1)) == [0]
    job_hex = ray.get_runtime_context().get_job_id()
    reaper = job_actors.reaper_name(job_hex, node_b)
    wait_until(lambda: job_actors.lookup(reaper) is not None, message="the job's reaper on node_b")
    tag = tagged.new_tag("chia-unreported")
    ref = spawn_with_reports_held.options(resources={"node_b": 0.01}).chia_remote(tag)
    wait_until(lambda: len(tagged.pids(tag)) == 3, message="the task's tree")
    assert ref.task_id().hex() not in ray.get(get_registry().tracked.remote())  # not reported yet
    assert kill_all_tracked(grace=5.0, all_jobs=all_jobs) >= 3
    assert tagged.pids(tag) == []
    assert get(ref) == "finished"


DRIVER = textwrap.dedent(
    """
    import os, subprocess, sys, time
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from chia.base.ChiaFunction import ChiaFunction

    @ChiaFunction(num_cpus=1, resources={"node_b": 0.01})
    def hold(script):
        subprocess.Popen(["bash", "-c", script], start_new_session=True)
        subprocess.run(["bash", "-c", script.replace("-a ", "-a x")])
        return "finished"

    ray.init(address=sys.argv[1])
    ref = hold.chia_remote(sys.argv[2])
    print(ray.get_runtime_context().get_job_id(), flush=True)
    time.sleep(600)
    """
)


def test_a_driver_stopped_with_sigterm_leaves_no_tracked_subprocess(cluster: Any, tagged: Any) -> None:
    tag = tagged.new_tag("chia-driver")
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, cluster.cluster.address, TREE.format(tag=tag)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert driver.stdout is not None
        job_hex = driver.stdout.readline().strip()
        wait_until(lambda: len(tagged.pids(tag)) == 3, message="the driver's task tree")
        wait_until(lambda: len(tagged.pids(f"x{tag}")) == 3, message="the driver's foreground tree")
        registry = get_registry(job_hex)
        # The guarantee covers reported spawns (reports leave within milliseconds of a spawn).
        wait_until(
            lambda: sum(len(ps) for t in ray.get(registry.tracked.remote()).values() for ps in t.values()) == 2,
            message="both spawns reported",
        )
        driver.send_signal(signal.SIGTERM)  # what `ray job stop` does
        driver.wait(timeout=60)
        wait_until(lambda: not tagged.pids(tag) and not tagged.pids(f"x{tag}"), timeout=90, message="no leftovers")
        registry_name = job_actors.registry_name(job_hex)
        wait_until(
            lambda: registry_name not in {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)},
            timeout=60,
            message="the job's registry removing itself",
        )
    finally:
        driver.kill()
        driver.wait()
        tagged.tags.append(f"x{tag}")
