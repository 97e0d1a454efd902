"""The per-job pid registry: what chia tasks started, and killing it for ``chia_cancel``.

Owns the events workers report (a spawn, the end of a task that spawned),
the marker values that tie processes to tasks, the registry actor (one per
job, detached, on the head) with its per-node reapers, the stuck causes
``chia_wait`` records there, and the caller side: ``chia_cancel``,
``kill_all_tracked``, and, for other processes (the ``chia`` command line),
``tracked_tasks`` and ``cancel_tasks`` by task id. Users import the public
names from :mod:`chia.base.pid_registry`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, TypeVar

import ray

from chia.base._dispatch import job_actors
from chia.base._dispatch.proc_tree import KillTarget, ProcessId, ProcessInfo, alive, describe_trees, kill_tree

if TYPE_CHECKING:
    from ray import ObjectRef

    from chia.base._dispatch.refs import ObjectRefCallback

logger = logging.getLogger(__name__)

_JOB_END_GRACE = 5.0  # the job is gone: whatever it left gets 5 s to exit cleanly
_CANCEL_MARK_TTL = 600.0
_MAX_CANCEL_MARKS = 100_000
_SWEEP_INTERVAL = 30.0
_ENDED_MEMORY = 600.0  # how long a task execution's end is remembered, for spawn reports that arrive after it
_MAX_ENDED = 100_000
_REAPER_LINGER = 60.0  # a reaper outlives its job this long, so the registry's final kill still reaches it
_MAX_CONCURRENCY = 10_000
_SETTLE_TIMEOUT = 10.0  # how long chia_cancel waits for the task to stop before its final sweep
_MAX_STUCK_NOTES = 10_000  # stuck causes a registry keeps (the latest); status shows those of unfinished tasks
_MAX_TAGS = 250_000  # tags of tasks whose names do not carry them, the latest; status shows those of unfinished tasks

_Killed: TypeAlias = set[tuple[str, ProcessId]]  # (node id, process) signalled: unions count a process once


# --- what workers report, and how their processes are marked ------------------------


class Spawn(NamedTuple):
    """Task ``task_id``, running in ``worker`` on ``node_id``, started ``process``.

    ``run`` numbers the task executions of that worker process: a retry of
    the task in the same worker is a new run.
    """

    task_id: str
    node_id: str
    worker: ProcessId
    process: ProcessId
    run: int


class TaskEnd(NamedTuple):
    """Run ``run`` of task ``task_id`` (which had spawned something) returned or raised in ``worker``."""

    task_id: str
    node_id: str
    worker: ProcessId
    run: int


Event = Spawn | TaskEnd


def job_marker_prefix(job_hex: str) -> str:
    """Marker prefix shared by every task of ``job_hex`` in this cluster.

    The cluster's GCS address is part of it: job and task ids repeat across
    clusters, and several clusters can share a machine.
    """
    return f"{ray.get_runtime_context().gcs_address}/{job_hex}/"


def task_marker(job_hex: str, task_id: str) -> str:
    """The ``CHIA_TASK_MARKER`` value of the subprocesses task ``task_id`` starts."""
    return job_marker_prefix(job_hex) + task_id


# --- the actors ---------------------------------------------------------------------


class _Reaper:
    """Kills process trees on the node it runs on (one per job and node)."""

    def __init__(self, job_hex: str) -> None:
        self._job_hex = job_hex
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="chia-reaper")
        self._watcher: asyncio.Task[None] | None = None

    def _start(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(
                job_actors.run_when_job_ends(self._job_hex, self._linger_then_exit)
            )

    async def _linger_then_exit(self) -> None:
        await asyncio.sleep(_REAPER_LINGER)
        job_actors.exit_current_actor()

    async def kill(self, target: KillTarget, grace: float) -> list[ProcessId]:
        self._start()
        return await asyncio.get_running_loop().run_in_executor(self._pool, kill_tree, target, grace)

    async def which_alive(self, processes: list[ProcessId]) -> list[ProcessId]:
        self._start()
        return alive(processes)

    async def describe(self, targets: dict[str, KillTarget]) -> dict[str, list[ProcessInfo]]:
        self._start()
        return await asyncio.get_running_loop().run_in_executor(self._pool, describe_trees, targets)


_ReaperActor = ray.remote(_Reaper)


@dataclass(frozen=True, slots=True)
class TrackedProcess:
    """A live process of a task's tracked tree, as :func:`tracked_tasks` reports it. Experimental."""

    node_id: str
    pid: int
    parent_pid: int
    command: str
    """Its command line, arguments joined by spaces (at most 200 characters)."""


