"""``chia status`` lists chia's tasks and ``chia cancel`` kills selected ones, on the token-authenticated cluster.

Real tasks run real process trees (``exec -a <tag>-child sleep``, found in
/proc by their tag); ``chia`` runs in a subprocess, a Ray job of its own, as a
user runs it, or in this process where only the answer to a question matters.
"""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import ray
from click.testing import CliRunner

from chia.base.ChiaFunction import ChiaFunction, chia_cancel, get
from chia.base.pid_registry import TrackedProcess, TrackedTask, tracked_tasks
from chia.cli import _tasks
from chia.cli.main import cli
from chia_testing import TaggedProcesses, tagged_pids, wait_until

RunChia = Callable[..., subprocess.CompletedProcess[str]]

# A child and a grandchild sleeper under a bash (argv[0] = <tag>-child / <tag>-grandchild).
TREE = "(exec -a {tag}-child sleep 300) & bash -c '(exec -a {tag}-grandchild sleep 300) & wait' & wait"


@ChiaFunction(num_cpus=0)
def run_tree(tag: str) -> str:
    subprocess.run(["bash", "-c", TREE.format(tag=tag)])
    return "finished"


@ChiaFunction(num_cpus=0)
def run_other_tree(tag: str) -> str:
    subprocess.run(["bash", "-c", TREE.format(tag=tag)])
    return "finished"


@ChiaFunction(num_cpus=0, resources={"no_such_node": 1})
def never_placed() -> None:
    """Stays pending: no node has the resource."""


def start_trees(*calls: tuple[str, Any, dict[str, Any]]) -> list[Any]:
    """Dispatch ``fn`` tagged ``tag`` per call; wait until each tree runs, is tracked and listed by the state API."""
    refs = [fn.options(_chia_tag=tag, **options).chia_remote(tag) for tag, fn, options in calls]
    task_ids = [ref.task_id().hex() for ref in refs]
    for tag, _, _ in calls:
        wait_until(functools.partial(tagged_pids, f"{tag}-grandchild"), message=f"the tree of {tag} to start")
    wait_until(lambda: set(task_ids) <= set(tracked_tasks()), message="the registry to track the trees")
    address = ray.get_runtime_context().gcs_address
    wait_until(  # workers report task events to Ray's state API about once a second
        lambda: (
            len(_tasks.select(_tasks.list_unfinished(address).tasks, task_ids=task_ids, states=["running"]))
            == len(task_ids)
        ),
        message="Ray's state API to list the tasks as running",
    )
    return refs


def tree_pids(tag: str) -> set[int]:
    return set(tagged_pids(f"{tag}-child")) | set(tagged_pids(f"{tag}-grandchild"))


@pytest.mark.ray_compat
def test_status_shows_tasks_with_tag_node_state_age_and_process_tree(
    cluster: Any, run_chia: RunChia, tagged: TaggedProcesses
) -> None:
    tag = tagged.new_tag("st")
    head_ref, node_b_ref = start_trees((f"{tag}-a", run_tree, {}), (f"{tag}-b", run_tree, {"resources": {"node_b": 1}}))
    pending_ref = never_placed.options(_chia_tag=f"{tag}-p").chia_remote()
    try:
        wait_until(  # Ray's state API lists a submitted task once its owner reports it, about a second later
            lambda: _tasks.select(
                _tasks.list_unfinished(cluster.address).tasks,
                task_ids=[pending_ref.task_id().hex()],
                states=["pending"],
            ),
            message="Ray's state API to list the pending task",
        )
        result = run_chia("status", "--json", "--tag", f"{tag}-*", "--address", cluster.address)
        assert result.returncode == 0, result.stderr
        tasks = {task["tag"]: task for task in json.loads(result.stdout)["tasks"]}
        assert set(tasks) == {f"{tag}-a", f"{tag}-b", f"{tag}-p"}
        for name, ref in ((f"{tag}-a", head_ref), (f"{tag}-b", node_b_ref)):
            task = tasks[name]
            assert task["task_id"] == ref.task_id().hex() and task["function"] == "run_tree"
            assert task["state"] == "running" and task["name"] == f"run_tree[{name}]" and task["age_s"] >= 0
            assert tree_pids(name) <= {process["pid"] for process in task["processes"]}
            assert any(process["command"].startswith(f"{name}-child") for process in task["processes"])
        assert tasks[f"{tag}-b"]["node_id"] == cluster.node_ids["node_b"]
        assert {process["node_id"] for process in tasks[f"{tag}-b"]["processes"]} == {cluster.node_ids["node_b"]}
        assert tasks[f"{tag}-p"]["state"] == "pending" and tasks[f"{tag}-p"]["processes"] == []

        pending = CliRunner().invoke(cli, ["status", "--json", "--tag", f"{tag}-*", "--state", "pending"])
        assert [task["tag"] for task in json.loads(pending.stdout)["tasks"]] == [f"{tag}-p"]
        by_function = CliRunner().invoke(cli, ["status", "--json", "--function", "never_*", "--tag", f"{tag}-*"])
        assert [task["tag"] for task in json.loads(by_function.stdout)["tasks"]] == [f"{tag}-p"]

        text = CliRunner().invoke(cli, ["status", "--tag", f"{tag}-a"])
        assert text.exit_code == 0, text.output
        assert "tasks matching: 1 running, 0 pending, 0 stuck" in text.stdout
        row = next(line for line in text.stdout.splitlines() if f"{tag}-a " in line)
        assert "run_tree" in row and "running" in row
        assert f"{tag}-a-child 300" in text.stdout and f"{tag}-a-grandchild 300" in text.stdout
    finally:
        for ref in (head_ref, node_b_ref):
            chia_cancel(ref, grace=1)
        ray.cancel(pending_ref, force=True)


