"""The KV store on a real cluster: creation, attach, racing drivers, query_kv's failure modes, versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import ray

from chia.base.chia_kv_store import ChiaKVStore, attach_kv_store, get_or_create_kv_store, main, query_kv
from chia_testing import wait_until

# query_kv must come back within its timeout; anything near this bound means it blocked.
GROSS_BOUND_S = 30.0


def test_defaults_apply_only_when_the_store_is_created(kv_name: tuple[str, str]) -> None:
    name, namespace = kv_name
    first: Any = get_or_create_kv_store(name, namespace, num_parallel=2, stage="warmup")
    assert query_kv(first, "num_parallel") == 2
    ray.get(first.set.remote("num_parallel", 8))

    second: Any = get_or_create_kv_store(name, namespace, num_parallel=99, extra="ignored")

    assert query_kv(second, "num_parallel") == 8
    assert query_kv(second, "extra", default="absent") == "absent"
    assert ray.get(second.items.remote()) == {"num_parallel": 8, "stage": "warmup"}


@pytest.mark.ray_compat
def test_the_store_is_pinned_to_the_calling_node(cluster: Any, kv_name: tuple[str, str]) -> None:
    name, namespace = kv_name
    get_or_create_kv_store(name, namespace)
    actors = [actor for actor in ray.util.list_named_actors(all_namespaces=True) if actor["name"] == name]
    assert actors == [{"name": name, "namespace": namespace}]
    handle: Any = attach_kv_store(name, namespace)
    node_of_store = ray.get(handle.__ray_call__.remote(lambda _self: ray.get_runtime_context().get_node_id()))
    assert node_of_store == ray.get_runtime_context().get_node_id() == cluster.node_ids["node_a"]


def test_attach_finds_an_existing_store_and_names_a_missing_one(kv_name: tuple[str, str]) -> None:
    name, namespace = kv_name
    with pytest.raises(LookupError, match=f"no KV store actor named '{name}' in Ray namespace '{namespace}'"):
        attach_kv_store(name, namespace)
    get_or_create_kv_store(name, namespace, flag=True)
    assert query_kv(attach_kv_store(name, namespace), "flag") is True


@pytest.mark.ray_compat
def test_two_drivers_racing_to_create_get_the_same_store(
    cluster: Any, kv_name: tuple[str, str], tmp_path: Path
) -> None:
    name, namespace = kv_name
    start = tmp_path / "start"
    racer = textwrap.dedent(
        f"""
        import json, os, sys, time
        import ray
        from chia.base.chia_kv_store import get_or_create_kv_store, query_kv
        ray.init(address={cluster.address!r}, logging_level="ERROR", log_to_driver=False)
        print("connected", flush=True)
        while not os.path.exists({str(start)!r}):
            time.sleep(0.01)
        handle = get_or_create_kv_store({name!r}, {namespace!r}, creator=sys.argv[1])
        ray.get(handle.set.remote("seen_" + sys.argv[1], True))
        print(json.dumps({{"creator": query_kv(handle, "creator")}}), flush=True)
        """
    )
    environment = {**os.environ, "RAY_ADDRESS": ""}
    drivers = [
        subprocess.Popen(
            [sys.executable, "-c", racer, racer_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for racer_id in ("a", "b")
    ]
    try:
        for driver in drivers:
            assert driver.stdout is not None
            assert driver.stdout.readline().strip() == "connected", driver.stderr.read() if driver.stderr else ""
        start.touch()
        outputs = [driver.communicate(timeout=120) for driver in drivers]
    finally:
        for driver in drivers:
            driver.kill()
    assert [driver.returncode for driver in drivers] == [0, 0], [stderr for _, stderr in outputs]
    creators = {json.loads(stdout.strip().splitlines()[-1])["creator"] for stdout, _ in outputs}
    assert len(creators) == 1 and creators <= {"a", "b"}
    store: Any = attach_kv_store(name, namespace)
    assert ray.get(store.items.remote()) == {"creator": creators.pop(), "seen_a": True, "seen_b": True}


def test_query_kv_returns_the_stored_value_even_when_it_is_none(kv_name: tuple[str, str]) -> None:
    store: Any = get_or_create_kv_store(*kv_name, feature=None, rate=0.5)
    assert query_kv(store, "feature", default="fallback") is None
    assert query_kv(store, "rate", default=1.0) == 0.5
    sentinel = object()
    assert query_kv(store, "never_set", default=sentinel) is sentinel


def test_query_kv_with_no_handle_returns_the_default() -> None:
    assert query_kv(None, "num_parallel", default=3) == 3


def test_query_kv_on_a_dead_store_returns_the_default(kv_name: tuple[str, str], actor_gone: Any) -> None:
    store: Any = get_or_create_kv_store(*kv_name, num_parallel=4)
    ray.kill(store)
    wait_until(lambda: actor_gone(*kv_name), message="the killed store to die")
    started = time.monotonic()
    assert query_kv(store, "num_parallel", default=1, timeout=20) == 1
    assert time.monotonic() - started < GROSS_BOUND_S


@pytest.mark.ray_compat
def test_query_kv_on_a_hung_store_returns_the_default_within_its_timeout(kv_name: tuple[str, str]) -> None:
    class TakesAnHourToArrive:
        """Unpickling it on the store's only thread wedges the store."""

        def __init__(self) -> None:
            self.arrived = False

        def __setstate__(self, state: dict[str, Any]) -> None:
            time.sleep(3600)

    store: Any = get_or_create_kv_store(*kv_name, num_parallel=4)
    store.set.remote("wedge", TakesAnHourToArrive())

    started = time.monotonic()
    assert query_kv(store, "num_parallel", default=7, timeout=1.0) == 7
    assert time.monotonic() - started < GROSS_BOUND_S