@dataclass(frozen=True, slots=True)
class TrackedTask:
    """What the pid registries know of one task. Experimental.

    ``processes``: the live processes of the trees the task started (what
    ``chia_cancel`` would kill: tracked subprocesses, their descendants,
    process groups and sessions, and daemons carrying the task's marker), on
    every node. ``stuck_cause``: why ``chia_wait`` judged the task stuck,
    when it did.
    """

    task_id: str
    job_id: str
    processes: tuple[TrackedProcess, ...] = ()
    stuck_cause: str | None = None


@dataclass(slots=True)
class _TaskEntry:
    """What one task started, by node, and which worker process ran it."""

    processes: dict[str, list[ProcessId]] = field(default_factory=dict)
    workers: dict[str, ProcessId] = field(default_factory=dict)

    def add(self, spawn: Spawn) -> None:
        self.processes.setdefault(spawn.node_id, []).append(spawn.process)
        self.workers[spawn.node_id] = spawn.worker


class PidRegistryActor:
    """Ray actor that maps task IDs to subprocess PIDs. Stable.

    One per job, detached, pinned to the head node, created lazily on the
    job's first tracked spawn (or first tag a task name does not carry) and
    looked up by name by workers and the driver. Workers report each spawn
    (pid + start time, so a reused pid is never killed) and the end of each task that spawned
    anything; a task's entries are forgotten when it ends, so memory stays
    bounded however many tasks run. Tasks whose worker died without
    reporting (a crash, ``ray.cancel(force=True)``) are treated as cancelled:
    their processes are killed and forgotten at the next periodic sweep.

    Scope: a registry only ever touches its own job's processes. When the
    job ends (driver exit, ``ray job stop``, driver killed) the registry
    kills every process its job's tasks started that is still running,
    then removes itself.
    """

    def __init__(self, job_hex: str) -> None:
        self._job_hex = job_hex
        self._tasks: dict[str, _TaskEntry] = {}
        self._cancelling: OrderedDict[str, tuple[float, float]] = OrderedDict()  # task -> (expiry, grace)
        self._inflight: dict[str, set[asyncio.Task[_Killed]]] = {}
        self._reapers: dict[str, Any] = {}
        self._background: list[asyncio.Task[None]] = []
        self._stuck: OrderedDict[str, str] = OrderedDict()  # task -> why chia_wait judged it stuck
        self._tags: OrderedDict[str, str] = OrderedDict()  # task -> its tag, when its Ray task name lacks it
        # Executions that ended (task, worker, run) -> (expiry, None): Ray runs an async actor's calls in any
        # order, so a worker's spawn report can arrive after the report of its task's end.
        self._ended: OrderedDict[tuple[str, ProcessId, int], tuple[float, None]] = OrderedDict()

    def _start(self) -> None:
        if not self._background:
            loop = asyncio.get_running_loop()
            self._background = [
                loop.create_task(job_actors.run_when_job_ends(self._job_hex, self._on_job_end)),
                loop.create_task(self._sweep_forever()),
            ]

    # --- reports from workers -------------------------------------------------------

    async def report(self, events: list[Event]) -> None:
        """Record spawn/end events from a worker (fire-and-forget from the worker's reporter)."""
        self._start()
        for event in events:
            if isinstance(event, Spawn):
                self._reaper(event.node_id)  # start it now, so a cancel finds it warm
                if event.task_id in self._cancelling:
                    # Reported after its cancel began: it must not survive.
                    self._kill_later(event.task_id, {event.node_id: [event.process]}, self._grace_of(event.task_id))
                elif (event.task_id, event.worker, event.run) not in self._ended:
                    self._tasks.setdefault(event.task_id, _TaskEntry()).add(event)
                # else: its execution already ended, and with it the tracking of what it started
            else:
                _mark(self._ended, (event.task_id, event.worker, event.run), None, _ENDED_MEMORY, _MAX_ENDED)
                entry = self._tasks.pop(event.task_id, None)
                self._tags.pop(event.task_id, None)
                if event.task_id in self._cancelling:
                    # Ended while being cancelled. Its node is searched for the task's
                    # marker too: the cancel may have cut a spawn off from its report.
                    processes = {event.node_id: []} if entry is None else entry.processes
                    self._kill_later(event.task_id, processes, self._grace_of(event.task_id))

    # --- cancellation -----------------------------------------------------------------

    async def begin_cancel(self, task_id: str, grace: float) -> int:
        """Mark ``task_id`` as being cancelled; returns how many of its processes are tracked.

        From now on its entries are kept even if the task ends, and a spawn
        reported later is killed on arrival.
        """
        self._start()
        _mark(self._cancelling, task_id, grace, _CANCEL_MARK_TTL, _MAX_CANCEL_MARKS)
        entry = self._tasks.get(task_id)
        return 0 if entry is None else sum(len(ps) for ps in entry.processes.values())

    async def is_cancelling(self, task_id: str) -> bool:
        """Whether a cancel of ``task_id`` began: asked by a task that spawned subprocesses as it returns."""
        return task_id in self._cancelling

    async def kill_task(self, task_id: str, grace: float) -> int:
        """Kill every tracked process tree of ``task_id`` and wait until they are gone.

        SIGTERM first, SIGKILL after ``grace`` seconds. Returns the number of
        processes signalled (descendants included).
        """
        self._start()
        entry = self._tasks.pop(task_id, None)
        processes = {} if entry is None else entry.processes
        # Every node this job spawned on is searched for the task's marker too: a
        # child whose report was cut short (the cancel interrupted its Popen) still carries it.
        self._kill_later(task_id, {node: processes.get(node, []) for node in {*self._reapers, *processes}}, grace)
        killed = await asyncio.gather(*self._inflight.get(task_id, ()))
        return len(_Killed().union(*killed))

    async def kill_all(self, grace: float = 25.0, *, all_nodes: bool = False) -> int:
        """Kill all tracked subprocess PIDs across all nodes.

        Dispatches the kills to the nodes that run them and waits for
        completion. Each kill sends SIGTERM, polls for the process to exit,
        and only escalates to SIGKILL if it is still alive after ``grace``
        seconds. Returns the number of PIDs targeted (descendants included,
        each counted once).

        Workers report spawns asynchronously, so a subprocess started just
        before the call may not be tracked yet: every node this job has
        spawned on (every alive node of the cluster with ``all_nodes=True``)
        is also searched for processes carrying this job's marker.
        Scope: this registry's job only (see :func:`kill_all_tracked` for
        every job).
        """
        self._start()
        tasks, self._tasks = self._tasks, {}
        roots: dict[str, list[ProcessId]] = {node: [] for node in self._reapers}
        if all_nodes:
            for node in await asyncio.to_thread(job_actors.alive_nodes):
                roots.setdefault(node["NodeID"], [])
        for entry in tasks.values():
            for node_id, processes in entry.processes.items():
                roots.setdefault(node_id, []).extend(processes)
        prefixes = (job_marker_prefix(self._job_hex),)
        killed = await asyncio.gather(
            *(
                self._kill_on(node, KillTarget(tuple(ps), marker_prefixes=prefixes), grace)
                for node, ps in roots.items()
            ),
            *(kill for kills in list(self._inflight.values()) for kill in kills),
        )
        return len(_Killed().union(*killed))

    async def cancel(self, task_ids: list[str], grace: float) -> int:
        """``chia_cancel``'s tree kill for tasks named by id (no ObjectRef needed: any process may ask).

        Marks each task as being cancelled (a spawn reported later is killed
        on arrival, and a task that spawned raises ``TaskCancelledError`` as
        it returns), kills its trees, then sweeps for its marker once more
        for spawns that raced the first kill. Returns the number of processes
        signalled.
        """
        for task_id in task_ids:
            await self.begin_cancel(task_id, grace)
        first = await asyncio.gather(*(self.kill_task(task_id, grace) for task_id in task_ids))
        again = await asyncio.gather(*(self.kill_task(task_id, grace) for task_id in task_ids))
        return sum(first) + sum(again)

    async def note_stuck(self, task_id: str, cause: str) -> None:
        """Remember why ``chia_wait`` judged ``task_id`` stuck (the latest causes, bounded)."""
        self._start()
        self._stuck[task_id] = cause
        self._stuck.move_to_end(task_id)
        while len(self._stuck) > _MAX_STUCK_NOTES:
            self._stuck.popitem(last=False)

    async def note_tags(self, pairs: list[tuple[str, str]]) -> None:
        """Remember the tags of tasks whose Ray task names do not carry them (the latest, bounded)."""
        tags = self._tags
        tags.update(pairs)
        for _ in range(len(tags) - _MAX_TAGS):
            tags.popitem(last=False)

    async def tags_of(self, task_ids: list[str]) -> dict[str, str]:
        """The tags remembered for ``task_ids`` (those known)."""
        tags = self._tags
        return {task_id: tags[task_id] for task_id in task_ids if task_id in tags}

    async def describe(self) -> list[TrackedTask]:
        """Every task with tracked processes or a stuck cause, with its live trees (one ``/proc`` scan per node)."""
        by_node: dict[str, dict[str, KillTarget]] = {}
        for task_id, entry in self._tasks.items():
            markers = frozenset({self._marker(task_id)})
            for node_id, roots in entry.processes.items():
                by_node.setdefault(node_id, {})[task_id] = KillTarget(tuple(roots), markers)
        answers = await asyncio.gather(*(self._describe_on(node, targets) for node, targets in by_node.items()))
        processes: dict[str, list[TrackedProcess]] = {}
        for node_id, described in zip(by_node, answers, strict=True):
            for task_id, infos in described.items():
                processes.setdefault(task_id, []).extend(
                    TrackedProcess(node_id, info.pid, info.parent_pid, info.command) for info in infos
                )
        return [
            TrackedTask(task_id, self._job_hex, tuple(processes.get(task_id, ())), self._stuck.get(task_id))
            for task_id in dict.fromkeys([*self._tasks, *self._stuck])
        ]

    async def tracked(self) -> dict[str, dict[str, list[ProcessId]]]:
        """Snapshot: task id -> node id -> processes it started that are tracked."""
        return {task: {n: list(ps) for n, ps in entry.processes.items()} for task, entry in self._tasks.items()}

    # --- internals ------------------------------------------------------------------------

    def _grace_of(self, task_id: str) -> float:
        return self._cancelling[task_id][1]

    def _marker(self, task_id: str) -> str:
        return task_marker(self._job_hex, task_id)

    def _reaper(self, node_id: str) -> Any:
        reaper = self._reapers.get(node_id)
        if reaper is None:
            name = job_actors.reaper_name(self._job_hex, node_id)
            reaper = job_actors.get_or_create(_ReaperActor, name, self._job_hex, node_id=node_id)
            self._reapers[node_id] = reaper
        return reaper

    async def _describe_on(self, node_id: str, targets: dict[str, KillTarget]) -> dict[str, list[ProcessInfo]]:
        try:
            described: dict[str, list[ProcessInfo]] = await self._reaper(node_id).describe.remote(targets)
        except Exception:
            logger.warning("could not read the processes on node %s (is it gone?)", node_id, exc_info=True)
            return {}
        return described

    async def _kill_on(self, node_id: str, target: KillTarget, grace: float) -> _Killed:
        try:
            killed: list[ProcessId] = await self._reaper(node_id).kill.remote(target, grace)
        except Exception:
            logger.warning("could not kill processes on node %s (is it gone?)", node_id, exc_info=True)
            return set()
        return {(node_id, process) for process in killed}

    def _kill_later(self, task_id: str, processes: dict[str, list[ProcessId]], grace: float) -> None:
        if not processes:
            return
        markers = frozenset({self._marker(task_id)})
        kills = self._inflight.setdefault(task_id, set())
        loop = asyncio.get_running_loop()
        for node_id, roots in processes.items():
            kill = loop.create_task(self._kill_on(node_id, KillTarget(tuple(roots), markers), grace))
            kills.add(kill)
            kill.add_done_callback(functools.partial(self._forget_kill, task_id))

    def _forget_kill(self, task_id: str, kill: asyncio.Task[_Killed]) -> None:
        kills = self._inflight.get(task_id)
        if kills is not None:
            kills.discard(kill)
            if not kills:
                del self._inflight[task_id]

    async def _sweep_forever(self) -> None:
        """Kill and forget the entries of tasks whose worker died without reporting their end."""
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL)
            workers: dict[str, set[ProcessId]] = {}
            for entry in self._tasks.values():
                for node_id, worker in entry.workers.items():
                    workers.setdefault(node_id, set()).add(worker)
            for node_id, candidates in workers.items():
                try:
                    living = set(await self._reaper(node_id).which_alive.remote(list(candidates)))
                except Exception:
                    logger.debug("sweep: node %s unreachable", node_id, exc_info=True)
                    continue
                dead = candidates - living
                for task, entry in list(self._tasks.items()):
                    if entry.workers.get(node_id) in dead:
                        del self._tasks[task]
                        self._kill_later(task, entry.processes, _JOB_END_GRACE)

    async def _on_job_end(self) -> None:
        tasks, self._tasks = self._tasks, {}
        roots: dict[str, list[ProcessId]] = {node: [] for node in self._reapers}
        for entry in tasks.values():
            for node, processes in entry.processes.items():
                roots.setdefault(node, []).extend(processes)
        prefixes = (job_marker_prefix(self._job_hex),)
        targets = {node: KillTarget(tuple(ps), marker_prefixes=prefixes) for node, ps in roots.items()}
        await asyncio.gather(*(self._kill_on(node, target, _JOB_END_GRACE) for node, target in targets.items()))
        for reaper in self._reapers.values():
            ray.kill(reaper, no_restart=True)
        job_actors.exit_current_actor()