DRIVER = """
import subprocess, sys
from chia.base.ChiaFunction import ChiaFunction

@ChiaFunction(num_cpus=0)
def run_tree(tag: str) -> str:
    subprocess.run(["bash", "-c", {tree!r}.format(tag=tag)])
    return "finished"

@ChiaFunction(num_cpus=0, resources={{"no_such_node": 1}})
def never_placed() -> None:
    pass

tag = sys.argv[1]
refs = [
    run_tree.options(_chia_tag=f"{{tag}}-a").chia_remote(f"{{tag}}-a"),
    run_tree.options(_chia_tag=f"{{tag}}-b", resources={{"node_b": 1}}).chia_remote(f"{{tag}}-b"),
    never_placed.options(_chia_tag=f"{{tag}}-p").chia_remote(),
]
sys.stdin.readline()  # the test ends the run
"""


def test_tags_left_out_of_task_names_still_list_and_cancel_by_tag(
    cluster: Any,
    run_chia: RunChia,
    start_chia: Callable[..., subprocess.Popen[str]],
    tagged: TaggedProcesses,
    tmp_path: Path,
) -> None:
    """A driver started with CHIA_TAGGED_TASK_NAMES=0 names no task by tag; chia finds the tags in its registry."""
    tag = tagged.new_tag("lim")
    script = tmp_path / "sweep.py"
    script.write_text(DRIVER.format(tree=TREE))
    driver = start_chia("run", "--address", cluster.address, str(script), tag, env={"CHIA_TAGGED_TASK_NAMES": "0"})
    try:
        for name in (f"{tag}-a", f"{tag}-b"):
            wait_until(functools.partial(tagged_pids, f"{name}-grandchild"), message=f"the tree of {name} to start")
        wanted = {f"{tag}-a": "running", f"{tag}-b": "running", f"{tag}-p": "pending"}
        wait_until(
            lambda: (
                {t.tag: t.state for t in _tasks.list_unfinished(cluster.address).tasks if (t.tag or "").startswith(tag)}
                == wanted
                or None
            ),
            message="chia to list the three tasks by their tags",
        )
        result = run_chia("status", "--json", "--tag", f"{tag}-*", "--address", cluster.address)
        assert result.returncode == 0, result.stderr
        tasks = {task["tag"]: task for task in json.loads(result.stdout)["tasks"]}
        assert {name: task["state"] for name, task in tasks.items()} == wanted
        assert {tasks[f"{tag}-a"]["name"], tasks[f"{tag}-b"]["name"]} == {"run_tree"}  # no tag in Ray's names
        assert tree_pids(f"{tag}-a") <= {process["pid"] for process in tasks[f"{tag}-a"]["processes"]}

        b_tree = tree_pids(f"{tag}-b")
        cancel = run_chia("cancel", "--tag", f"{tag}-a", "--grace", "1", "--yes", "--address", cluster.address)
        assert cancel.returncode == 0, cancel.stderr
        assert tree_pids(f"{tag}-a") == set() and tree_pids(f"{tag}-b") == b_tree
    finally:
        driver.communicate("\n", timeout=120)
    assert driver.returncode == 0, driver.stderr
    wait_until(lambda: not tree_pids(f"{tag}-b"), message="the job's end to kill what it left")


