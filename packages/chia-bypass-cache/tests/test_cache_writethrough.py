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
from chia_testing import wait_until

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
def sleeper(seconds: float, started: str) -> str:
    Path(started).touch()  # the caller cancels a running call, not one still on its way to a worker
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


@pytest.mark.ray_compat
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


@pytest.mark.ray_compat
def test_refs_stay_plain_waitable_chainable_and_plain_ray_get_works(cache: Any) -> None:
    ref = expensive.options(_chia_tag="chain").chia_remote(7)
    ready, _ = ray.wait([ref], timeout=60)
    assert ready == [ref]
    assert get(consume.chia_remote(cast(Any, ref))) == 1007  # the ref passed to another task
    assert ray.get(ref)["x"] == 7
    assert read(cache, "chain")[0]


@pytest.mark.ray_compat
def test_cancelled_and_failed_calls_are_not_written(cache: Any, tmp_path: Path) -> None:
    # Cancelled before it ran, the call could be lost to the cancellation (Ray 2.55 ran it to the end once).
    started = tmp_path / "started"
    ref = sleeper.options(_chia_tag="cancelled").chia_remote(60, str(started))
    wait_until(started.exists, message="the sleeper to start")
    ray.cancel(ref, force=True)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError)):
        get(ref)
    with pytest.raises(RuntimeError, match="boom"):
        get(failing.options(_chia_tag="failed").chia_remote(1))
    assert ray.get(cache.keys.remote()) == []


@pytest.mark.ray_compat
def test_nested_calls_are_written_too(cache: Any) -> None:
    assert get(nested_outer.chia_remote(3)) == 4
    assert read(cache, "inner3") == (True, 4)


def test_value_over_budget_is_refused_loudly_but_the_call_succeeds(cache: Any) -> None:
    # The worker logs the refusal (it reaches the driver's console); the caller still gets its value.
    assert len(get(huge.options(_chia_tag="too_big").chia_remote(2 << 20))) == 2 << 20
    assert not ray.get(cache.has.remote("too_big"))


def test_replay_from_the_cache_through_a_bypass_provider(cache: Any, write_yaml: WriteYaml, cluster: Any) -> None:
    """The reference's hand-written provider: a function both cache: and bypass: has its replay written back."""
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
    assert ray.get(cache.stats.remote())["writes"] == writes + 2  # the provider's result (issue 13.9) and the run
    assert read(cache, "iter0") == (True, replayed)


def recording_provider(tag: str | None, data_path: str | None, x: int) -> dict[str, Any]:
    return {"x": x, "node": "recorded", "tag": tag}


def test_bypassed_result_of_a_cached_function_is_written(cache: Any, write_yaml: WriteYaml) -> None:
    """Issue 13 point 9: configured both cache: and bypass:, the provider's result lands in the cache."""
    bypass = Bypass(write_yaml("bypass:\n  expensive: true\n  tagged: true\n", name="both.yaml"))
    bypass.set_provider("expensive", recording_provider)
    value = get(expensive.options(_chia_tag="rec1").chia_remote(3))
    assert value == {"x": 3, "node": "recorded", "tag": "rec1"}
    assert read(cache, "rec1") == (True, value)
    assert get(expensive.chia_remote(4))["node"] == "recorded"  # untagged: bypassed, nothing to key it by
    assert ray.get(cache.keys.remote()) == ["rec1"]


def test_replay_from_cache_one_call_runs_misses_for_real(cache: Any, write_yaml: WriteYaml, cluster: Any) -> None:
    """Issue 15: ``replay_from_cache(name)``; a miss runs for real (and is written), a hit is not written back."""
    recorded = get(expensive.options(_chia_tag="r0").chia_remote(1))
    bypass = Bypass(write_yaml("bypass:\n  expensive: true\n", name="replay.yaml"))
    bypass.replay_from_cache("expensive")
    writes = ray.get(cache.stats.remote())["writes"]
    assert get(expensive.options(_chia_tag="r0").chia_remote(999)) == recorded  # the cached value, not a run
    assert ray.get(cache.stats.remote())["writes"] == writes  # a replay is not written back
    fresh = get(expensive.options(_chia_tag="r1").chia_remote(2))
    assert fresh == {"x": 2, "node": cluster.node_ids["node_b"]}
    assert read(cache, "r1") == (True, fresh)


def test_replay_from_cache_can_fail_on_a_miss(cache: Any, write_yaml: WriteYaml) -> None:
    bypass = Bypass(write_yaml("bypass:\n  expensive: true\n", name="replay.yaml"))
    bypass.replay_from_cache("expensive", on_miss="fail")
    with pytest.raises(KeyError, match="replay_from_cache\\('expensive'\\): cache miss for tag 'absent'"):
        get(expensive.options(_chia_tag="absent").chia_remote(1))
    assert ray.get(cache.keys.remote()) == []
    with pytest.raises(ValueError, match="on_miss must be 'run' or 'fail'"):
        bypass.replay_from_cache("expensive", on_miss="skip")


def inner_provider(tag: str | None, data_path: str | None, x: int) -> tuple[str, int]:
    return ("replayed in the nested loop", x)


@ChiaFunction(num_cpus=0)
def nested_loop(yaml_path: str) -> Any:
    bypass = Bypass(yaml_path)
    bypass.set_provider("nested_inner", inner_provider)
    return get(nested_inner.options(_chia_tag="nested-loop").chia_remote(5))


def test_bypass_made_inside_a_task_governs_its_nested_calls(cache: Any, write_yaml: WriteYaml) -> None:
    """Issue 13 point 11: a nested loop's own Bypass decides, although the driver started a cache."""
    inner_yaml = write_yaml("bypass:\n  nested_inner: true\n", name="inner.yaml")
    assert get(nested_loop.chia_remote(inner_yaml)) == ("replayed in the nested loop", 5)
    assert read(cache, "nested-loop") == (True, ("replayed in the nested loop", 5))  # and cached (point 9)
    # The same worker processes, in later tasks, follow the driver again.
    assert get(nested_outer.chia_remote(3)) == 4


def test_stop_cache_stops_write_through(cache: Any, namespace: str, caplog: pytest.LogCaptureFixture) -> None:
    stop_cache(namespace)
    with caplog.at_level(logging.ERROR):
        assert get(expensive.options(_chia_tag="after_stop").chia_remote(1))["x"] == 1
    assert get_active_cache(namespace) is None