_RegistryActor = ray.remote(PidRegistryActor)

_K = TypeVar("_K")
_V = TypeVar("_V")


def _mark(marks: OrderedDict[_K, tuple[float, _V]], key: _K, value: _V, ttl: float, limit: int) -> None:
    """Set ``marks[key] = (expiry, value)`` as the newest mark, dropping expired ones and any beyond ``limit``."""
    now = time.monotonic()
    marks[key] = (now + ttl, value)
    marks.move_to_end(key)
    while marks and (len(marks) > limit or next(iter(marks.values()))[0] < now):
        marks.popitem(last=False)


_registries: dict[tuple[str, str], Any] = {}  # (GCS address, job hex) -> handle; lives as long as the job


def get_registry(job_hex: str | None = None) -> Any:
    """The registry actor of ``job_hex`` (default: this process's job), created if missing."""
    job_hex = job_hex or job_actors.current_job_hex()
    key = (ray.get_runtime_context().gcs_address, job_hex)
    registry = _registries.get(key)
    if registry is None:
        registry = job_actors.get_or_create(
            _RegistryActor, job_actors.registry_name(job_hex), job_hex, max_concurrency=_MAX_CONCURRENCY
        )
        _registries[key] = registry
    return registry


def _object_ref(ref: Any) -> ObjectRef[Any]:
    inner = ref if isinstance(ref, ray.ObjectRef) else getattr(ref, "ref", None)
    if not isinstance(inner, ray.ObjectRef):
        raise TypeError(
            f"chia_cancel needs the ObjectRef returned by chia_remote (or an ObjectRefCallback), got {ref!r}"
        )
    return inner


