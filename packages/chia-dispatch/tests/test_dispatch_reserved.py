"""The reserved call keywords: _chia_setup/_chia_cleanup (and their args) and _chia_display_name.

Issue 13 point 1: every call surface (``chia_remote``, ``.options(...).chia_remote``,
``chia_remote_blocking``, bound methods, actor methods, local calls) accepts them,
setup runs before the function and cleanup after it (even when it raises), on the
process that runs the function, and none of them reaches the function.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import ray

from chia.base import dispatch_hooks
from chia.base.ChiaFunction import ChiaFunction, chia_actor, get
from chia.base.dispatch_hooks import CallInfo, DispatchCall

pytestmark = pytest.mark.usefixtures("cluster")


def journal(path: str, event: str) -> None:
    """Setup/cleanup used by the tests: one JSON line naming the event and the process."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps({"event": event, "pid": os.getpid()}) + "\n")


def read_journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@ChiaFunction(num_cpus=0)
def record_kwargs(path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Journals its own run, returns the keywords it received and its pid."""
    journal(path, "body")
    return {"kwargs": sorted(kwargs), "pid": os.getpid()}


@ChiaFunction(num_cpus=0)
def fail_after_journal(path: str) -> None:
    journal(path, "body")
    raise ValueError("the function failed")


class Worker:
    @ChiaFunction(num_cpus=0)
    def method(self, path: str, **kwargs: Any) -> list[str]:
        journal(path, "body")
        return sorted(kwargs)


@ray.remote(num_cpus=0)
class JournalActor:
    def work(self, path: str, **kwargs: Any) -> tuple[list[str], int]:
        journal(path, "body")
        return sorted(kwargs), os.getpid()


def around_keywords(path: Path) -> dict[str, Any]:
    return {
        "_chia_setup": journal,
        "_chia_setup_args": (str(path), "setup"),
        "_chia_cleanup": journal,
        "_chia_cleanup_args": {"path": str(path), "event": "cleanup"},
        "_chia_tag": "t0",
        "_chia_display_name": "journalled call",
    }


def assert_ran_around(path: Path, pid: int) -> None:
    entries = read_journal(path)
    assert [e["event"] for e in entries] == ["setup", "body", "cleanup"]
    assert {e["pid"] for e in entries} == {pid}  # on the process that ran the function


@pytest.mark.parametrize(
    "surface",
    ["chia_remote", "options", "chia_remote_blocking", "options_blocking"],
)
def test_setup_and_cleanup_run_around_the_function_on_its_worker(tmp_path: Path, surface: str) -> None:
    path = tmp_path / "journal"
    keywords = around_keywords(path)
    if surface == "chia_remote":
        result = get(record_kwargs.chia_remote(str(path), **keywords))
    elif surface == "options":
        result = get(record_kwargs.options(num_cpus=0).chia_remote(str(path), **keywords))
    elif surface == "chia_remote_blocking":
        result = record_kwargs.chia_remote_blocking(str(path), **keywords)
    else:
        result = record_kwargs.options(num_cpus=0).chia_remote_blocking(str(path), **keywords)
    assert result["kwargs"] == []  # no reserved keyword reached the function
    assert result["pid"] != os.getpid()
    assert_ran_around(path, result["pid"])


def test_reserved_keywords_given_to_options_apply_to_its_calls(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    handle = record_kwargs.options(_chia_setup=journal, _chia_setup_args=(str(path), "setup"))
    result = get(handle.chia_remote(str(path), _chia_cleanup=journal, _chia_cleanup_args=(str(path), "cleanup")))
    assert result["kwargs"] == []
    assert_ran_around(path, result["pid"])


def test_cleanup_runs_when_the_function_raises(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    # mypy users pass reserved keywords through .options(...); the reference's users pass them to the call.
    ref = fail_after_journal.chia_remote(str(path), _chia_cleanup=journal, _chia_cleanup_args=(str(path), "cleanup"))  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="the function failed"):
        get(ref)
    assert [e["event"] for e in read_journal(path)] == ["body", "cleanup"]


def test_local_call_runs_setup_and_cleanup_in_process(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    result = record_kwargs(str(path), extra=1, **around_keywords(path))
    assert result["kwargs"] == ["extra"]  # ordinary keywords still reach the function
    assert_ran_around(path, os.getpid())


def test_bound_method_accepts_the_reserved_keywords(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    worker = Worker()
    assert get(worker.method.chia_remote(worker, str(path), **around_keywords(path))) == []
    assert [e["event"] for e in read_journal(path)] == ["setup", "body", "cleanup"]


def test_actor_method_runs_setup_and_cleanup_in_the_actor(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    actor = JournalActor.remote()  # type: ignore[attr-defined]
    try:
        handle = chia_actor(actor)
        keywords, pid = get(handle.work.chia_remote(str(path), **around_keywords(path)))
        assert keywords == []
        assert_ran_around(path, pid)
        # Without setup/cleanup the reserved names are stripped too, on .remote as on .chia_remote.
        assert get(handle.work.remote(str(path), _chia_tag="t1", _chia_display_name="named")) == ([], pid)
        assert handle.work.chia_remote_blocking(str(path), _chia_tag="t2")[0] == []
    finally:
        ray.kill(actor)


def test_bad_reserved_values_are_refused_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"_chia_setup .* must be a callable"):
        record_kwargs.chia_remote("x", _chia_setup="not callable")
    with pytest.raises(TypeError, match="_chia_setup_args given without _chia_setup"):
        record_kwargs.chia_remote("x", _chia_setup_args=(1,))
    with pytest.raises(TypeError, match=r"_chia_cleanup_args .* tuple or list"):
        record_kwargs.chia_remote("x", _chia_cleanup=journal, _chia_cleanup_args=42)
    with pytest.raises(TypeError, match=r"_chia_display_name .* must be a str"):
        record_kwargs.chia_remote("x", _chia_display_name=3)


# --- _chia_display_name through the dispatch seam (what the profiler reads) ---------------


def display_name_wrapper(call: CallInfo, proceed: Callable[[], Any]) -> Any:
    """Appends the call's display name and tag to the journal named in its context."""
    result = proceed()
    path = call.context.get("test.journal")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps([call.name, call.display_name, call.tag, call.remote]) + "\n")
    return result


def test_display_name_reaches_hooks_and_worker_wrappers(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    seen: list[DispatchCall] = []

    def observe(call: DispatchCall) -> None:
        seen.append(call)
        call.context["test.journal"] = str(path)
        return None

    remove_hook = dispatch_hooks.add_dispatch_hook(observe)
    remove_wrapper = dispatch_hooks.add_call_wrapper(display_name_wrapper)
    try:
        result = get(record_kwargs.chia_remote(str(tmp_path / "body"), _chia_display_name="sim c8", _chia_tag="k128"))
    finally:
        remove_hook()
        remove_wrapper()
    assert result["kwargs"] == []
    assert (seen[0].name, seen[0].display_name, seen[0].tag) == ("record_kwargs", "sim c8", "k128")
    assert [json.loads(line) for line in path.read_text().splitlines()] == [["record_kwargs", "sim c8", "k128", True]]
