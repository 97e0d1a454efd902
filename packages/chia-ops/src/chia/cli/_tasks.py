"""The tasks ``chia status`` lists and ``chia cancel`` selects: Ray's state API joined with chia's pid registries.

Owns one listing of the cluster's unfinished function tasks (a single
``list_tasks`` call with server-side filters, latest attempt per task), its
join with what every job's pid registry tracks (the live subprocess trees
and the stuck causes ``chia_wait`` recorded: one actor call per job), the
selection by tag pattern, function, state and task id, and the table.
Never one call per task, so thousands of tasks list in one round trip each.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from ray.util.state import list_tasks

from chia.base.pid_registry import TrackedProcess, TrackedTask, task_tags, tracked_tasks
from chia.cli._exit import CliError, ExitCode

STATES = ("running", "pending", "stuck")
"""chia's task states: running on a worker, waiting (for arguments, a node, memory), or judged stuck by chia_wait."""

TASK_LIMIT = 10_000
"""The most tasks one listing returns (Ray's state API's own upper limit)."""

F = TypeVar("F", bound=Callable[..., Any])

_STATE_API_TIMEOUT_S = 30
_RUNNING_STATES = frozenset({"RUNNING", "RUNNING_IN_RAY_GET", "RUNNING_IN_RAY_WAIT", "SUBMITTED_TO_WORKER"})
_ENDED_STATES = ("FINISHED", "FAILED")


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One unfinished task as ``chia status`` shows it (``--json``: these fields)."""

    task_id: str
    job_id: str
    function: str
    tag: str | None
    """From the task name, else from the job's pid registry (calls past ``CHIA_TAGGED_TASK_NAMES``)."""
    name: str
    """Ray's task name: ``function[tag]`` for a tagged call (up to the limit), the display name for a display-named one."""
    state: str
    """``running``, ``pending`` or ``stuck``."""
    ray_state: str
    node_id: str | None
    age_s: float
    """Seconds since the task was submitted."""
    processes: tuple[TrackedProcess, ...]
    stuck_cause: str | None


@dataclass(frozen=True, slots=True)
class TaskListing:
    """The tasks found, and whether Ray's state API cut the list at :data:`TASK_LIMIT`."""

    tasks: list[TaskRow]
    truncated: bool


def tag_of(name: str, function: str) -> str | None:
    """The tag in a Ray task name (``function[tag]`` or ``display name[tag]``), None when untagged."""
    if not name.endswith("]"):
        return None
    if name.startswith(f"{function}["):
        return name[len(function) + 1 : -1]
    head, bracket, rest = name.partition("[")
    return rest[:-1] if bracket and head else None


def _chia_state(ray_state: str, stuck_cause: str | None) -> str:
    if ray_state in _RUNNING_STATES:
        return "running"
    return "stuck" if stuck_cause is not None else "pending"


def join(rows: Iterable[Any], tracked: Mapping[str, TrackedTask], now_ms: float) -> list[TaskRow]:
    """State API rows (latest attempt per task) joined with the registries' view, oldest first."""
    latest: dict[str, Any] = {}
    for row in rows:
        known = latest.get(row.task_id)
        if known is None or (row.attempt_number or 0) >= (known.attempt_number or 0):
            latest[row.task_id] = row
    tasks = []
    for task_id, row in latest.items():
        entry = tracked.get(task_id)
        function = str(row.func_or_class_name or row.name or "?")
        name = str(row.name or function)
        cause = None if entry is None else entry.stuck_cause
        created = row.creation_time_ms or now_ms
        tasks.append(
            TaskRow(
                task_id=task_id,
                job_id=str(row.job_id),
                function=function,
                tag=tag_of(name, function),
                name=name,
                state=_chia_state(str(row.state), cause),
                ray_state=str(row.state),
                node_id=row.node_id or None,
                age_s=max(0.0, (now_ms - created) / 1000),
                processes=() if entry is None else entry.processes,
                stuck_cause=cause,
            )
        )
    return sorted(tasks, key=lambda task: -task.age_s)


