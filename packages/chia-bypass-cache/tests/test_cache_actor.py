"""The head-pinned cache actor on a real cluster: API, budget, restarts, damage, signing."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import ray
import ray.cloudpickle
from ray.actor import ActorHandle

from chia.base import cache as cache_module
from chia.base._bypass_cache.cache_actor import _dumps
from chia.base._bypass_cache.cache_log import RECORD, segment_name
from chia.base._bypass_cache.cache_store import QUARANTINE_DIR, EntryStore
from chia.base.cache import (
    SECRET_ENV,
    UNITS,
    CacheDirectoryError,
    _budget_bytes,
    get_active_cache,
    is_cached,
    start_cache,
    stop_cache,
)
from chia.base.ChiaFunction import chia_actor, get

WriteYaml = Callable[..., str]


def test_units_are_binary_multiples() -> None:
    assert dict(UNITS) == {
        "B": 1,
        "KB": 1024,
        "MB": 1024**2,
        "GB": 1024**3,
        "TB": 1024**4,
        "KiB": 1024,
        "MiB": 1024**2,
        "GiB": 1024**3,
        "TiB": 1024**4,
    }


@pytest.mark.parametrize(
    ("units", "budget"), [("kb", 2048), ("KiB", 2048), ("kib", 2048), ("Mb", 2 << 20), ("gib", 2 << 30), ("b", 2)]
)
def test_units_are_case_insensitive_with_kib_and_kb(units: str, budget: int) -> None:
    assert _budget_bytes(2, units) == budget  # what start_cache hands the actor (checked once through it below)


def test_the_actor_keeps_the_budget_start_cache_computed(namespace: str, tmp_path: Path) -> None:
    handle = start_cache(2, str(tmp_path / "cache"), units="kib", namespace=namespace)
    assert ray.get(handle.get_config.remote())["budget_bytes"] == 2048


@pytest.mark.parametrize(
    ("size", "units", "error", "fragment"),
    [
        (-1, "B", ValueError, "finite number >= 0"),
        (float("nan"), "MB", ValueError, "finite number >= 0"),
        (1, "PB", ValueError, "unknown cache size units 'PB'; valid units \\(any case\\): B, KB, MB, GB, TB, KiB"),
        (1, "kbb", ValueError, "unknown cache size units"),
        ("4", "GB", TypeError, "must be a number"),
        (True, "GB", TypeError, "must be a number"),
    ],
)
def test_bad_sizes_and_units_are_refused(
    tmp_path: Path, size: Any, units: str, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        start_cache(size, str(tmp_path), units=units)


@pytest.mark.ray_compat
def test_actor_api_on_the_head_node(namespace: str, tmp_path: Path, cluster: Any) -> None:
    assert get_active_cache(namespace) is None
    handle = start_cache(2, str(tmp_path / "cache"), units="KB", namespace=namespace)
    assert start_cache(2, str(tmp_path / "cache"), units="KB", namespace=namespace) == handle  # idempotent
    assert get_active_cache(namespace) == handle
    config = ray.get(handle.get_config.remote())
    assert config["node_id"] == cluster.node_ids["head"]
    assert (config["budget_bytes"], config["cache_dir"], config["namespace"]) == (
        2048,
        str(tmp_path / "cache"),
        namespace,
    )
    assert config["functions"] == {} and config["signed"] is False

    assert ray.get(handle.read.remote("missing")) == (False, None)
    assert ray.get(handle.write.remote("a", {"value": [1, 2]})) is True
    assert ray.get(handle.write.remote("b", "bee")) is True
    assert ray.get(handle.read.remote("a")) == (True, {"value": [1, 2]})
    assert ray.get(handle.has.remote("b")) and not ray.get(handle.has.remote("c"))
    assert ray.get(handle.keys.remote()) == ["b", "a"]  # least recently used first
    size = ray.get(handle.size_bytes.remote())
    assert 0 < size <= 2048
    assert ray.get(handle.evict.remote("b")) is True
    assert ray.get(handle.evict.remote("b")) is False
    stats = ray.get(handle.stats.remote())
    assert {key: stats[key] for key in ("entries", "hits", "misses", "evictions", "budget_bytes")} == {
        "entries": 1,
        "hits": 1,
        "misses": 1,
        "evictions": 0,
        "budget_bytes": 2048,
    }
    assert stats["bytes"] == ray.get(handle.size_bytes.remote())
    assert isinstance(stats["open_ms"], int) and isinstance(stats["warm_start_ms"], int)  # timings in whole ms
    store = chia_actor(handle)
    assert get(store.flush.chia_remote()) == 1
    assert get(store.keys.chia_remote()) == []
    with pytest.raises(TypeError, match="cache tags are str"):
        ray.get(handle.write.remote(cast(str, 3), "x"))


def test_lru_budget_and_oversized_values(namespace: str, tmp_path: Path) -> None:
    handle = start_cache(1, str(tmp_path / "cache"), units="KB", namespace=namespace)
    for index in range(30):
        ray.get(handle.write.remote(f"k{index}", b"x" * 100))
        stats = ray.get(handle.stats.remote())
        assert stats["bytes"] <= stats["budget_bytes"] == 1024
    keys = ray.get(handle.keys.remote())
    assert keys[-1] == "k29" and "k0" not in keys
    assert ray.get(handle.stats.remote())["evictions"] == 30 - len(keys)
    assert ray.get(handle.write.remote("huge", b"x" * 2000)) is False
    assert not ray.get(handle.has.remote("huge"))
    assert ray.get(handle.keys.remote())[-1] == "k29"  # nothing evicted for the refused value


def test_values_of_every_size_round_trip_and_survive_restart(namespace: str, tmp_path: Path) -> None:
    values = {f"v{size}": os.urandom(size) for size in (1 << 10, 1 << 20, 32 << 20)}
    handle = start_cache(100, str(tmp_path / "cache"), units="MB", namespace=namespace)
    for tag, value in values.items():
        ray.get(handle.write.remote(tag, value))
        assert ray.get(handle.read.remote(tag)) == (True, value)
        assert ray.get(handle.read.remote(tag)) == (True, value)
    stop_cache(namespace)
    assert get_active_cache(namespace) is None
    handle = start_cache(100, str(tmp_path / "cache"), units="MB", namespace=namespace)
    assert ray.get(handle.keys.remote()) == list(values)
    for tag, value in values.items():
        assert ray.get(handle.read.remote(tag)) == (True, value)


def test_damaged_record_is_a_miss_and_copied_aside(
    namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "cache"
    handle = start_cache(1, str(directory), units="MB", namespace=namespace)
    ray.get(handle.write.remote("t", "precious"))  # the first record of the log
    ray.get(handle.write.remote("u", "fine"))
    path = directory / segment_name(1)
    data = bytearray(path.read_bytes())
    data[RECORD.size + len("t") + 3] ^= 0xFF  # inside the pickled value
    path.write_bytes(bytes(data))
    assert ray.get(handle.read.remote("t")) == (False, None)
    assert ray.get(handle.read.remote("u")) == (True, "fine")
    assert ray.get(handle.stats.remote())["quarantined"] == 1
    assert len(os.listdir(directory / QUARANTINE_DIR)) == 1
    assert not ray.get(handle.has.remote("t"))


def test_directory_problems_raise_and_leave_no_actor(namespace: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheDirectoryError, match=r"'.*/file' is a file; remove '.*/file'"):
        start_cache(1, str(blocker / "cache"), units="MB", namespace=namespace)
    assert get_active_cache(namespace) is None
    with pytest.raises(CacheDirectoryError, match="virtual filesystem"):
        start_cache(1, "/proc/chia-cache", units="MB", namespace=namespace)
    assert get_active_cache(namespace) is None


def test_signed_cache_refuses_unsigned_entries(namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = str(tmp_path / "cache")
    handle = start_cache(1, directory, units="MB", namespace=namespace)
    ray.get(handle.write.remote("unsigned", 1))
    stop_cache(namespace)
    monkeypatch.setenv(SECRET_ENV, "correct horse battery staple")
    handle = start_cache(1, directory, units="MB", namespace=namespace)
    config = ray.get(handle.get_config.remote())
    assert config["signed"] is True
    assert "correct horse" not in repr(config)
    assert ray.get(handle.read.remote("unsigned")) == (False, None)
    ray.get(handle.write.remote("signed", 2))
    assert ray.get(handle.read.remote("signed")) == (True, 2)
    stop_cache(namespace)
    monkeypatch.setenv(SECRET_ENV, "another secret")
    handle = start_cache(1, directory, units="MB", namespace=namespace)
    assert ray.get(handle.read.remote("signed")) == (False, None)


def test_stop_cache_checkpoints_so_the_next_start_replays_nothing(namespace: str, tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    handle = start_cache(1, str(directory), units="MB", namespace=namespace)
    for index in range(20):  # far fewer than a checkpoint's worth of records
        ray.get(handle.write.remote(f"t{index}", index))
    assert ray.get(handle.read.remote("t0")) == (True, 0)
    stop_cache(namespace)
    # Every record overwritten with same-sized garbage: a start that replayed any would lose its entry.
    segment = directory / segment_name(1)
    segment.write_bytes(b"\0" * segment.stat().st_size)
    store = EntryStore(str(directory), 1 << 20)
    try:
        assert store.tags() == [f"t{index}" for index in range(1, 20)] + ["t0"]  # with t0's read
        assert store.quarantined == 0
    finally:
        store.close()


class _OpensForReading:
    """Unpickles by opening ``path`` for reading: on a FIFO no one writes, that blocks until the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return open, (self.path,)


