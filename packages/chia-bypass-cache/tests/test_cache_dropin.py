"""Issue 13, points 5-7: the cache as the reference's users drive it (real Ray cluster)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.actor import ActorHandle

from chia.base.cache import Cache, get_active_cache, start_cache
from chia.base.ChiaFunction import get


def test_cache_is_the_actor_class(cluster: Any, tmp_path: Path) -> None:
    """Point 5: ``Cache.options(name=..., ...).remote(cache_dir_path, budget_bytes, config)``."""
    name = f"users-cache-{uuid.uuid4().hex[:8]}"
    config = {"simulate": {"cache": True, "tags": ["iter.*"]}, "build": True}
    handle: Any = Cache.options(name=name, namespace="dropin", lifetime="detached").remote(
        str(tmp_path / "c"), 1 << 20, config
    )
    try:
        assert ray.get(handle.write.remote("k", [1, 2])) is True
        assert ray.get(handle.read.remote("k")) == (True, [1, 2])
        assert ray.get_actor(name, namespace="dropin").__class__ is not None
        running = ray.get(handle.get_config.remote())
        assert running["functions"] == {
            "simulate": {"cache": True, "tags": ["iter.*"]},
            "build": {"cache": True, "tags": None},
        }
        assert (running["cache_dir"], running["budget_bytes"]) == (str(tmp_path / "c"), 1 << 20)
    finally:
        ray.kill(handle)


def test_cache_actor_takes_a_whole_document_or_no_config(cluster: Any, tmp_path: Path) -> None:
    whole: Any = Cache.remote(str(tmp_path / "a"), 4096, {"bypass": {"f": True}, "cache": {"g": True}})
    empty: Any = Cache.remote(str(tmp_path / "b"), 4096)
    try:
        assert ray.get(whole.get_config.remote())["functions"] == {"g": {"cache": True, "tags": None}}
        assert ray.get(empty.get_config.remote())["functions"] == {}
    finally:
        ray.kill(whole)
        ray.kill(empty)


def test_cache_actor_with_a_bad_config_says_so_on_use(cluster: Any, tmp_path: Path) -> None:
    handle: Any = Cache.remote(str(tmp_path / "a"), 4096, {"g": {"cache": "yes"}})
    try:
        with pytest.raises(ValueError, match="function 'g', key 'cache': must be true or false"):
            ray.get(handle.get_config.remote())
    finally:
        ray.kill(handle)


def test_started_handle_takes_remote_chia_remote_and_actor(namespace: str, tmp_path: Path) -> None:
    """Point 6: ``get(store.write.chia_remote(k, v))``, ``get(store.size_bytes.chia_remote())``, ``.actor``."""
    store: Any = start_cache(1, str(tmp_path / "cache"), units="MB", namespace=namespace)
    assert get(store.write.chia_remote("key", "value")) is True
    assert get(store.size_bytes.chia_remote()) > 0
    assert get(store.read.chia_remote("key")) == (True, "value")
    assert ray.get(store.read.remote("key")) == (True, "value")
    assert ray.get(store.has.options(name="has-call").chia_remote("key")) is True
    raw: Any = store.actor
    assert not hasattr(raw.write, "chia_remote")
    assert ray.get(raw.read.remote("key")) == (True, "value")
    assert type(raw) is ActorHandle
    active: Any = get_active_cache(namespace)
    assert get(active.keys.chia_remote()) == ["key"]


@ray.remote
def _use_handle_in_task(store: Any, namespace: str) -> tuple[bool, Any, bool]:
    wrote = ray.get(store.write.remote("from-task", {"n": 1}))
    active: Any = get_active_cache(namespace)
    return wrote, ray.get(active.read.chia_remote("from-task")), type(active.actor) is ActorHandle


@pytest.mark.ray_compat
def test_started_handle_passes_into_tasks(namespace: str, tmp_path: Path) -> None:
    """The handle pickles into a task (it arrives as a Ray handle); ``get_active_cache()`` there gives ours."""
    store = start_cache(1, str(tmp_path / "cache"), units="MB", namespace=namespace)
    assert ray.get(_use_handle_in_task.remote(store, namespace)) == (True, (True, {"n": 1}), True)


def test_memo_fast_path_still_serves_repeat_large_hits(namespace: str, tmp_path: Path) -> None:
    """The memo of large hits keeps working through the new handle: a repeat hit is the same object."""
    store: Any = start_cache(64, str(tmp_path / "cache"), units="MB", namespace=namespace)
    value = b"v" * (1 << 20)
    assert ray.get(store.write.remote("big", value)) is True
    assert ray.get(store.read.remote("big")) == (True, value)
    first = store.read.remote("big")
    assert store.read.chia_remote("big") == first  # served from the memo: no new actor call
    assert ray.get(first) == (True, value)


def test_write_returns_false_above_the_whole_budget_and_keeps_everything(namespace: str, tmp_path: Path) -> None:
    """Point 7: ``write(tag, data)`` is True when stored, False (nothing written or evicted) when too large."""
    store: Any = start_cache(1, str(tmp_path / "cache"), units="KiB", namespace=namespace)
    assert get(store.write.chia_remote("small", data=b"x" * 10)) is True
    assert get(store.write.chia_remote("huge", data=b"x" * 4096)) is False
    assert get(store.keys.chia_remote()) == ["small"]
    assert get(store.read.chia_remote("huge")) == (False, None)