def list_unfinished(address: str) -> TaskListing:
    """The cluster's unfinished function tasks with their tracked trees and tags: one state API call, two per job.

    Actor tasks (chia's own service actors among them) are left out. Needs the
    dashboard (Ray's state API); CliError naming it otherwise.
    """
    filters: list[tuple[str, str, str]] = [("type", "=", "NORMAL_TASK")]
    filters += [("state", "!=", state) for state in _ENDED_STATES]
    try:
        rows = list_tasks(
            address=address,
            filters=filters,  # type: ignore[arg-type]  # Ray annotates a list of a union it does not export
            detail=True,
            limit=TASK_LIMIT,
            timeout=_STATE_API_TIMEOUT_S,
            raise_on_missing_output=False,
        )
    except Exception as exc:  # the state API raises its own and connection errors alike: one line either way
        raise CliError(
            f"cannot list the tasks of the cluster at {address}: Ray's state API did not answer ({exc}); "
            "it needs the dashboard (`ray start --head --include-dashboard=true`)",
            ExitCode.ERROR,
        ) from None
    tasks = join(rows, tracked_tasks(all_jobs=True), time.time() * 1000)
    untagged = [task.task_id for task in tasks if task.tag is None]
    if untagged:  # tags that task names do not carry: one registry call per job
        found = task_tags(untagged)
        tasks = [
            dataclasses.replace(task, tag=found[task.task_id]) if task.task_id in found else task for task in tasks
        ]
    return TaskListing(tasks, truncated=len(rows) >= TASK_LIMIT)


def _matches_any(value: str | None, patterns: Sequence[str]) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


def select(
    tasks: Iterable[TaskRow],
    *,
    tags: Sequence[str] = (),
    functions: Sequence[str] = (),
    states: Sequence[str] = (),
    task_ids: Sequence[str] = (),
) -> list[TaskRow]:
    """The tasks that match every kind of filter given (within a kind, any of its values).

    Tags and functions are shell patterns (``fnmatch``: ``sim_c8_*``); an
    untagged task matches no tag pattern. Task ids match exactly.
    """
    wanted_ids = set(task_ids)
    return [
        task
        for task in tasks
        if (not tags or _matches_any(task.tag, tags))
        and (not functions or _matches_any(task.function, functions))
        and (not states or task.state in states)
        and (not wanted_ids or task.task_id in wanted_ids)
    ]


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def format_table(tasks: Sequence[TaskRow]) -> list[str]:
    """A table a person reads: one line per task, its process tree indented below it, a stuck task's cause."""
    header = ("TASK ID", "FUNCTION", "TAG", "STATE", "NODE", "AGE", "PROCS")
    cells = [
        (
            task.task_id[:16],
            task.function,
            task.tag or "-",
            task.state,
            (task.node_id or "-")[:12],
            _age(task.age_s),
            str(len(task.processes)),
        )
        for task in tasks
    ]
    widths = [max(len(row[column]) for row in [header, *cells]) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)).rstrip()]
    for task, row in zip(tasks, cells, strict=True):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if task.stuck_cause is not None:
            lines.append(f"    stuck: {task.stuck_cause}")
        lines.extend(f"    {line}" for line in _tree_lines(task.processes))
    return lines


def _tree_lines(processes: Sequence[TrackedProcess]) -> list[str]:
    """Processes as a tree: each under its parent when the parent is listed, else at the top."""
    pids = {process.pid for process in processes}
    children: dict[int, list[TrackedProcess]] = {}
    roots = []
    for process in processes:
        if process.parent_pid in pids:
            children.setdefault(process.parent_pid, []).append(process)
        else:
            roots.append(process)
    lines: list[str] = []

    def walk(process: TrackedProcess, depth: int) -> None:
        lines.append(f"{'  ' * depth}{process.pid} {process.command}  (node {process.node_id[:12]})")
        for child in children.get(process.pid, ()):
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return lines


def filter_options(fn: F) -> F:
    """``--tag``, ``--function``, ``--state`` and ``--task``: the selection ``chia status`` and ``chia cancel`` share."""
    for option in reversed(
        (
            click.option(
                "--tag", "tags", multiple=True, metavar="PATTERN", help="Tasks whose tag matches (fnmatch; repeatable)."
            ),
            click.option(
                "--function",
                "functions",
                multiple=True,
                metavar="NAME",
                help="Tasks of this function (a name or fnmatch pattern; repeatable).",
            ),
            click.option(
                "--state",
                "states",
                multiple=True,
                type=click.Choice(STATES),
                help="Tasks in this state (repeatable).",
            ),
            click.option(
                "--task", "task_ids", multiple=True, metavar="ID", help="The task with this Ray task id (repeatable)."
            ),
        )
    ):
        fn = option(fn)
    return fn