def test_query_kv_on_a_serialization_error_returns_the_default(kv_name: tuple[str, str]) -> None:
    class GrowsALock:
        """Pickles on the way in; on the actor it holds a lock, so it cannot be sent back."""

        def __init__(self) -> None:
            self.lock: Any = None

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.lock = threading.Lock()

    store: Any = get_or_create_kv_store(*kv_name)
    # cas, not set: set returns the value, which cannot be sent back either.
    assert ray.get(store.cas.remote("unreturnable", 0, GrowsALock()))[0] is True
    assert query_kv(store, "unreturnable", default="fallback", timeout=20) == "fallback"
    assert query_kv(store, threading.Lock(), default="bad key", timeout=20) == "bad key"  # type: ignore[arg-type]


def test_actor_methods_cover_reads_writes_and_deletes(kv_name: tuple[str, str]) -> None:
    store: Any = get_or_create_kv_store(*kv_name, a=1)
    assert ray.get(store.get.remote("a")) == 1
    assert ray.get(store.get.remote("b", "none")) == "none"
    assert ray.get(store.set.remote("b", [1, 2])) == [1, 2]  # set returns the value, as in chialoops
    value_b, version_b = ray.get(store.get_versioned.remote("b"))
    assert value_b == [1, 2] and version_b > ray.get(store.get_versioned.remote("a"))[1]
    assert ray.get(store.get_versioned.remote("zzz")) == (None, 0)
    assert ray.get(store.items.remote()) == {"a": 1, "b": [1, 2]}
    assert ray.get(store.delete.remote("a")) is True
    assert ray.get(store.delete.remote("a")) is False
    assert ray.get(store.entries.remote()) == {"b": ([1, 2], version_b)}
    with pytest.raises(ray.exceptions.RayTaskError, match="KV store keys must be str, got 3"):
        ray.get(store.set.remote(3, "x"))


def test_compare_and_set_lets_only_one_of_two_operators_win(kv_name: tuple[str, str]) -> None:
    store: Any = get_or_create_kv_store(*kv_name, num_parallel=2)
    _, read_version = ray.get(store.get_versioned.remote("num_parallel"))

    first = ray.get(store.cas.remote("num_parallel", read_version, 4))
    second = ray.get(store.cas.remote("num_parallel", read_version, 16))

    assert first[0] is True and first[1] > read_version
    assert second == (False, first[1])
    assert query_kv(store, "num_parallel") == 4
    assert ray.get(store.cas.remote("new_knob", 0, "on"))[0] is True
    assert ray.get(store.cas.remote("new_knob", 0, "off"))[0] is False
    with pytest.raises(ray.exceptions.RayTaskError, match="expected_version for key 'new_knob' must be >= 0"):
        ray.get(store.cas.remote("new_knob", -1, "off"))


def test_a_deleted_and_recreated_key_never_reuses_a_version(kv_name: tuple[str, str]) -> None:
    store: Any = get_or_create_kv_store(*kv_name)
    ray.get(store.set.remote("k", 1))
    old = ray.get(store.get_versioned.remote("k"))[1]
    ray.get(store.delete.remote("k"))
    ray.get(store.set.remote("k", 1))
    assert ray.get(store.cas.remote("k", old, 2)) == (False, ray.get(store.get_versioned.remote("k"))[1])


def test_the_store_class_is_a_ray_actor_class_taking_defaults_as_keywords(
    kv_name: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 13 point 17: chialoops users create the actor themselves.
    name, namespace = kv_name
    handle: Any = ChiaKVStore.options(name=name, namespace=namespace, lifetime="detached").remote(
        num_parallel=2, persist_path="a knob, not a path", stage="warmup"
    )
    assert query_kv(handle, "num_parallel") == 2
    assert ray.get(handle.items.remote()) == {
        "num_parallel": 2,
        "persist_path": "a knob, not a path",
        "stage": "warmup",
    }
    attached: Any = attach_kv_store(name, namespace)
    assert ray.get(attached.set.remote("num_parallel", 6)) == 6
    assert main(["--name", name, "--namespace", namespace, "--get", "num_parallel"]) == 0
    assert capsys.readouterr().out == "6\n"


@pytest.mark.parametrize("not_a_handle", ["my_pipeline_knobs", 42, {"name": "knobs"}])
def test_query_kv_given_something_that_is_not_a_handle_raises(cluster: Any, not_a_handle: Any) -> None:
    # Issue 15: a store name where the handle belongs is a bug, not a missing key: no silent default.
    with pytest.raises(TypeError, match=r"query_kv needs the store's actor handle, got .*attach_kv_store"):
        query_kv(not_a_handle, "num_parallel", default=2)