def chia_cancel(ref: ObjectRef[Any] | ObjectRefCallback, force: bool = False, *, grace: float = 25.0) -> None:
    """Cancel a running ChiaFunction task, killing its subprocesses first. Stable.

    Looks up the subprocesses the task started (with or without
    ``start_new_session``), kills each one's whole tree on the node where it
    runs — its process group and session, every descendant, and daemons
    that called ``setsid`` (found by the ``CHIA_TASK_MARKER`` variable they
    inherit: ``<GCS address>/<job id>/<task id>``) — with SIGTERM, then SIGKILL for whatever is alive after
    ``grace`` seconds, and returns once they are gone. A subprocess started
    while the cancel runs is killed too: on arrival of its report, or by a
    final sweep for the task's marker once the task has stopped (chia_cancel
    waits up to 10 s for that).

    Ray's cooperative cancellation is requested before the kill, and a task
    that started subprocesses asks the registry, as it returns, whether its
    cancel began; so a task blocked on a subprocess raises
    ``TaskCancelledError`` instead of returning when the subprocess dies,
    whichever arrives first, and ``get`` on the ref raises Ray's
    cancellation error. A dispatch relayed through the
    :class:`~chia.base.dispatch_proxy.DispatchProxy` is cancelled the same
    way (the proxy, which owns the relayed task, does it).

    Args:
        ref: The ``ObjectRef`` returned by ``chia_remote()`` (or an
            ``ObjectRefCallback`` wrapping one).
        force: Passed through to ``ray.cancel()``. If ``True``, the Ray
            worker is killed after the subprocesses; if ``False`` (default),
            a ``TaskCancelledError`` is raised cooperatively.
        grace: Seconds between SIGTERM and SIGKILL.

    Example::

        ref = run_simulation.chia_remote(config)
        chia_cancel(ref)             # simulator and its children are gone
    """
    if grace < 0:
        raise ValueError(f"grace must be >= 0 seconds, got {grace!r}")
    object_ref = _object_ref(ref)
    task_id = object_ref.task_id()
    task_hex, job_hex = task_id.hex(), task_id.job_id().hex()
    if not task_id.actor_id().is_nil():  # an actor call: maybe a dispatch relayed by the job's proxy
        proxy = job_actors.lookup(job_actors.proxy_name(job_hex))
        if proxy is not None and ray.get(proxy.cancel.remote(task_hex, force, grace)):
            ray.cancel(object_ref)
            return
    registry = get_registry(job_hex)
    ray.get(registry.begin_cancel.remote(task_hex, grace))
    ray.cancel(object_ref, force=False)
    ray.get(registry.kill_task.remote(task_hex, grace))
    if force:
        ray.cancel(object_ref, force=True)
    # A spawn racing the cancel may not have been reported (its report can even die
    # with a force-killed worker): once the task has stopped, sweep for its marker.
    ray.wait([object_ref], timeout=_SETTLE_TIMEOUT, fetch_local=False)
    ray.get(registry.kill_task.remote(task_hex, grace))


