"""Repeat hits skip the actor on its node, and never serve a changed entry."""

from __future__ import annotations

import fcntl
import os
import pickle
from pathlib import Path
from typing import Any, cast

import pytest
import ray
from ray.actor import ActorHandle

from chia.base._bypass_cache.cache_memo import TOUCH_BATCH
from chia.base._bypass_cache.cache_store import LOCK_NAME
from chia.base.cache import get_active_cache, start_cache
from chia_testing import wait_until

LARGE = 1 << 20  # served from the actor's object-store copy
SMALL = 1 << 10  # inline in the actor's reply; the reader keeps a copy of its own
SIZES = pytest.mark.parametrize("size", [LARGE, SMALL], ids=["large", "small"])


def read_ref(handle: Any, tag: str) -> Any:
    ref = handle.read.remote(tag)
    assert isinstance(ref, ray.ObjectRef)
    return ref


@pytest.fixture
def handle(namespace: str, tmp_path: Path) -> Any:
    return start_cache(64, str(tmp_path / "cache"), units="MB", namespace=namespace)


@pytest.mark.ray_compat
@SIZES
def test_repeat_hits_return_the_same_object_until_the_entry_changes(handle: Any, size: int) -> None:
    first, second = os.urandom(size), os.urandom(size)
    ray.get(handle.write.remote("t", first))
    assert ray.get(read_ref(handle, "t")) == (True, first)  # from the actor: remembered
    again = read_ref(handle, "t")
    assert read_ref(handle, "t") == again  # served from the memo: no actor call
    assert ray.get(again) == (True, first)
    ray.get(handle.write.remote("t", second))
    assert ray.get(read_ref(handle, "t")) == (True, second)


@SIZES
@pytest.mark.parametrize("change", ["evict", "flush", "lru"])
def test_removed_entries_are_never_served_from_the_memo(namespace: str, tmp_path: Path, change: str, size: int) -> None:
    handle: Any = start_cache(3, str(tmp_path / "cache"), units="MB", namespace=namespace)
    ray.get(handle.write.remote("t", os.urandom(size)))
    ray.get(read_ref(handle, "t"))
    ray.get(read_ref(handle, "t"))
    if change == "evict":
        assert ray.get(handle.evict.remote("t"))
    elif change == "flush":
        assert ray.get(handle.flush.remote()) == 1
    else:
        for index in range(3):  # pushes "t" out of the 3 MB budget
            ray.get(handle.write.remote(f"other{index}", os.urandom(LARGE)))
        assert not ray.get(handle.has.remote("t"))
    assert ray.get(read_ref(handle, "t")) == (False, None)


@SIZES
def test_a_write_from_another_process_is_seen(handle: Any, namespace: str, size: int) -> None:
    ray.get(handle.write.remote("t", b"a" * size))
    ray.get(read_ref(handle, "t"))
    ray.get(read_ref(handle, "t"))

    @ray.remote(num_cpus=0, resources={"head": 0.01})
    def overwrite() -> None:
        cache = get_active_cache(namespace)
        assert cache is not None
        ray.get(cache.write.remote("t", b"b" * size))

    ray.get(overwrite.remote())
    assert ray.get(read_ref(handle, "t")) == (True, b"b" * size)


def test_a_killed_cache_is_not_served_from_the_memo(namespace: str, tmp_path: Path) -> None:
    handle: Any = start_cache(64, str(tmp_path / "cache"), units="MB", namespace=namespace)
    value = os.urandom(LARGE)
    ray.get(handle.write.remote("t", value))
    ray.get(read_ref(handle, "t"))
    ray.kill(cast(ActorHandle[Any], handle), no_restart=True)
    lock = os.open(tmp_path / "cache" / LOCK_NAME, os.O_RDONLY)

    def lock_taken() -> bool:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:  # once the actor's process is gone, its directory lock is free
        wait_until(lock_taken, message="the killed cache actor's process to exit")
        fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(read_ref(handle, "t"), timeout=60)
    restarted: Any = start_cache(64, str(tmp_path / "cache"), units="MB", namespace=namespace)
    assert ray.get(read_ref(restarted, "t")) == (True, value)  # from disk, through the new actor
    assert ray.get(read_ref(restarted, "t")) == (True, value)


