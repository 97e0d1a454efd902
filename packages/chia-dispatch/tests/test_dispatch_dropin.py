"""Drop-in spellings of the reference's users (issue 13, points 3 and 4).

``from chia.base.ChiaFunction import chia_wait, TrackedRef``; ``chia_wait`` over a
tuple; TrackedRefs compared by value; ``ChiaCallRemote(func=...)``; and
``ChiaFunction(...).options(...)`` on the decorator object.
"""

from __future__ import annotations

import functools

import pytest
import ray

from chia.base import chia_wait as chia_wait_module
from chia.base.ChiaFunction import ChiaCallRemote, ChiaFunction, TrackedRef, chia_wait, get

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=0)
def add(x: int, y: int = 0) -> int:
    return x + y


@ChiaFunction(num_cpus=0)
def node_of() -> str:
    return ray.get_runtime_context().get_node_id()


def test_chia_wait_and_trackedref_are_reexported_by_chiafunction() -> None:
    assert chia_wait is chia_wait_module.chia_wait
    assert TrackedRef is chia_wait_module.TrackedRef


def test_chia_wait_accepts_a_tuple_and_returns_lists_of_the_same_objects() -> None:
    submits = [functools.partial(add.chia_remote, i, 1) for i in range(3)]
    tracked = tuple(TrackedRef(submit(), submit, label=f"add{i}") for i, submit in enumerate(submits))
    ready, pending = chia_wait(tracked, num_returns=3, timeout=120)
    assert isinstance(ready, list) and isinstance(pending, list)
    assert pending == []
    assert all(any(tr is original for original in tracked) for tr in ready)
    assert sorted(get(tr.ref) for tr in ready) == [1, 2, 3]
    with pytest.raises(TypeError, match="sequence"):
        chia_wait(tr for tr in tracked)  # type: ignore[arg-type]


def test_trackedrefs_compare_by_value() -> None:
    submit = functools.partial(add.chia_remote, 1, 2)
    ref = submit()
    first = TrackedRef(ref, submit, label="a")
    same = TrackedRef(ref, submit, label="a", retries=3)  # bookkeeping fields do not count
    assert first == same and hash(first) == hash(same)
    assert first in [same]
    assert first != TrackedRef(ref, submit, label="b")
    assert first != TrackedRef(submit(), submit, label="a")
    # Keyed bookkeeping survives the in-place mutation a retry makes.
    seen = {first: "a"}
    first.ref, first.retries = submit(), 1
    assert seen[first] == "a"


def test_chiacallremote_takes_func_by_keyword() -> None:
    assert get(ChiaCallRemote(func=add, x=2, y=3)) == 5
    assert get(ChiaCallRemote(add, 2, y=3)) == 5


def test_chiafunction_decorator_object_offers_options(cluster: object) -> None:
    decorator = ChiaFunction(num_cpus=0).options(resources={"node_b": 1})
    pinned = decorator(node_of.__wrapped__)
    assert dict(pinned.chia_options) == {"num_cpus": 0, "resources": {"node_b": 1}}
    clusters = cluster
    assert get(pinned.chia_remote()) == clusters.node_ids["node_b"]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="not_an_option"):
        ChiaFunction().options(not_an_option=1)(add.__wrapped__)