def test_cancel_by_tag_pattern_kills_those_trees_only(cluster: Any, run_chia: RunChia, tagged: TaggedProcesses) -> None:
    tag = tagged.new_tag("cx")
    *group, solo = start_trees(
        (f"{tag}-grp-1", run_tree, {}),
        (f"{tag}-grp-2", run_tree, {"resources": {"node_b": 1}}),
        (f"{tag}-solo", run_tree, {}),
    )
    try:
        result = run_chia("cancel", "--tag", f"{tag}-grp-*", "--grace", "1", "--yes", "--address", cluster.address)
        assert result.returncode == 0, result.stderr
        assert "2 task(s) selected" in result.stdout and f"{tag}-grp-1-child 300" in result.stdout
        assert "cancelled 2 task(s)" in result.stdout
        wait_until(
            lambda: not (tree_pids(f"{tag}-grp-1") | tree_pids(f"{tag}-grp-2")), message="the group's trees to go"
        )
        for ref in group:
            with pytest.raises(ray.exceptions.TaskCancelledError):
                get(ref, timeout=60)
        assert tree_pids(f"{tag}-solo"), "a task outside the pattern was killed"

        by_id = run_chia(
            "cancel", "--task", solo.task_id().hex(), "--grace", "1", "--yes", "--address", cluster.address
        )
        assert by_id.returncode == 0, by_id.stderr
        wait_until(lambda: not tree_pids(f"{tag}-solo"), message="the solo tree to go")
    finally:
        for ref in [*group, solo]:
            chia_cancel(ref, grace=1)


def test_cancel_by_function_asks_first_and_declined_kills_nothing(cluster: Any, tagged: TaggedProcesses) -> None:
    tag = tagged.new_tag("cf")
    [ref] = start_trees((tag, run_other_tree, {}))
    try:
        declined = CliRunner().invoke(cli, ["cancel", "--function", "run_other_tree", "--grace", "1"], input="n\n")
        assert declined.exit_code == 1  # ExitCode.ERROR: not confirmed
        assert f"{tag}-child 300" in declined.stdout and "did not cancel" in declined.stderr
        assert tree_pids(tag)

        accepted = CliRunner().invoke(cli, ["cancel", "--function", "run_other_tree", "--grace", "1"], input="y\n")
        assert accepted.exit_code == 0, accepted.output
        wait_until(lambda: not tree_pids(tag), message="the tree to go")
        with pytest.raises(ray.exceptions.TaskCancelledError):
            get(ref, timeout=60)
    finally:
        chia_cancel(ref, grace=1)


def test_cancel_reports_nothing_matching_as_not_found(cluster: Any) -> None:
    result = CliRunner().invoke(cli, ["cancel", "--tag", "no-such-tag-*", "--yes"])
    assert result.exit_code == 5  # ExitCode.NOT_FOUND
    assert "no unfinished task matches --tag 'no-such-tag-*'" in result.stderr


def test_cancel_needs_a_selection_and_all_alone() -> None:
    assert CliRunner().invoke(cli, ["cancel"]).exit_code == 2
    mixed = CliRunner().invoke(cli, ["cancel", "--all", "--tag", "x"])
    assert mixed.exit_code == 2 and "--all" in mixed.stderr


def state_row(task_id: str, name: str, state: str, attempt: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        task_id=task_id,
        job_id="01000000",
        func_or_class_name="simulate",
        name=name,
        state=state,
        node_id=None,
        creation_time_ms=1_000.0,
        attempt_number=attempt,
    )


def test_a_stuck_task_shows_the_cause_chia_wait_recorded() -> None:
    cause = "PENDING_NODE_ASSIGNMENT for 600 s while the cluster had its resources free (a wedged raylet)"
    tracked = {
        "t1": TrackedTask("t1", "01000000", (), cause),
        "t2": TrackedTask("t2", "01000000", (TrackedProcess("n" * 56, 42, 1, "sim --cores 8"),)),
    }
    rows = [
        state_row("t1", "simulate[c8]", "PENDING_NODE_ASSIGNMENT"),
        state_row("t2", "simulate", "PENDING_NODE_ASSIGNMENT"),  # an older attempt, replaced by the next row
        state_row("t2", "simulate", "RUNNING", attempt=1),
        state_row("t3", "simulate 8 cores[c8]", "PENDING_ARGS_AVAIL"),
    ]
    tasks = {task.task_id: task for task in _tasks.join(rows, tracked, now_ms=61_000.0)}
    assert [tasks[t].state for t in ("t1", "t2", "t3")] == ["stuck", "running", "pending"]
    assert tasks["t1"].stuck_cause == cause and tasks["t1"].tag == "c8" and tasks["t1"].age_s == 60.0
    assert tasks["t2"].tag is None and tasks["t3"].tag == "c8"
    assert [t.task_id for t in _tasks.select(tasks.values(), states=["stuck", "pending"])] == ["t1", "t3"]
    table = "\n".join(_tasks.format_table(list(tasks.values())))
    assert f"stuck: {cause}" in table and "42 sim --cores 8" in table