def kill_all_tracked(grace: float = 25.0, *, all_jobs: bool = False) -> int:
    """Kill every tracked subprocess tree of this job (or of every job). Stable.

    Runs :meth:`PidRegistryActor.kill_all` from the driver. With
    ``all_jobs=True`` every job's registry is asked (what ``chia cancel
    --all`` uses: a CLI process is a job of its own), and each searches every
    alive node for its job's marker. Subprocesses whose spawn was not
    reported yet are killed too (found by the job's marker on the nodes
    searched). Returns the number of processes signalled; 0 when nothing was
    ever tracked.
    """
    if grace < 0:
        raise ValueError(f"grace must be >= 0 seconds, got {grace!r}")
    registries = _existing_registries(all_jobs)
    return sum(_replies([registry.kill_all.remote(grace, all_nodes=all_jobs) for registry in registries], all_jobs))


def _replies(refs: list[Any], other_jobs: bool) -> list[Any]:
    """The registries' replies; with ``other_jobs``, those of registries gone meanwhile are left out.

    Another job may end between the listing of the registries and the call:
    its registry went, and its processes with it.
    """
    replies = []
    for ref in refs:
        try:
            replies.append(ray.get(ref))
        except ray.exceptions.RayActorError:
            if not other_jobs:
                raise
    return replies


