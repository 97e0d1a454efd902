"""Stuck detection against an injected state source: the four conditions, retry, degrade."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import ray

from chia.base._dispatch import stuck
from chia.base.chia_wait import TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, get
from chia.base.pid_registry import tracked_tasks
from chia_testing import wait_until

PNA = stuck.PENDING_NODE_ASSIGNMENT


def snapshot(
    tasks: Mapping[str, stuck.TaskStatus],
    available: Mapping[str, float] | None = None,
    total: Mapping[str, float] | None = None,
    demands: frozenset[stuck.ResourceShape] | None = None,
) -> stuck.ClusterSnapshot:
    return stuck.ClusterSnapshot(
        taken_at=time.monotonic(),
        tasks=tasks,
        available={"CPU": 4.0, "gpu_box": 1.0} if available is None else available,
        total={"CPU": 4.0, "gpu_box": 1.0} if total is None else total,
        demands=demands,
    )


def verdict(snap: stuck.ClusterSnapshot, *, fraction: float = 0.5, demand_absent: bool = False) -> stuck.Verdict:
    return stuck.classify("t1", snap, min_free_fraction=fraction, require_demand_absent=demand_absent)


STUCK_TASK = {"t1": stuck.TaskStatus(PNA, {"CPU": 1.0, "gpu_box": 1.0})}


def test_stuck_needs_all_four_conditions() -> None:
    assert verdict(snapshot(STUCK_TASK)) is stuck.Verdict.STUCK
    # 1. not PENDING_NODE_ASSIGNMENT
    assert verdict(snapshot({"t1": stuck.TaskStatus("RUNNING", {"CPU": 1.0})})) is stuck.Verdict.NOT_STUCK
    assert verdict(snapshot({"t1": stuck.TaskStatus("PENDING_ARGS_AVAIL", {})})) is stuck.Verdict.NOT_STUCK
    # 2. available resources do not cover the request
    assert verdict(snapshot(STUCK_TASK, available={"CPU": 4.0, "gpu_box": 0.0})) is stuck.Verdict.NOT_STUCK
    # 3. a resource is mostly in use: a busy cluster, not a wedged raylet
    busy = snapshot(STUCK_TASK, available={"CPU": 1.0, "gpu_box": 1.0})
    assert verdict(busy) is stuck.Verdict.NOT_STUCK
    assert verdict(busy, fraction=0.25) is stuck.Verdict.STUCK
    # 4. pending demand reported for the task's shape (only when asked)
    shape = stuck.shape_of({"CPU": 1.0, "gpu_box": 1.0})
    demanded = snapshot(STUCK_TASK, demands=frozenset({shape}))
    assert verdict(demanded) is stuck.Verdict.STUCK
    assert verdict(demanded, demand_absent=True) is stuck.Verdict.NOT_STUCK
    assert verdict(snapshot(STUCK_TASK, demands=frozenset()), demand_absent=True) is stuck.Verdict.STUCK
    assert verdict(snapshot(STUCK_TASK), demand_absent=True) is stuck.Verdict.NOT_STUCK  # demand unknown


def test_a_task_missing_from_the_state_api_is_its_own_case() -> None:
    assert verdict(snapshot({})) is stuck.Verdict.MISSING


class FakeSource:
    """A state source whose answers the test controls; counts and can fail queries."""

    def __init__(self) -> None:
        self.answer: Callable[[], stuck.ClusterSnapshot] = lambda: snapshot({})
        self.calls = 0
        self.fail = False
        self.gate = threading.Event()
        self.gate.set()

    def snapshot(self, job_hex: str, *, with_demands: bool, timeout: float) -> stuck.ClusterSnapshot:
        self.calls += 1
        self.gate.wait()
        if self.fail:
            raise ConnectionError("state API unreachable")
        return self.answer()


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSource]:
    """Injects a controllable state source into chia_wait for the test."""
    fake = FakeSource()
    monkeypatch.setattr(stuck, "_querier", stuck.Querier(fake))
    yield fake
    fake.gate.set()


def test_querier_never_blocks_and_is_rate_limited(source: FakeSource) -> None:
    querier = stuck.Querier(source)
    source.gate.clear()  # the state API hangs
    started = time.monotonic()
    for _ in range(50):
        assert querier.latest("01000000", with_demands=False, not_before=0.0, interval=60.0) is None
    assert time.monotonic() - started < 5.0  # returned at once every time, although the query hangs
    source.gate.set()
    wait_until(
        lambda: querier.latest("01000000", with_demands=False, not_before=0.0, interval=60.0) is not None,
        timeout=10,
        interval=0.01,
        message="the snapshot of the released query",
    )
    assert source.calls == 1  # one query in flight at a time, none again within the interval
    assert querier.latest("01000000", with_demands=False, not_before=time.monotonic() + 1, interval=60.0) is None
    assert source.calls == 1


def test_a_failing_state_api_degrades_to_no_detection_with_one_warning(
    source: FakeSource, caplog: pytest.LogCaptureFixture
) -> None:
    querier = stuck.Querier(source)
    source.fail = True

    def failed_query_done() -> bool:
        querier.latest("01000000", with_demands=False, not_before=0.0, interval=0.0)
        return source.calls > 0 and not querier._inflight

    with caplog.at_level(logging.WARNING, logger="chia.base._dispatch.stuck"):
        wait_until(failed_query_done, timeout=10, interval=0.01, message="the failing query to finish")
        for _ in range(20):
            assert querier.latest("01000000", with_demands=False, not_before=0.0, interval=0.0) is None
    assert source.calls == 1  # backed off
    assert len([r for r in caplog.records if "state API failed" in r.getMessage()]) == 1


# --- chia_wait end to end, real Ray refs, injected evidence ---------------------------------


@ChiaFunction(num_cpus=0)
def echo(value: int) -> int:
    return value


def never_schedulable(value: int) -> Any:
    """A ref that stays pending: it needs a resource no node has."""
    return echo.options(resources={"no_such_node": 1}).chia_remote(value)


def stuck_answer(refs: Callable[[], list[Any]]) -> Callable[[], stuck.ClusterSnapshot]:
    """Report every ref in ``refs()`` as PENDING_NODE_ASSIGNMENT on a cluster with free resources."""

    def answer() -> stuck.ClusterSnapshot:
        return snapshot({ref.task_id().hex(): stuck.TaskStatus(PNA, {"CPU": 1.0}) for ref in refs()})

    return answer


@pytest.mark.usefixtures("cluster")
def test_stuck_refs_are_cancelled_resubmitted_and_mutated_in_place(source: FakeSource) -> None:
    stuck = TrackedRef(never_schedulable(1), functools.partial(echo.chia_remote, 1), label="one")
    healthy = TrackedRef(never_schedulable(2), None, label="two")  # pending, never reported as stuck
    original = stuck.ref
    source.answer = stuck_answer(lambda: [original])
    ready, pending = chia_wait([stuck, healthy], num_returns=1, timeout=60, pending_timeout=0.2, retry=True)
    assert ready == [stuck] and pending == [healthy]
    assert ready[0] is stuck and stuck.retries == 1 and stuck.ref is not original
    assert get(stuck.ref) == 1
    with pytest.raises(ray.exceptions.TaskCancelledError):
        get(original, timeout=30)  # the old ref was cancelled (best effort)
    ray.cancel(healthy.object_ref, force=True)


@pytest.mark.usefixtures("cluster")
def test_max_retries_is_honoured_then_a_single_warning(source: FakeSource, caplog: pytest.LogCaptureFixture) -> None:
    submissions: list[Any] = []

    def resubmit() -> Any:
        submissions.append(never_schedulable(3))
        return submissions[-1]

    tracked = TrackedRef(never_schedulable(3), resubmit, label="stubborn")
    source.answer = stuck_answer(lambda: [tracked.object_ref])
    with caplog.at_level(logging.WARNING, logger="chia.base.chia_wait"):
        ready, pending = chia_wait([tracked], timeout=4, pending_timeout=0.2, retry=True, max_retries=2)
    assert ready == [] and pending == [tracked]
    assert tracked.retries == 2 and len(submissions) == 2
    left = [r for r in caplog.records if "left pending" in r.getMessage()]
    assert len(left) == 1 and "stubborn" in left[0].getMessage()
    ray.cancel(tracked.object_ref, force=True)


@pytest.mark.usefixtures("cluster")
def test_the_cause_of_a_stuck_task_is_recorded_where_chia_status_reads_it(source: FakeSource) -> None:
    tracked = TrackedRef(never_schedulable(5), None, label="left")
    source.answer = stuck_answer(lambda: [tracked.object_ref])
    task_id = tracked.object_ref.task_id().hex()

    def recorded() -> bool:
        chia_wait([tracked], timeout=0.5, pending_timeout=0.2)
        return task_id in tracked_tasks(all_jobs=False)

    wait_until(recorded, message="chia_wait to record the stuck task in the pid registry")
    cause = tracked_tasks()[task_id].stuck_cause
    assert cause is not None and cause.startswith(f"{PNA} for ") and "left pending after 0 of 1 retries" in cause
    assert tracked_tasks()[task_id].processes == ()
    ray.cancel(tracked.object_ref, force=True)


@pytest.mark.usefixtures("cluster")
def test_without_retry_cancel_on_stuck_resolves_the_ref_as_cancelled(source: FakeSource) -> None:
    tracked = TrackedRef(never_schedulable(4), functools.partial(echo.chia_remote, 4))
    source.answer = stuck_answer(lambda: [tracked.object_ref])
    ready, pending = chia_wait([tracked], timeout=30, pending_timeout=0.2, cancel_on_stuck=True)
    assert ready == [tracked] and pending == [] and tracked.retries == 0
    with pytest.raises(ray.exceptions.TaskCancelledError):
        get(tracked.ref)


@pytest.mark.usefixtures("cluster")
def test_missing_or_failing_evidence_never_resubmits(source: FakeSource, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def resubmit() -> Any:
        calls.append(5)
        return never_schedulable(5)

    tracked = TrackedRef(never_schedulable(5), resubmit)
    source.answer = lambda: snapshot({})  # the state API does not know the task
    assert chia_wait([tracked], timeout=1.5, pending_timeout=0.1, retry=True, print_logs=True) == ([], [tracked])
    source.fail = True
    monkeypatch.setattr(stuck, "_querier", stuck.Querier(source))
    assert chia_wait([tracked], timeout=1.5, pending_timeout=0.1, retry=True) == ([], [tracked])
    assert calls == [] and tracked.retries == 0
    ray.cancel(tracked.object_ref, force=True)


@pytest.mark.usefixtures("cluster")
def test_evidence_older_than_the_deadline_is_not_used(source: FakeSource) -> None:
    tracked = TrackedRef(never_schedulable(6), functools.partial(echo.chia_remote, 6))
    early = stuck_answer(lambda: [tracked.object_ref])()  # taken before the ref was overdue
    source.answer = lambda: early
    assert chia_wait([tracked], timeout=1.0, pending_timeout=0.3, retry=True) == ([], [tracked])
    assert tracked.retries == 0
    ray.cancel(tracked.object_ref, force=True)
