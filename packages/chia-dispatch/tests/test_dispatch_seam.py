"""The dispatch seam (chia.base.dispatch_hooks) on a real local Ray."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import ray

from chia.base import dispatch_hooks
from chia.base.ChiaFunction import ChiaFunction, get
from chia.base.dispatch_hooks import CallInfo, DispatchCall

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=0, resources={"node_b": 1})
def real_work(x: int) -> str:
    return f"real {x}"


@ChiaFunction(num_cpus=1)
def report_current_call(x: int) -> tuple[str, str | None, bool] | None:
    call = dispatch_hooks.current_call()
    return None if call is None else (call.name, call.tag, call.remote)


@ChiaFunction(num_cpus=0)
def outer(x: int) -> str:
    return get(real_work.options(_chia_tag=f"inner{x}").chia_remote(x))


def replacement(x: int) -> tuple[str, str]:
    return f"replaced {x}", ray.get_runtime_context().get_node_id()


def journal_wrapper(call: CallInfo, proceed: Callable[[], Any]) -> Any:
    """Appends one JSON line per executed body to the file named in the context."""
    result = proceed()
    path = call.context.get("test.journal") or os.environ.get("CHIA_TEST_JOURNAL")
    if path:
        with open(path, "a", encoding="utf-8") as journal:
            record = {"name": call.name, "tag": call.tag, "remote": call.remote, "replaced": call.replaced}
            journal.write(json.dumps(record) + "\n")
    return result


@pytest.fixture
def removers() -> Iterator[list[Callable[[], None]]]:
    registered: list[Callable[[], None]] = []
    yield registered
    for remove in registered:
        remove()


def test_hook_sees_the_call_and_can_observe_resolution(removers: list[Callable[[], None]]) -> None:
    seen: list[DispatchCall] = []
    resolved: list[Any] = []

    def observe(call: DispatchCall) -> None:
        seen.append(call)
        call.on_resolve(resolved.append)
        return None

    removers.append(dispatch_hooks.add_dispatch_hook(observe))
    ref = real_work.options(_chia_tag="iter0").chia_remote(3)
    assert isinstance(ref, ray.ObjectRef)
    assert resolved == []
    assert get(ref) == "real 3"
    assert get(ref) == "real 3"
    assert resolved == ["real 3"]  # once, at the first get
    call = seen[0]
    assert (call.name, call.tag, call.args, call.kwargs) == ("real_work", "iter0", (3,), {})
    assert call.qualname.endswith(".real_work")
    assert dict(call.options) == {"num_cpus": 0, "resources": {"node_b": 1}}


def test_hook_replaces_dispatch_with_same_options(removers: list[Callable[[], None]], cluster: Any) -> None:
    def bypass_like(call: DispatchCall) -> Any:
        if call.name != "real_work":
            return None
        return call.submit(replacement, *call.args)

    removers.append(dispatch_hooks.add_dispatch_hook(bypass_like))
    value, node = get(cast(Any, real_work.chia_remote(9)))
    assert value == "replaced 9"
    assert node == cluster.node_ids["node_b"]


def test_first_hook_returning_a_ref_wins_in_priority_order(removers: list[Callable[[], None]]) -> None:
    order: list[str] = []

    def late(call: DispatchCall) -> Any:
        order.append("late")
        return call.submit(replacement, 0)

    def early(call: DispatchCall) -> None:
        order.append("early")
        return None

    removers.append(dispatch_hooks.add_dispatch_hook(late, priority=50))
    removers.append(dispatch_hooks.add_dispatch_hook(early, priority=10))
    assert get(real_work.chia_remote(1))[0] == "replaced 0"
    assert order == ["early", "late"]
    for remove in removers:
        remove()
    removers.clear()
    assert get(real_work.chia_remote(1)) == "real 1"


def test_call_wrappers_run_on_workers_and_for_local_calls(
    removers: list[Callable[[], None]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "journal.jsonl"

    def add_context(call: DispatchCall) -> None:
        call.context["test.journal"] = str(journal)
        return None

    removers.append(dispatch_hooks.add_dispatch_hook(add_context))
    removers.append(dispatch_hooks.add_call_wrapper(journal_wrapper))
    assert get(report_current_call.options(_chia_tag="t1").chia_remote(1)) == ("report_current_call", "t1", True)
    monkeypatch.setenv("CHIA_TEST_JOURNAL", str(journal))
    local_result = report_current_call(2, _chia_tag="local")  # type: ignore[call-arg]
    assert local_result == ("report_current_call", "local", False)
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert records == [
        {"name": "report_current_call", "tag": "t1", "remote": True, "replaced": False},
        {"name": "report_current_call", "tag": "local", "remote": False, "replaced": False},
    ]


@pytest.mark.parametrize(
    ("options", "limit"),
    [({}, None), ({"name": "own_name"}, None), ({}, 0)],
    ids=["tag in the task name", "explicit name", "past the tagged-name limit"],
)
def test_wrappers_see_the_tag_of_calls_without_context(
    removers: list[Callable[[], None]],
    options: dict[str, Any],
    limit: int | None,
    name_limit: Callable[[int | None], None],
) -> None:
    if limit is not None:  # the tag cannot be read back from the task name: it travels with the call
        name_limit(limit)
    removers.append(dispatch_hooks.add_call_wrapper(journal_wrapper))  # a wrapper, no hook: no context
    handle = report_current_call.options(**options)
    tags = [None, "t1", "a[b]c]", "", "t2"]
    refs = [handle.chia_remote(1)]
    refs += [handle.options(_chia_tag=tag).chia_remote(1) for tag in tags[1:4]]
    refs.append(handle.options(_chia_tag="t2", _chia_display_name="shown").chia_remote(1))
    assert get(refs) == [("report_current_call", tag, True) for tag in tags]


def test_nested_dispatch_carries_wrappers_to_the_inner_worker(
    removers: list[Callable[[], None]], tmp_path: Path
) -> None:
    journal = tmp_path / "inner.jsonl"
    removers.append(dispatch_hooks.add_call_wrapper(journal_wrapper))
    runtime_env = {"env_vars": {"CHIA_TEST_JOURNAL": str(journal)}}
    assert get(outer.options(runtime_env=runtime_env).chia_remote(6)) == "real 6"
    names = sorted(json.loads(line)["name"] for line in journal.read_text().splitlines())
    # The inner call ran on another worker, where nothing was registered: the
    # wrapper travelled with the outer task and on with its nested dispatch.
    assert names == ["outer", "real_work"]


@ChiaFunction(num_cpus=0)
def my_task_id() -> str | None:
    return ray.get_runtime_context().get_task_id()


def test_on_submitted_sees_the_ref_whose_task_runs(removers: list[Callable[[], None]]) -> None:
    submitted: list[Any] = []

    def observe(call: DispatchCall) -> None:
        call.on_submitted(submitted.append)
        return None

    removers.append(dispatch_hooks.add_dispatch_hook(observe))
    ref = my_task_id.chia_remote()
    assert submitted == [ref]
    assert get(ref) == ref.task_id().hex()


def test_resolve_callback_errors_are_logged_not_raised(
    removers: list[Callable[[], None]], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(call: DispatchCall) -> None:
        call.on_resolve(lambda value: 1 / 0)
        return None

    removers.append(dispatch_hooks.add_dispatch_hook(broken))
    assert get(real_work.chia_remote(2)) == "real 2"
    assert "resolve callback" in caplog.text


def test_removing_everything_restores_the_plain_path(removers: list[Callable[[], None]]) -> None:
    remove = dispatch_hooks.add_call_wrapper(journal_wrapper)
    remove()
    remove()  # idempotent
    assert get(real_work.chia_remote(4)) == "real 4"
    assert report_current_call(1) is None
