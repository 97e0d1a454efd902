"""Automatic write-through of ``cache: true`` functions, and replay through a bypass provider."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import ray

from chia.base.bypass import Bypass
from chia.base.cache import get_active_cache, start_cache, stop_cache
from chia.base.ChiaFunction import ChiaFunction, get

WriteYaml = Callable[..., str]

CACHE_YAML = """
cache:
  expensive: true
  tagged:
    cache: true
    tags: ["iter.*"]
  sleeper: true
  huge: true
  nested_inner: true
bypass:
  expensive: false
"""


def node_id() -> str:
    return str(ray.get_runtime_context().get_node_id())


@ChiaFunction(num_cpus=0, resources={"node_b": 1})
def expensive(x: int) -> dict[str, Any]:
    return {"x": x, "node": node_id()}


@ChiaFunction(num_cpus=0)
def tagged(x: int) -> int:
    return x * 10


@ChiaFunction(num_cpus=0)
def uncached(x: int) -> int:
    return x


@ChiaFunction(num_cpus=0)
def sleeper(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@ChiaFunction(num_cpus=0)
def huge(size: int) -> bytes:
    return b"x" * size


@ChiaFunction(num_cpus=0)
def failing(x: int) -> int:
    raise RuntimeError("boom")


@ChiaFunction(num_cpus=0, resources={"node_b": 1})
def nested_inner(x: int) -> int:
    return x + 1


@ChiaFunction(num_cpus=0)
def nested_outer(x: int) -> int:
    return get(nested_inner.options(_chia_tag=f"inner{x}").chia_remote(x))


@ChiaFunction(num_cpus=0)
def consume(value: dict[str, Any]) -> int:
    return int(value["x"]) + 1000


def cache_provider(tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> Any:
    cache = get_active_cache()
    assert cache is not None and tag is not None
    hit, value = ray.get(cache.read.remote(tag))
    if not hit:
        raise KeyError(f"cache miss for tag {tag!r}")
    return {**value, "replayed_on": node_id()}


def cache_hit(tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> bool:
    cache = get_active_cache()
    return cache is not None and tag is not None and ray.get(cache.has.remote(tag))


@pytest.fixture
def cache(namespace: str, tmp_path: Path, write_yaml: WriteYaml) -> Any:
    return start_cache(1, str(tmp_path / "cache"), units="MB", yaml_path=write_yaml(CACHE_YAML), namespace=namespace)


def read(cache: Any, tag: str) -> tuple[bool, Any]:
    result: tuple[bool, Any] = ray.get(cache.read.remote(tag))
    return result


def test_tagged_real_run_is_written_before_get_returns(cache: Any, cluster: Any) -> None:
    ref = expensive.options(_chia_tag="run1").chia_remote(5)
    assert isinstance(ref, ray.ObjectRef)
    value = get(ref)
    assert value == {"x": 5, "node": cluster.node_ids["node_b"]}
    assert read(cache, "run1") == (True, value)


def test_untagged_calls_and_unlisted_functions_are_not_written(cache: Any) -> None:
    assert get(expensive.chia_remote(1))["x"] == 1
    assert get(uncached.options(_chia_tag="u1").chia_remote(1)) == 1
    assert ray.get(cache.keys.remote()) == []


def test_tag_patterns_are_honoured(cache: Any) -> None:
    assert get([tagged.options(_chia_tag=tag).chia_remote(1) for tag in ("iter1", "warmup", "iter2x")]) == [10] * 3
    assert sorted(ray.get(cache.keys.remote())) == ["iter1", "iter2x"]


def test_refs_stay_plain_waitable_chainable_and_plain_ray_get_works(cache: Any) -> None:
    ref = expensive.options(_chia_tag="chain").chia_remote(7)
    ready, _ = ray.wait([ref], timeout=60)
    assert ready == [ref]
    assert get(consume.chia_remote(cast(Any, ref))) == 1007  # the ref passed to another task
    assert ray.get(ref)["x"] == 7
    assert read(cache, "chain")[0]


def test_cancelled_and_failed_calls_are_not_written(cache: Any) -> None:
    ref = sleeper.options(_chia_tag="cancelled").chia_remote(60)
    ray.cancel(ref, force=True)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError)):
        get(ref)
    with pytest.raises(RuntimeError, match="boom"):
        get(failing.options(_chia_tag="failed").chia_remote(1))
    assert ray.get(cache.keys.remote()) == []


def test_nested_calls_are_written_too(cache: Any) -> None:
    assert get(nested_outer.chia_remote(3)) == 4
    assert read(cache, "inner3") == (True, 4)


def test_value_over_budget_is_refused_loudly_but_the_call_succeeds(cache: Any) -> None:
    # The worker logs the refusal (it reaches the driver's console); the caller still gets its value.
    assert len(get(huge.options(_chia_tag="too_big").chia_remote(2 << 20))) == 2 << 20
    assert not ray.get(cache.has.remote("too_big"))


def test_replay_from_the_cache_through_a_bypass_provider(cache: Any, write_yaml: WriteYaml, cluster: Any) -> None:
    recorded = get(expensive.options(_chia_tag="iter0").chia_remote(11))
    bypass = Bypass(write_yaml("bypass:\n  expensive: true\n", name="replay.yaml"))
    bypass.set_provider("expensive", cache_provider)
    bypass.set_cond("expensive", cache_hit)
    writes = ray.get(cache.stats.remote())["writes"]
    replayed = get(expensive.options(_chia_tag="iter0").chia_remote(11))
    assert replayed == {**recorded, "replayed_on": cluster.node_ids["node_b"]}
    # A tag the cache does not hold fails the condition and runs for real (and is written).
    fresh = get(expensive.options(_chia_tag="iter1").chia_remote(12))
    assert "replayed_on" not in fresh
    stats = ray.get(cache.stats.remote())
    assert stats["writes"] == writes + 1  # the replay was not written back, the real run was
    assert read(cache, "iter0") == (True, recorded)


def test_stop_cache_stops_write_through(cache: Any, namespace: str, caplog: pytest.LogCaptureFixture) -> None:
    stop_cache(namespace)
    with caplog.at_level(logging.ERROR):
        assert get(expensive.options(_chia_tag="after_stop").chia_remote(1))["x"] == 1
    assert get_active_cache(namespace) is None