def test_stop_cache_stops_a_cache_that_cannot_checkpoint_in_time(
    namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(cache_module, "STOP_CHECKPOINT_SECONDS", 0.5)
    handle = start_cache(1, str(tmp_path / "cache"), units="MB", namespace=namespace)
    ray.get(handle.write.remote("kept", 42))
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)
    handle.write.remote("stuck", _OpensForReading(fifo))  # holds the actor: the checkpoint queues behind it
    with caplog.at_level(logging.WARNING, logger="chia.base.cache"):
        stop_cache(namespace)
    assert get_active_cache(namespace) is None
    assert f"the cache in namespace {namespace!r} could not write its index checkpoint" in caplog.text
    assert "nothing is lost" in caplog.text
    restarted = start_cache(1, str(tmp_path / "cache"), units="MB", namespace=namespace)
    assert ray.get(restarted.read.remote("kept")) == (True, 42)


@pytest.mark.ray_compat
def test_restart_after_kill_picks_up_the_new_actor(namespace: str, tmp_path: Path) -> None:
    handle = start_cache(1, str(tmp_path / "cache"), units="MB", namespace=namespace)
    ray.get(handle.write.remote("kept", 42))
    ray.kill(cast(ActorHandle[Any], handle), no_restart=True)
    restarted = start_cache(1, str(tmp_path / "cache"), units="MB", namespace=namespace)
    assert ray.get(restarted.read.remote("kept")) == (True, 42)
    fresh = get_active_cache(namespace)
    assert fresh is not None and ray.get(fresh.read.remote("kept")) == (True, 42)


