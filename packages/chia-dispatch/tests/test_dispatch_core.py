"""ChiaFunction, get, ChiaCallRemote and chia_actor on a real local Ray."""

from __future__ import annotations

import inspect
import os
import pickle
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
import ray
import ray.cloudpickle
from ray.exceptions import GetTimeoutError, TaskCancelledError

from chia.base.ChiaFunction import (
    ChiaActorHandle,
    ChiaCallRemote,
    ChiaFunction,
    ObjectRefCallback,
    _is_deferred_sigint_failure,
    chia_actor,
    get,
)

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=1)
def add(x: int, y: int = 0) -> int:
    """Add two numbers."""
    return x + y


@ChiaFunction(num_cpus=1)
def whoami() -> tuple[int, str]:
    return os.getpid(), ray.get_runtime_context().get_node_id()


@ChiaFunction(num_cpus=0, resources={"node_b": 1})
def on_node_b() -> str:
    return ray.get_runtime_context().get_node_id()


@ChiaFunction(num_cpus=1)
def echo_kwargs(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


@ChiaFunction(num_cpus=0)
def sleep_for(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@ChiaFunction(num_cpus=1)
def pair(x: int) -> tuple[int, int]:
    return x, x * 10


class Doubler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    @ChiaFunction(num_cpus=1)
    def do_work(self, x: int) -> tuple[int, int]:
        return x * self.factor, os.getpid()


class Base:
    def describe(self) -> str:
        return "base"


class Derived(Base):
    """Defined in a test module, so it travels by value; the method's super() refers back to the class."""

    @ChiaFunction(num_cpus=0)
    def describe(self) -> str:
        return "derived of " + super().describe()


@ray.remote(num_cpus=0)
class Counter:
    def __init__(self) -> None:
        self.value = 0

    def incr(self, by: int = 1) -> int:
        self.value += by
        return self.value


def test_local_call_runs_in_process_and_keeps_metadata() -> None:
    assert add(2, 3) == 5
    assert whoami()[0] == os.getpid()
    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert add.__wrapped__(1, 1) == 2
    assert str(inspect.signature(add)) == "(x: 'int', y: 'int' = 0) -> 'int'"
    assert dict(add.chia_options) == {"num_cpus": 1}


@pytest.mark.ray_compat
def test_chia_remote_returns_a_real_object_ref_run_on_a_worker() -> None:
    ref = whoami.chia_remote()
    assert isinstance(ref, ray.ObjectRef)
    ready, pending = ray.wait([ref], timeout=60)
    assert ready == [ref] and pending == []
    pid, _node = ray.get(ref)
    assert pid != os.getpid()
    assert get(ref) == ray.get(ref)


def test_refs_chain_into_other_calls_as_values() -> None:
    first = add.chia_remote(1, 2)
    # Refs are resolved to values by Ray; the ParamSpec signature cannot say so.
    second = add.chia_remote(first, y=first)  # type: ignore[arg-type]
    assert get(second) == 6
    assert add.chia_remote_blocking(4, 4) == 8
    assert get(ChiaCallRemote(add, 5, y=6)) == 11


@pytest.mark.ray_compat
def test_ray_cancel_works_on_chia_refs() -> None:
    ref = sleep_for.chia_remote(600)
    ray.cancel(ref, force=True)
    with pytest.raises((TaskCancelledError, ray.exceptions.WorkerCrashedError)):
        get(ref, timeout=60)


def test_user_keywords_reach_the_function_unchanged_and_tag_never_does() -> None:
    user_kwargs = {"func": 1, "tag": 2, "provider": 3, "call_id": 4, "name": 5}
    assert get(echo_kwargs.chia_remote(7, _chia_tag="iter0", **user_kwargs)) == ((7,), user_kwargs)
    assert get(ChiaCallRemote(echo_kwargs, **user_kwargs)) == ((), user_kwargs)
    assert get(echo_kwargs.options(_chia_tag="t").chia_remote(**user_kwargs)) == ((), user_kwargs)
    # The reserved keyword also works (and is dropped) in local calls.
    assert echo_kwargs(1, _chia_tag="local", func=2) == ((1,), {"func": 2})


def test_bound_method_runs_on_a_worker_with_that_self() -> None:
    tool = Doubler(3)
    assert tool.do_work(5)[0] == 15
    value, pid = get(tool.do_work.chia_remote(tool, x=5))
    assert (value, pid != os.getpid()) == (15, True)
    assert get(Doubler.do_work.chia_remote(Doubler(4), 2))[0] == 8


def test_a_method_using_super_in_a_class_pickled_by_value_runs_remotely() -> None:
    derived = Derived()
    assert derived.describe() == "derived of base"
    assert get(derived.describe.chia_remote(derived)) == "derived of base"
    dumps: Callable[[Any], bytes] = ray.cloudpickle.dumps
    assert ray.cloudpickle.loads(dumps(derived)).describe() == "derived of base"


def test_options_merge_over_decorator_options() -> None:
    handle = add.options(num_cpus=0.5)
    assert get(handle.chia_remote(1, 1)) == 2
    assert get(handle.remote(2, 2)) == 4
    assert handle.chia_remote_blocking(3, 3) == 6
    refs: Any = pair.options(num_returns=2).chia_remote(3)
    assert [get(r) for r in refs] == [3, 30]
    assert dict(add.chia_options) == {"num_cpus": 1}


def test_options_chain_and_layer(cluster: Any) -> None:
    chained = whoami.options(num_cpus=0).options(resources={"node_b": 0.1}).options(_chia_tag="t")
    assert {node for _, node in get([chained.chia_remote() for _ in range(3)])} == {cluster.node_ids["node_b"]}
    assert get(add.options(num_cpus=0.5).options(num_cpus=1).chia_remote(1, 2)) == 3


def test_decorated_functions_pickle_with_the_standard_library() -> None:
    assert pickle.loads(pickle.dumps(add)) is add  # importable: by reference
    holder = pickle.loads(pickle.dumps({"fn": add, "tool": Doubler(2)}))
    assert holder["fn"] is add

    @ChiaFunction(num_cpus=1)
    def local_only(x: int) -> int:
        return x + 1

    copy = pickle.loads(ray.cloudpickle.dumps(local_only))  # type: ignore[no-untyped-call]  # by value
    assert copy(1) == 2 and get(copy.chia_remote(2)) == 3


@pytest.mark.ray_compat
def test_custom_resources_are_honoured_across_nodes(cluster: Any) -> None:
    node_b = cluster.node_ids["node_b"]
    head = cluster.node_ids["head"]
    assert set(get([on_node_b.chia_remote() for _ in range(5)])) == {node_b}
    pinned = whoami.options(num_cpus=0, resources={"head": 0.1})
    assert {node for _, node in get([pinned.chia_remote() for _ in range(5)])} == {head}
    moved = whoami.options(num_cpus=0, resources={"node_b": 0.1})
    assert {node for _, node in get([moved.chia_remote() for _ in range(5)])} == {node_b}


@pytest.mark.ray_compat
def test_get_shapes_callbacks_and_timeout() -> None:
    refs = [add.chia_remote(i, i) for i in range(4)]
    assert get(refs) == [0, 2, 4, 6]
    assert cast(Any, get(refs, callback=sum)) == 12
    assert get(refs[1], callback=lambda v: v + 100) == 102
    order: list[str] = []

    def own(value: int) -> int:
        order.append("own")
        return value * 10

    def explicit(value: int) -> int:
        order.append("explicit")
        return value + 1

    wrapped = ObjectRefCallback(refs[2], own)
    assert wrapped.ref is refs[2]
    assert get(wrapped, callback=explicit) == 41
    assert order == ["own", "explicit"]
    assert get(cast(Any, [wrapped, refs[3]])) == [40, 6]
    with pytest.raises(GetTimeoutError):
        get(sleep_for.chia_remote(600), timeout=0.2)


def test_export_happens_once_per_function_not_per_call() -> None:
    class CountsPickling:
        pickled = 0

        def __reduce__(self) -> tuple[Any, ...]:
            CountsPickling.pickled += 1
            return (int, (7,))

    marker = CountsPickling()

    @ChiaFunction(num_cpus=1)
    def uses_marker(i: int) -> Any:
        return cast(Any, marker) + i

    assert get([uses_marker.chia_remote(i) for i in range(20)]) == [7 + i for i in range(20)]
    assert get([uses_marker.options(num_cpus=0.5).chia_remote(i) for i in range(5)]) == [7 + i for i in range(5)]
    assert CountsPickling.pickled == 1


@pytest.mark.ray_compat
def test_chia_actor_wraps_methods_and_pickles() -> None:
    raw = Counter.remote()  # type: ignore[attr-defined]  # ray.remote keeps the class type
    store = chia_actor(raw)
    assert isinstance(store, ChiaActorHandle)
    assert chia_actor(store) is store
    assert store.actor is raw
    assert get(store.incr.chia_remote()) == 1
    assert get(store.incr.remote(by=2)) == 3
    assert store.incr.chia_remote_blocking() == 4

    @ChiaFunction(num_cpus=0)
    def bump_through(handle: ChiaActorHandle) -> int:
        result: int = ray.get(handle.incr.chia_remote(10))
        return result

    assert get(bump_through.chia_remote(store)) == 14
    assert pickle.loads(pickle.dumps(store)).actor == raw


def test_decorated_function_pickles_into_tasks() -> None:
    @ChiaFunction(num_cpus=0)
    def nested(x: int) -> int:
        return get(add.chia_remote(x, 1)) * 2

    assert get(nested.chia_remote(4)) == 10


def test_bad_input_names_the_offending_value() -> None:
    with pytest.raises(TypeError, match="42"):
        ChiaFunction()(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parentheses"):
        ChiaFunction(add)
    with pytest.raises(ValueError, match="bogus_option"):
        ChiaFunction(bogus_option=1)(lambda: None)
    with pytest.raises(ValueError, match="not_an_option"):
        add.options(not_an_option=True)
    with pytest.raises(TypeError, match=r"_chia_tag.*5 \(int\)"):
        add.chia_remote(1, _chia_tag=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"_chia_tag.*\['x'\]"):
        add.options(_chia_tag=["x"])
    with pytest.raises(TypeError, match="needs a Ray actor handle"):
        chia_actor(object())
    with pytest.raises(TypeError, match="already a ChiaFunction"):
        ChiaFunction()(add)


@ChiaFunction(num_cpus=0)
def raises_ray_s_cancel_race_message() -> None:
    raise TypeError("'Handlers' object is not callable")


def test_ray_s_deferred_sigint_failure_reads_as_the_cancel_it_is() -> None:
    # Ray's own failure when a cancel lands while the worker defers SIGINT: no frame of the task's code.
    cause = TypeError("'Handlers' object is not callable")
    task_error: Callable[..., ray.exceptions.RayTaskError] = ray.exceptions.RayTaskError
    ray_s = task_error("busy_tree", "TypeError: 'Handlers' object is not callable", cause)
    assert _is_deferred_sigint_failure(ray_s)
    # The same message raised by the task's own code is the task's error, shown as such by get.
    with pytest.raises(TypeError, match="'Handlers' object is not callable") as raised:
        get(raises_ray_s_cancel_race_message.chia_remote())
    assert isinstance(raised.value, ray.exceptions.RayTaskError)
    assert not isinstance(raised.value, TaskCancelledError)
    assert not _is_deferred_sigint_failure(raised.value)
