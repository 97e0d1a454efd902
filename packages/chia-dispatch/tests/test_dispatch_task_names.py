"""Tags reach Ray (issue 14): a tagged call's Ray task name carries its tag.

``simulate[sim_c8_k128]`` in Ray's state API (``ray list tasks``, the dashboard,
the timeline); ``_chia_display_name`` names the task too; an explicit ``name``
option stays the user's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import ray
from ray.util.state import list_tasks

from chia.base import dispatch_hooks
from chia.base.ChiaFunction import ChiaFunction, chia_actor, get
from chia.base.dispatch_hooks import DispatchCall
from chia_testing import wait_until

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=0)
def simulate(cores: int) -> int:
    return cores


@ray.remote(num_cpus=0)
class Counter:
    def add(self, x: int) -> int:
        return x


def task_names_of(refs: list[Any]) -> Callable[[], dict[str, str] | None]:
    """Poll: the Ray task name of each ref, once the state API reports all of them."""
    wanted = {ref.task_id().hex() for ref in refs}

    def names() -> dict[str, str] | None:
        job = ray.get_runtime_context().get_job_id()
        tasks = list_tasks(
            address=ray.get_runtime_context().gcs_address,  # this cluster, not the machine's latest
            filters=[("job_id", "=", job)],
            limit=10_000,
            raise_on_missing_output=False,
        )
        found = {task.task_id: task.name for task in tasks if task.task_id in wanted}
        return found if len(found) == len(wanted) else None

    return names


def collect_names(refs: list[Any]) -> list[str]:
    poll = task_names_of(refs)
    wait_until(lambda: poll() is not None, message="the state API reporting the tasks")
    found = poll()
    assert found is not None
    return [found[ref.task_id().hex()] for ref in refs]


@pytest.mark.ray_compat
def test_tagged_calls_name_their_ray_tasks() -> None:
    refs = [
        simulate.chia_remote(8, _chia_tag="sim_c8_k128"),  # type: ignore[call-arg]
        simulate.options(_chia_tag="sim_c4").chia_remote(4),
        simulate.options(num_cpus=0, _chia_tag="sim_c2").chia_remote(2),
        simulate.chia_remote(1, _chia_display_name="simulate one core"),  # type: ignore[call-arg]
        simulate.chia_remote(1, _chia_display_name="sim", _chia_tag="c1"),  # type: ignore[call-arg]
        simulate.options(name="mine").chia_remote(3, _chia_tag="ignored"),  # type: ignore[call-arg]
        simulate.chia_remote(5),
    ]
    assert get(refs) == [8, 4, 2, 1, 1, 3, 5]
    names = collect_names(refs)
    assert names[:6] == [
        "simulate[sim_c8_k128]",
        "simulate[sim_c4]",
        "simulate[sim_c2]",
        "simulate one core",
        "sim[c1]",
        "mine",
    ]
    assert "[" not in names[6] and names[6].endswith("simulate")  # untagged: Ray's default name


def test_tags_name_tasks_with_hooks_registered() -> None:
    def observe(call: DispatchCall) -> None:
        return None

    remove = dispatch_hooks.add_dispatch_hook(observe)
    try:
        ref = simulate.chia_remote(8, _chia_tag="hooked")  # type: ignore[call-arg]
    finally:
        remove()
    assert get(ref) == 8
    assert collect_names([ref]) == ["simulate[hooked]"]


def test_actor_method_calls_are_named_by_tag() -> None:
    actor = Counter.remote()  # type: ignore[attr-defined]
    try:
        ref = chia_actor(actor).add.chia_remote(1, _chia_tag="a1")
        assert get(ref) == 1
        assert collect_names([ref]) == ["add[a1]"]
    finally:
        ray.kill(actor)