def test_second_start_keeps_the_running_cache(namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = start_cache(1, str(tmp_path / "one"), units="MB", namespace=namespace)
    with caplog.at_level(logging.WARNING, logger="chia.base.cache"):
        second = start_cache(2, str(tmp_path / "two"), units="MB", namespace=namespace)
    assert first == second
    assert "already running" in caplog.text
    assert ray.get(second.get_config.remote())["cache_dir"] == str(tmp_path / "one")


def test_is_cached_reads_the_rules_from_the_actor(namespace: str, tmp_path: Path, write_yaml: WriteYaml) -> None:
    assert not is_cached("anything")
    path = write_yaml("cache:\n  build: true\n  run:\n    cache: true\n    tags: ['iter.*']\n  disabled: false\n")
    start_cache(1, str(tmp_path / "cache"), units="MB", yaml_path=path, namespace=namespace)
    assert is_cached("build") and is_cached("build", "any")
    assert is_cached("run", "iter3") and not is_cached("run", "warmup") and not is_cached("run")
    assert not is_cached("disabled") and not is_cached("unlisted")


@pytest.mark.ray_compat
def test_reachable_from_another_job(namespace: str, tmp_path: Path, cluster: Any) -> None:
    handle = start_cache(1, str(tmp_path / "cache"), units="MB", namespace=namespace)
    ray.get(handle.write.remote("shared", [1, 2, 3]))
    script = textwrap.dedent(
        f"""
        import ray
        from chia.base.cache import get_active_cache
        ray.init(address={cluster.address!r}, namespace="some-other-namespace", log_to_driver=False)
        cache = get_active_cache({namespace!r})
        print(ray.get(cache.read.remote("shared")))
        ray.get(cache.write.remote("from_other_job", "hello"))
        """
    )
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(True, [1, 2, 3])" in result.stdout
    assert ray.get(handle.read.remote("from_other_job")) == (True, "hello")


def test_values_are_stored_as_cloudpickle_would_store_them() -> None:
    class Local:  # defined here: only cloudpickle can pickle it (by value)
        def __init__(self) -> None:
            self.ipc = 1.5

    plain = {"metrics": {f"m{index}": index * 0.5 for index in range(50)}, "tags": ["a", ("b", None)], "raw": b"\0"}
    cloudpickled = ray.cloudpickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-untyped-call]  # Ray's is untyped
    assert _dumps(plain) == cloudpickled
    assert pickle.loads(_dumps([{1, 2}, 3j])) == [{1, 2}, 3j]
    assert pickle.loads(_dumps({"result": Local()}))["result"].ipc == 1.5
    assert pickle.loads(_dumps({"deep": [[[Local()]]]}))["deep"][0][0][0].ipc == 1.5
