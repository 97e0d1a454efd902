"""Stuck-task detection for ``chia_wait``: the evidence, the verdict, and how it is fetched.

Owns the cluster snapshot (task states from Ray's state API, available and
total resources, pending demand), the pure classification of one task
against it (the reference's four conditions) and the background querier
that keeps Ray's state API off the caller's path: one query in flight per
process, rate-limited, time-bounded, and a failing API degrades to "no
detection" with one warning. The state source is a seam: tests inject one.
"""

from __future__ import annotations

import concurrent.futures
import enum
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import ray

logger = logging.getLogger(__name__)

PENDING_NODE_ASSIGNMENT = "PENDING_NODE_ASSIGNMENT"
_QUERY_TIMEOUT = 10.0
_TASK_LIMIT = 10_000
_FAILURE_BACKOFF = 30.0
ResourceShape = frozenset[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """What the state API says about one task (its latest attempt)."""

    state: str
    required_resources: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """Evidence for stuck detection, taken at ``taken_at`` (``time.monotonic()``).

    ``tasks`` holds the job's unfinished tasks the state API reported, by
    task id hex. ``demands`` are the resource shapes with pending demand
    (``None`` when not fetched or unknown).
    """

    taken_at: float
    tasks: Mapping[str, TaskStatus]
    available: Mapping[str, float]
    total: Mapping[str, float]
    demands: frozenset[ResourceShape] | None = None


class Verdict(enum.Enum):
    STUCK = "stuck"
    NOT_STUCK = "not stuck"
    MISSING = "missing from the state API"


def shape_of(resources: Mapping[str, float]) -> ResourceShape:
    """A resource request's fingerprint (zero amounts dropped)."""
    return frozenset((name, float(amount)) for name, amount in resources.items() if amount > 0)


def classify(
    task_id: str,
    snapshot: ClusterSnapshot,
    *,
    min_free_fraction: float,
    require_demand_absent: bool,
) -> Verdict:
    """Whether ``task_id`` (already older than ``pending_timeout``) is stuck on a wedged raylet.

    Stuck iff it is PENDING_NODE_ASSIGNMENT, the cluster's available
    resources cover its request, every requested resource has at least
    ``min_free_fraction`` of its total free (a busy cluster is not a wedged
    one), and — when ``require_demand_absent`` — no pending demand of its
    shape is reported. A task the state API does not report is MISSING,
    never STUCK: there is no evidence either way.
    """
    status = snapshot.tasks.get(task_id)
    if status is None:
        return Verdict.MISSING
    if status.state != PENDING_NODE_ASSIGNMENT:
        return Verdict.NOT_STUCK
    for name, amount in status.required_resources.items():
        if amount <= 0:
            continue
        available = snapshot.available.get(name, 0.0)
        total = snapshot.total.get(name, 0.0)
        if available < amount or total <= 0 or available / total < min_free_fraction:
            return Verdict.NOT_STUCK
    if require_demand_absent and (snapshot.demands is None or shape_of(status.required_resources) in snapshot.demands):
        return Verdict.NOT_STUCK
    return Verdict.STUCK


class StateSource(Protocol):
    """Where snapshots come from (Ray's state API in production)."""

    def snapshot(self, job_hex: str, *, with_demands: bool, timeout: float) -> ClusterSnapshot: ...


class RayStateSource:
    """Snapshots from the connected cluster: state API (needs the dashboard), GCS resources, autoscaler demand."""

    def snapshot(self, job_hex: str, *, with_demands: bool, timeout: float) -> ClusterSnapshot:
        from ray.util.state import list_tasks

        taken_at = time.monotonic()
        address = ray.get_runtime_context().gcs_address
        rows = list_tasks(
            address=address,
            filters=[("job_id", "=", job_hex), ("state", "!=", "FINISHED")],
            detail=True,
            limit=_TASK_LIMIT,
            timeout=max(1, int(timeout)),
            raise_on_missing_output=False,
        )
        latest: dict[str, tuple[int, TaskStatus]] = {}
        for row in rows:
            attempt = row.attempt_number or 0
            known = latest.get(row.task_id)
            if known is None or attempt >= known[0]:
                latest[row.task_id] = (attempt, TaskStatus(row.state, dict(row.required_resources or {})))
        demands = None
        if with_demands:
            from ray.autoscaler.v2.sdk import get_cluster_status

            status = get_cluster_status(address, timeout=max(1, int(timeout)))
            demands = frozenset(
                shape_of(request.bundle)
                for demand in status.resource_demands.ray_task_actor_demand
                for request in demand.bundles_by_count
            )
        return ClusterSnapshot(
            taken_at=taken_at,
            tasks={task_id: status for task_id, (_, status) in latest.items()},
            available=ray.available_resources(),  # type: ignore[no-untyped-call]
            total=ray.cluster_resources(),  # type: ignore[no-untyped-call]
            demands=demands,
        )


class Querier:
    """Fetches snapshots in a background thread so ``chia_wait`` never blocks on the state API.

    ``latest`` never waits: it returns the newest finished snapshot taken
    after ``not_before``, and starts a query when none is in flight and the
    rate limit allows. A failing source is retried only after a back-off,
    with one warning per process.
    """

    def __init__(self, source: StateSource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="chia-wait-state")
        self._inflight: dict[tuple[str, bool], concurrent.futures.Future[ClusterSnapshot]] = {}
        self._latest: dict[tuple[str, bool], ClusterSnapshot] = {}
        self._next_allowed = 0.0
        self._warned = False
        self.queries = 0

    def latest(self, job_hex: str, *, with_demands: bool, not_before: float, interval: float) -> ClusterSnapshot | None:
        key = (job_hex, with_demands)
        now = time.monotonic()
        with self._lock:
            future = self._inflight.get(key)
            if future is not None and future.done():
                del self._inflight[key]
                try:
                    self._latest[key] = future.result()
                except Exception:
                    self._next_allowed = now + _FAILURE_BACKOFF
                    if not self._warned:
                        self._warned = True
                        logger.warning(
                            "chia_wait: Ray's state API failed, so stuck tasks are not detected "
                            "(retrying every %.0f s; it needs the dashboard: ray.init(include_dashboard=True))",
                            _FAILURE_BACKOFF,
                            exc_info=True,
                        )
                future = None
            snapshot = self._latest.get(key)
            if snapshot is not None and snapshot.taken_at >= not_before:
                return snapshot
            if future is None and not self._inflight and now >= self._next_allowed:
                self._next_allowed = now + interval
                self.queries += 1
                self._inflight[key] = self._pool.submit(
                    self.source.snapshot, job_hex, with_demands=with_demands, timeout=_QUERY_TIMEOUT
                )
            return None


_querier: Querier | None = None
_querier_lock = threading.Lock()


def querier() -> Querier:
    """This process's querier over Ray's state API."""
    global _querier
    with _querier_lock:
        if _querier is None:
            _querier = Querier(RayStateSource())
        return _querier
