"""A TrackedRef is the ObjectRef it tracks: Ray's wait, get and cancel take it, and Ray counts it as a reference."""

from __future__ import annotations

import copy
import functools
import pickle
import time
from typing import Any, assert_type

import pytest
import ray

from chia.base.chia_wait import TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, ObjectRefCallback, get

pytestmark = [pytest.mark.usefixtures("cluster"), pytest.mark.ray_compat]


@ChiaFunction(num_cpus=0)
def after(seconds: float, value: int) -> int:
    time.sleep(seconds)
    return value


@ray.remote(num_cpus=0)
def read_box(box: list[TrackedRef]) -> tuple[str, str, int, int]:
    """What a task sees of a TrackedRef nested in its arguments."""
    tracked = box[0]
    return type(tracked).__name__, tracked.label, tracked.retries, ray.get(tracked)


@ray.remote(num_cpus=0)
def plus_one(value: int) -> int:
    return value + 1


def reference_count(object_hex: str) -> int:
    """How many local references this process's core worker holds on an object (0 once freed)."""
    worker: Any = ray._private.worker.global_worker  # Ray's worker declares no core_worker attribute
    counts = worker.core_worker.get_all_reference_counts()
    entry = counts.get(object_hex.encode())
    return 0 if entry is None else int(entry["local"])


def test_a_trackedref_is_the_objectref_it_tracks() -> None:
    ref = after.chia_remote(0, 7)
    tracked = TrackedRef(ref, label="seven")
    assert isinstance(tracked, ray.ObjectRef) and tracked.binary() == ref.binary()
    assert ray.get(tracked) == 7 and get(tracked) == 7
    assert ray.get(plus_one.remote(tracked)) == 8  # a task argument: the value, as for any ObjectRef
    ready, _ = ray.wait([tracked], timeout=60)
    assert ready == [tracked]
    with pytest.raises(TypeError, match="put"):
        ray.put(tracked)  # as for any ObjectRef


def test_get_fetches_through_ref_so_callbacks_run() -> None:
    wrapped = ObjectRefCallback(after.chia_remote(0, 20), lambda value: value + 1)
    tracked = TrackedRef(wrapped)
    assert tracked.binary() == wrapped.ref.binary()
    assert get(tracked) == 21
    plain = after.chia_remote(0, 1)
    assert get([tracked, plain, TrackedRef(after.chia_remote(0, 2))]) == [21, 1, 2]
    assert_type(get(tracked), Any)


def test_a_new_ref_rebinds_it_and_frees_the_old_object() -> None:
    first, second = ray.put("first"), ray.put("second")
    first_hex, second_hex = first.hex(), second.hex()
    tracked = TrackedRef(first, label="rebound")
    assert reference_count(first_hex) == 2  # the caller's ref and the TrackedRef
    tracked.ref = second  # what a retry does
    assert ray.get(tracked) == "second" and tracked.object_ref is second
    assert reference_count(first_hex) == 1  # the TrackedRef let go of the first object
    assert reference_count(second_hex) == 2
    del first
    assert reference_count(first_hex) == 0
    del tracked, second
    assert reference_count(second_hex) == 0  # nothing keeps the second object once both are gone


def test_a_retried_trackedref_waits_on_the_fresh_ref() -> None:
    blocked = after.chia_remote(3600, 0)
    fresh = after.chia_remote(0, 5)
    tracked = TrackedRef(blocked, lambda: fresh, label="retried")
    assert chia_wait([tracked], timeout=0) == ([], [tracked])
    ray.cancel(tracked, force=True)  # ray.cancel takes it: the blocked task goes
    tracked.ref = fresh  # what a retry does
    ready, pending = chia_wait([tracked], timeout=60)
    assert ready == [tracked] and pending == [] and get(tracked) == 5
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(blocked, timeout=60)


def test_copies_and_pickles_keep_every_field() -> None:
    tracked = TrackedRef(after.chia_remote(0, 3), label="three", submitted_at=12.5, retries=1)
    tracked._stuck_warned = True
    for twin in (copy.copy(tracked), pickle.loads(pickle.dumps(tracked))):
        assert type(twin) is TrackedRef and twin == tracked and twin is not tracked
        assert (twin.label, twin.submitted_at, twin.retries, twin._stuck_warned) == ("three", 12.5, 1, True)
        assert ray.get(twin) == 3
    assert ray.get(read_box.remote([tracked])) == ("TrackedRef", "three", 1, 3)


def test_trackedrefs_without_submit_fn_hash_apart() -> None:
    """A dict keyed by unlabelled TrackedRefs is not one long chain of equal hashes."""
    tracked = [TrackedRef(ray.put(index)) for index in range(500)]
    assert len({hash(tr) for tr in tracked}) == len(tracked)
    assert len(set(tracked)) == len(tracked)
    submit = functools.partial(after.chia_remote, 0, 0)
    assert hash(TrackedRef(ray.put(0), submit)) == hash(TrackedRef(ray.put(1), submit))  # a retry keeps the hash


def test_chia_wait_refuses_plain_objectrefs_and_duplicates() -> None:
    ref = after.chia_remote(0, 0)
    with pytest.raises(TypeError, match="TrackedRef"):
        chia_wait([TrackedRef(ref), ref])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="distinct"):
        chia_wait([TrackedRef(ref), TrackedRef(ref, label="again")], num_returns=2, timeout=0)
    with pytest.raises(TypeError, match="ObjectRef"):
        TrackedRef(ObjectRefCallback(TrackedRef(ref), lambda value: value))
