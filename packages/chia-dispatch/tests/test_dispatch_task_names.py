"""Tags reach Ray (issue 14): a tagged call's Ray task name carries its tag.

``simulate[sim_c8_k128]`` in Ray's state API (``ray list tasks``, the dashboard,
the timeline); ``_chia_display_name`` names the task too; an explicit ``name``
option stays the user's. Past ``CHIA_TAGGED_TASK_NAMES`` distinct names in a
process (issue 18: Ray keeps a metric series per name), a new tag stays out of
the name and reaches the job's pid registry instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import ray
from ray.util.state import list_tasks

from chia.base import dispatch_hooks
from chia.base._dispatch import tags
from chia.base.ChiaFunction import ChiaFunction, chia_actor, get
from chia.base.dispatch_hooks import DispatchCall
from chia.base.pid_registry import task_tags
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


# --- past CHIA_TAGGED_TASK_NAMES: tags leave the names and go to the job's pid registry -----------------


def registry_tags(refs: list[Any], expected: dict[str, str]) -> None:
    ids = [ref.task_id().hex() for ref in refs]
    wait_until(lambda: task_tags(ids) == expected, message=f"the pid registry to hold the tags {expected}")


def test_past_the_limit_tags_leave_task_names_for_the_registry(
    name_limit: Callable[[int | None], None], caplog: pytest.LogCaptureFixture
) -> None:
    name_limit(2)
    with caplog.at_level(logging.WARNING, logger=tags.__name__):
        refs = [simulate.chia_remote(i, _chia_tag=f"lim{i}") for i in range(4)]  # type: ignore[call-arg]
        refs.append(simulate.chia_remote(9, _chia_tag="lim1"))  # type: ignore[call-arg]  # a name Ray has seen
        refs.append(simulate.options(_chia_tag="lim5", _chia_display_name="shown").chia_remote(5))
    assert get(refs) == [0, 1, 2, 3, 9, 5]
    names = collect_names(refs)
    assert names[:2] == ["simulate[lim0]", "simulate[lim1]"] and names[4] == "simulate[lim1]"
    assert "[" not in names[2] and names[2].endswith("simulate") and names[3] == names[2]
    assert names[5] == "shown"
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 distinct tagged task names" in warnings[0] and tags.LIMIT_ENV in warnings[0]
    expected = {refs[i].task_id().hex(): tag for i, tag in ((2, "lim2"), (3, "lim3"), (5, "lim5"))}
    registry_tags(refs, expected)


def test_a_zero_limit_never_names_and_an_explicit_name_keeps_its_tag(name_limit: Callable[[int | None], None]) -> None:
    name_limit(0)
    refs = [
        simulate.chia_remote(1, _chia_tag="zero"),  # type: ignore[call-arg]
        simulate.chia_remote(2),
    ]
    assert get(refs) == [1, 2]
    name_limit(None)  # no limit: the explicit name still wins, and its tag goes to the registry
    refs.append(simulate.options(name="mine").chia_remote(3, _chia_tag="own"))  # type: ignore[call-arg]
    assert get(refs[2]) == 3
    names = collect_names(refs)
    assert names[0] == names[1] and "[" not in names[0] and names[2] == "mine"
    registry_tags(refs, {refs[0].task_id().hex(): "zero", refs[2].task_id().hex(): "own"})


@pytest.mark.parametrize(
    ("value", "limit"), [("", tags.DEFAULT_LIMIT), (" 0 ", 0), ("250", 250), ("unlimited", None), ("UNLIMITED", None)]
)
def test_the_limit_is_read_from_the_environment(value: str, limit: int | None) -> None:
    assert tags.parse_limit(value) == limit


@pytest.mark.parametrize("value", ["-1", "10k", "1e4", "none", "2.5", "2²"])
def test_a_bad_limit_fails_the_first_tagged_call_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tags.LIMIT_ENV, value)
    monkeypatch.setattr(tags, "_namer", None)
    with pytest.raises(ValueError, match=rf"CHIA_TAGGED_TASK_NAMES={value!r} is not valid: .*whole number >= 0"):
        simulate.chia_remote(1, _chia_tag="bad")  # type: ignore[call-arg]
    assert get(simulate.chia_remote(2)) == 2  # untagged calls never need the limit
