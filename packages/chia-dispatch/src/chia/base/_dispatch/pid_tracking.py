"""Worker side of ``chia_cancel``: which subprocesses each running chia task started.

Owns the per-task scope (a ``threading.local`` the task trampoline sets), the
``subprocess.Popen`` hook (installed once per worker process) and the
background reporter that ships spawn/end events to the job's head-pinned
registry. A task that starts no subprocess costs one thread-local set/reset;
a spawn costs a ``/proc`` read and a queue append, never a round trip; a task
that spawned asks the registry once, as it returns, whether it was cancelled.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import ray
import ray.exceptions

from chia.base._dispatch.proc_tree import MARKER_VARIABLE, ProcessId, start_ticks
from chia.base._dispatch.registry import Event, Spawn, TaskEnd, get_registry, task_marker

logger = logging.getLogger(__name__)


class _TaskSpawns:
    """Per running task, created on its first tracked spawn; ``run`` numbers it among this process's."""

    __slots__ = ("marker", "run", "task_id")

    def __init__(self, task_id: str, marker: str, run: int) -> None:
        self.task_id = task_id
        self.marker = marker
        self.run = run


class _Scope(threading.local):
    """Set by the task trampoline while a chia task body runs in this thread."""

    active: bool = False
    spawns: _TaskSpawns | None = None


scope = _Scope()
_FIRST_REPORT_TIMEOUT = 60.0
_install_lock = threading.Lock()
_runs = itertools.count()  # task executions that spawned, in this process
_installed = False


def enter() -> tuple[bool, _TaskSpawns | None]:
    """Mark this thread as running a chia task; returns what ``leave`` restores."""
    if not _installed:
        _install()
    saved = (scope.active, scope.spawns)
    scope.active, scope.spawns = True, None
    return saved


def leave(saved: tuple[bool, _TaskSpawns | None]) -> str | None:
    """End the task scope ``enter`` opened; reports the task's end if it spawned anything.

    Returns the task id when the task spawned tracked subprocesses, else None.
    """
    spawns = scope.spawns
    scope.active, scope.spawns = saved
    if spawns is None:
        return None
    node_id, worker = _process_facts()
    report(TaskEnd(spawns.task_id, node_id, worker, spawns.run))
    return spawns.task_id


def raise_if_cancelled(task_id: str) -> None:
    """Raise ``TaskCancelledError`` if a ``chia_cancel`` of this task began before it returned.

    Ray's cooperative cancel reaches the worker asynchronously: when the kill
    of a task's subprocess wins the race, the task body sees its child exit
    and returns normally. ``chia_cancel`` marks the task in the registry
    before it cancels and kills, so asking the registry after the body
    returned tells a cancelled task from one that finished first. One round
    trip, paid only by tasks that started subprocesses.
    """
    try:
        registry = _reporter.registry() or get_registry()
        cancelled = ray.get(registry.is_cancelling.remote(task_id), timeout=_FIRST_REPORT_TIMEOUT)
    except Exception:
        _reporter.warn()
        return
    if cancelled:
        raise ray.exceptions.TaskCancelledError(
            error_message=f"task {task_id} was cancelled by chia_cancel while its subprocesses were being killed"
        )


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        original: Callable[..., None] = subprocess.Popen.__init__
        signature = inspect.signature(original)

        @functools.wraps(original)
        def tracking_init(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
            if not scope.active:
                original(self, *args, **kwargs)
                return
            spawns = scope.spawns or _begin_task()
            bound = signature.bind(self, *args, **kwargs)
            bound.arguments["env"] = _with_marker(bound.arguments.get("env"), spawns.marker)
            original(*bound.args, **bound.kwargs)
            ticks = start_ticks(self.pid)
            if ticks is not None:
                node_id, worker = _process_facts()
                report(Spawn(spawns.task_id, node_id, worker, ProcessId(self.pid, ticks), spawns.run))

        subprocess.Popen.__init__ = tracking_init  # type: ignore[method-assign]
        _installed = True


def _with_marker(env: Any, marker: str) -> dict[Any, Any]:
    merged = dict(os.environ if env is None else env)
    if merged and isinstance(next(iter(merged)), bytes):
        merged[MARKER_VARIABLE.encode()] = marker.encode()
    else:
        merged[MARKER_VARIABLE] = marker
    return merged


def _begin_task() -> _TaskSpawns:
    context = ray.get_runtime_context()
    task_id = context.get_task_id() or ""
    spawns = _TaskSpawns(task_id, task_marker(context.get_job_id(), task_id), next(_runs))
    scope.spawns = spawns
    return spawns


@functools.cache
def _process_facts() -> tuple[str, ProcessId]:
    """(node id, this worker process): constant for a worker process."""
    pid = os.getpid()
    return ray.get_runtime_context().get_node_id(), ProcessId(pid, start_ticks(pid) or 0)


class _Reporter:
    """Ships events to the registry from a daemon thread, batched, in the order they happened.

    Ray may run the registry's (async) calls in another order; the registry
    copes (a spawn whose run already ended is dropped).

    The first event of a worker process is delivered synchronously (one
    round trip per process, not per task; the job's first spawn also waits
    for the registry to start): a worker dies with its job, and an event
    still queued for a registry that is not up yet would die with it.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._queue: list[Event] = []
        self._thread: threading.Thread | None = None
        self._registry: Any = None
        self._warned = False

    def put(self, event: Event) -> None:
        if self._registry is None and self._deliver_first(event):
            return
        with self._condition:
            self._queue.append(event)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="chia-pid-reporter", daemon=True)
                self._thread.start()
            self._condition.notify()

    def _deliver_first(self, event: Event) -> bool:
        try:
            registry = get_registry()
            ray.get(registry.report.remote([event]), timeout=_FIRST_REPORT_TIMEOUT)
        except Exception:
            self._warn()
            return False
        self._registry = registry
        return True

    def registry(self) -> Any:
        """The registry handle once the first event reached it, else None."""
        return self._registry

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue:
                    self._condition.wait()
                batch, self._queue = self._queue, []
            try:
                if self._registry is None:
                    self._registry = get_registry()
                self._registry.report.remote(batch)
            except Exception:
                self._registry = None
                self._warn()

    def warn(self) -> None:
        """Log (once per process) that the registry cannot be reached."""
        self._warn()

    def _warn(self) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "could not report subprocesses to the chia pid registry; chia_cancel may not reach them",
                exc_info=True,
            )


_reporter = _Reporter()


def report(event: Event) -> None:
    """Queue ``event`` for this job's registry (never blocks on Ray)."""
    _reporter.put(event)