def _existing_registries(all_jobs: bool) -> list[Any]:
    """The registry of this job, or of every job (those that exist: none is created)."""
    if all_jobs:
        names: Iterable[str] = (
            actor["name"]
            for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor["namespace"] == job_actors.NAMESPACE and actor["name"].startswith(job_actors.REGISTRY_PREFIX)
        )
    else:
        names = [job_actors.registry_name(job_actors.current_job_hex())]
    return [r for r in map(job_actors.lookup, names) if r is not None]


def _job_of(task_id: str) -> str:
    """The job hex of a task id hex; ValueError naming the value when it is not a Ray task id."""
    try:
        return ray.TaskID(bytes.fromhex(task_id)).job_id().hex()
    except ValueError:
        raise ValueError(
            f"{task_id!r} is not a Ray task id ({2 * ray.TaskID.size()} hex digits, as `chia status` "
            "and Ray's state API show it)"
        ) from None


def tracked_tasks(*, all_jobs: bool = True) -> dict[str, TrackedTask]:
    """What the pid registries know of running tasks, by task id hex. Experimental.

    Each job's registry (every job's, or with ``all_jobs=False`` this
    process's) reports the tasks whose subprocesses it tracks, with the live
    processes of their trees (read on each node in one ``/proc`` scan), and
    the tasks ``chia_wait`` judged stuck, with the cause. One actor call per
    job, whatever the number of tasks: what ``chia status`` shows.
    """
    found: dict[str, TrackedTask] = {}
    for tasks in _replies([registry.describe.remote() for registry in _existing_registries(all_jobs)], all_jobs):
        found.update((task.task_id, task) for task in tasks)
    return found