def test_memo_hits_count_and_keep_entries_recently_used(handle: Any) -> None:
    ray.get(handle.write.remote("a", os.urandom(LARGE)))
    ray.get(read_ref(handle, "a"))
    ray.get(handle.write.remote("b", os.urandom(LARGE)))
    assert ray.get(handle.keys.remote()) == ["a", "b"]
    for _ in range(TOUCH_BATCH):
        ray.get(read_ref(handle, "a"))
    # The memo reports its hits in batches, before any later call from this process.
    assert ray.get(handle.keys.remote()) == ["b", "a"]
    assert ray.get(handle.stats.remote())["hits"] == 1 + TOUCH_BATCH


@pytest.mark.ray_compat
@SIZES
def test_readers_on_other_nodes_go_through_the_actor(handle: Any, namespace: str, size: int) -> None:
    ray.get(handle.write.remote("t", b"x" * size))

    @ray.remote(num_cpus=0, resources={"node_b": 0.01})
    def read_twice(tag: str) -> tuple[bool, bool]:
        cache = get_active_cache(namespace)
        assert cache is not None
        refs = [cache.read.remote(tag), cache.read.remote(tag)]
        values = ray.get(refs)
        return refs[0] == refs[1], values[0] == values[1] == (True, b"x" * size)

    assert ray.get(read_twice.remote("t")) == (False, True)


def test_a_memo_copy_is_a_fresh_value_each_time(handle: Any) -> None:
    ray.get(handle.write.remote("metrics", {"ipc": [1.5]}))
    ray.get(read_ref(handle, "metrics"))
    first = ray.get(read_ref(handle, "metrics"))
    first[1]["ipc"].append(99.0)  # a caller mutating its hit changes neither the cache nor the next hit
    assert ray.get(read_ref(handle, "metrics")) == (True, {"ipc": [1.5]})


@SIZES
def test_entries_stored_pickled_are_served_from_a_copy_of_the_readers_own(handle: Any, size: int) -> None:
    first, second = os.urandom(size), os.urandom(size)
    ray.get(handle.write_pickled.remote("t", pickle.dumps(first)))  # as write-through from a worker stores them
    assert ray.get(read_ref(handle, "t")) == (True, first)
    again = read_ref(handle, "t")
    assert read_ref(handle, "t") == again
    assert ray.get(again) == (True, first)
    ray.get(handle.write_pickled.remote("t", pickle.dumps(second)))
    assert ray.get(read_ref(handle, "t")) == (True, second)


def test_a_large_bytes_hit_is_shared_here_and_read_from_the_actor_elsewhere(handle: Any) -> None:
    first, second = os.urandom(LARGE), os.urandom(LARGE)
    ray.get(handle.write_pickled.remote("t", pickle.dumps(first)))  # as write-through from a worker stores it
    ray.get(read_ref(handle, "t"))
    again = read_ref(handle, "t")
    hit = ray.get(again)
    assert hit == (True, first)
    assert ray.get(again)[1] is hit[1]  # bytes are immutable: no copy per repeat hit in this process

    @ray.remote(num_cpus=0)
    def elsewhere(refs: list[Any]) -> tuple[bool, Any]:
        result: tuple[bool, Any] = ray.get(refs[0])
        return result

    @ray.remote(num_cpus=0)
    def given(hit: tuple[bool, Any]) -> tuple[bool, Any]:
        return hit

    assert ray.get(elsewhere.remote([again])) == (True, first)  # another process: from the actor's copy
    assert ray.get(given.remote(again)) == (True, first)  # resolved by Ray as the task's argument
    ray.get(handle.write_pickled.remote("t", pickle.dumps(second)))
    assert ray.get(read_ref(handle, "t")) == (True, second)
    assert ray.get(again) == (True, first)  # a ref keeps the version it was made for


def test_the_handle_still_is_a_plain_actor_handle_to_ray(handle: Any) -> None:
    assert isinstance(handle, ActorHandle)
    ray.get(handle.write.remote("t", b"y" * LARGE))

    @ray.remote(num_cpus=0)
    def read_with(cache: Any) -> tuple[bool, Any]:
        result: tuple[bool, Any] = ray.get(cache.read.remote("t"))
        return result

    assert ray.get(read_with.remote(handle)) == (True, b"y" * LARGE)
    assert ray.get(handle.read.options(name="named read").remote("t")) == (True, b"y" * LARGE)
