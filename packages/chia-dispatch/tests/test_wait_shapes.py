"""chia_wait mirrors ray.wait: shapes, order, timeouts, num_returns; nothing resubmitted on a healthy cluster."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest
import ray

from chia.base._dispatch import stuck
from chia.base.chia_wait import TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, ObjectRefCallback, get

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=0)
def after(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


@ChiaFunction(num_cpus=1)
def busy(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


def tracked_of(refs: list[Any]) -> list[TrackedRef]:
    return [TrackedRef(ref) for ref in refs]


@pytest.mark.ray_compat
def test_ready_and_pending_mirror_ray_wait() -> None:
    done = [after.chia_remote(0, i) for i in range(4)]
    slow = [after.chia_remote(120, i) for i in range(3)]
    ray.wait(done, num_returns=len(done))
    refs = [slow[0], done[0], slow[1], done[1], done[2], slow[2], done[3]]
    tracked = tracked_of(refs)
    for num_returns in (1, 3, 4):
        ray_ready, ray_pending = ray.wait(refs, num_returns=num_returns, timeout=0)
        ready, pending = chia_wait(tracked, num_returns=num_returns, timeout=0)
        assert [tr.object_ref for tr in ready] == ray_ready
        assert [tr.object_ref for tr in pending] == ray_pending
        assert all(tr is tracked[refs.index(tr.object_ref)] for tr in ready + pending)  # the same objects
    for ref in slow:
        ray.cancel(ref, force=True)


@pytest.mark.ray_compat
def test_timeouts_return_partial_results_and_none_waits() -> None:
    slow = TrackedRef(after.chia_remote(120, 0))
    fast = TrackedRef(after.chia_remote(0.5, 1))
    assert get(fast.ref) == 1  # finished before the timed wait starts: no race with machine load
    started = time.monotonic()
    ready, pending = chia_wait([slow, fast], num_returns=2, timeout=2.0)
    assert ready == [fast] and pending == [slow]
    assert time.monotonic() - started >= 2.0
    assert chia_wait([slow], timeout=0) == ([], [slow])
    ready, pending = chia_wait([TrackedRef(after.chia_remote(1, 2)), slow], timeout=None)
    assert len(ready) == 1 and get(ready[0].ref) == 2 and pending == [slow]
    ray.cancel(slow.object_ref, force=True)


def test_object_ref_callbacks_are_accepted_and_kept() -> None:
    wrapped = ObjectRefCallback(after.chia_remote(0, 20), lambda value: value + 1)
    tracked = TrackedRef(wrapped)
    ready, pending = chia_wait([tracked], timeout=60)
    assert ready == [tracked] and pending == []
    assert ready[0].ref is wrapped and get(ready[0].ref) == 21


def test_trackedref_is_hashable_by_value_and_defaults_its_timestamp() -> None:
    ref = after.chia_remote(0, 0)
    first, second = TrackedRef(ref), TrackedRef(ref)
    assert first == second and len({first, second}) == 1  # the same submission (issue 13, point 3)
    assert len({first, TrackedRef(ref, label="other")}) == 2
    assert abs(first.submitted_at - time.monotonic()) < 60
    assert TrackedRef(ref, submitted_at=5.0).submitted_at == 5.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_returns": 0}, "num_returns"),
        ({"num_returns": 3}, "num_returns"),
        ({"timeout": -1}, "timeout"),
        ({"pending_timeout": 0}, "pending_timeout"),
        ({"min_free_fraction": 1.5}, "min_free_fraction"),
        ({"max_retries": -1}, "max_retries"),
    ],
)
def test_bad_arguments_name_the_offending_value(kwargs: dict[str, Any], message: str) -> None:
    tracked = tracked_of([after.chia_remote(0, 0), after.chia_remote(0, 1)])
    with pytest.raises(ValueError, match=message):
        chia_wait(tracked, **kwargs)


def test_wrong_types_are_rejected() -> None:
    with pytest.raises(TypeError, match="TrackedRef"):
        chia_wait([after.chia_remote(0, 0)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="ObjectRef"):
        TrackedRef(42)  # type: ignore[arg-type]


@pytest.mark.ray_compat
def test_nothing_is_resubmitted_on_a_healthy_busy_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    """Running tasks and tasks queued for CPUs grow old, but none is stuck (real state API)."""
    stuck._querier = None  # a fresh querier on the real state source
    resubmitted: list[int] = []

    def submit(value: int) -> Any:
        resubmitted.append(value)
        return busy.chia_remote(0, value)

    # 4 CPUs in the cluster: 6 tasks of 1 CPU -> 2 wait in PENDING_NODE_ASSIGNMENT with no CPU free.
    tracked = [TrackedRef(busy.chia_remote(6, i), functools.partial(submit, i)) for i in range(6)]
    ready, pending = chia_wait(tracked, num_returns=6, timeout=120, pending_timeout=1.0, retry=True, progress=True)
    assert sorted(get([tr.object_ref for tr in ready])) == list(range(6)) and pending == []
    assert resubmitted == [] and all(tr.retries == 0 for tr in tracked)
    assert stuck.querier().queries >= 1  # detection did run
    assert "chia_wait: 6/6 ready of 6" in capsys.readouterr().err


@ray.remote(resources={"no_such_node": 1})
def never_runs() -> Any:  # its refs stay pending
    return None


@pytest.mark.ray_compat
@pytest.mark.parametrize(
    "pattern",
    [
        "R" * 3000 + "P" * 3000,  # the calls that finished first: one long run
        "P" * 2000 + "R" * 2500 + "P",
        "RP" * 1500,  # no runs at all
        "RRRP" * 700 + "R" * 1100 + "PPR" * 300,
        "P" * 4000 + "R",
    ],
    ids=["finished-prefix", "run-in-the-middle", "alternating", "mixed-runs", "last-only"],
)
def test_runs_of_ready_refs_partition_as_ray_wait_does(pattern: str) -> None:
    pending_count = pattern.count("P")
    runner: Any = never_runs.options(num_returns=pending_count + 1)  # one more: a list even for one pending ref
    blocked: list[Any] = runner.remote()
    pending_refs = iter(blocked)
    refs = [ray.put(index) if kind == "R" else next(pending_refs) for index, kind in enumerate(pattern)]
    tracked = tracked_of(refs)
    position = {id(tr): index for index, tr in enumerate(tracked)}
    ready_count = pattern.count("R")
    for num_returns in sorted({1, ready_count // 3 or 1, ready_count}):
        ready, pending = chia_wait(tracked, num_returns=num_returns, timeout=0)
        assert len(ready) == num_returns
        assert all(pattern[position[id(tr)]] == "R" for tr in ready)
        for part in (ready, pending):  # each in input order, the very objects passed in
            places = [position[id(tr)] for tr in part]
            assert places == sorted(places)
        assert sorted(map(id, ready + pending)) == sorted(map(id, tracked))
    # every ready ref asked for: exactly what ray.wait returns (with fewer, Ray picks which ones)
    ray_ready, ray_pending = ray.wait(refs, num_returns=ready_count, timeout=0)
    assert [tr.object_ref for tr in ready] == ray_ready
    assert [tr.object_ref for tr in pending] == ray_pending
    ray.cancel(blocked[0], force=True)