def _registries_of(task_ids: Iterable[str]) -> list[tuple[Any, list[str]]]:
    """The existing registries of the tasks' jobs, each with its tasks (none is created: a job without one is left out).

    Raises ValueError for an id that is not a Ray task id, before any call.
    """
    by_job: dict[str, list[str]] = {}
    for task_id in task_ids:
        by_job.setdefault(_job_of(task_id), []).append(task_id)
    found = []
    for job_hex, ids in by_job.items():
        registry = job_actors.lookup(job_actors.registry_name(job_hex))
        if registry is not None:
            found.append((registry, ids))
    return found


def task_tags(task_ids: Iterable[str]) -> dict[str, str]:
    """The tags of tasks whose Ray task names do not carry them, by task id hex. Experimental.

    A tagged call's task is named ``function[tag]`` until its process has
    given Ray ``CHIA_TAGGED_TASK_NAMES`` distinct tagged names (10,000 by
    default); the tags of later calls, and of calls under an explicit
    ``name`` option, go to the job's registry about half a second after the
    call, which keeps the latest 250,000. One actor call per job; tasks of
    jobs without a registry, and tasks it does not know, are left out.

    Raises:
        ValueError: a task id that is not 48 hex digits.
    """
    found: dict[str, str] = {}
    calls = [registry.tags_of.remote(ids) for registry, ids in _registries_of(task_ids)]
    for tags in _replies(calls, other_jobs=True):
        found.update(tags)
    return found


def cancel_tasks(task_ids: Iterable[str], grace: float = 25.0) -> int:
    """``chia_cancel``'s tree kill for tasks named by id, from any process and any job. Experimental.

    For a caller that holds no ObjectRef (``chia cancel --task/--tag``): each
    task's registry marks it as being cancelled and kills its subprocess trees
    (SIGTERM, SIGKILL after ``grace`` seconds) on every node, waiting until
    they are gone; a task blocked on its subprocess then raises Ray's
    ``TaskCancelledError`` as it returns, and a subprocess it starts later is
    killed on arrival. Ray itself cannot cancel another job's task, so a task
    that started no subprocess runs on (its own driver can ``chia_cancel`` it).
    Returns the number of processes signalled.

    Raises:
        ValueError: a task id that is not 48 hex digits, or a negative grace.
    """
    if grace < 0:
        raise ValueError(f"grace must be >= 0 seconds, got {grace!r}")
    return sum(ray.get([registry.cancel.remote(ids, grace) for registry, ids in _registries_of(task_ids)]))


def note_stuck(task_id: str, cause: str) -> None:
    """Record, without waiting, why ``chia_wait`` judged ``task_id`` stuck, in its job's registry."""
    try:
        get_registry(_job_of(task_id)).note_stuck.remote(task_id, cause)
    except Exception:  # best effort: a status detail must never break the wait
        logger.debug("could not record the stuck cause of task %s", task_id, exc_info=True)
