"""Call arguments are checked where the call is made (issue 15).

Like raw Ray's ``.remote()``, a call whose arguments do not fit the function
raises ``TypeError`` at the call site, on every call surface, before any
dispatch hook (bypass, cache, profiler) sees it and before setup runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import ray

from chia.base import dispatch_hooks
from chia.base.ChiaFunction import ChiaCallRemote, ChiaFunction, chia_actor, get
from chia.base.dispatch_hooks import CallInfo, DispatchCall

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=0)
def simulate(config: str, cores: int, *, seed: int = 0) -> str:
    return f"{config}/{cores}/{seed}"


class Tool:
    @ChiaFunction(num_cpus=0)
    def run(self, command: str) -> str:
        return command


@ray.remote(num_cpus=0)
class Store:
    def write(self, key: str, data: bytes) -> bool:
        return True


BAD_CALLS: list[tuple[str, Callable[[], object]]] = [
    ("chia_remote", lambda: simulate.chia_remote("c8")),  # type: ignore[call-arg]
    ("chia_remote_blocking", lambda: simulate.chia_remote_blocking("c8")),  # type: ignore[call-arg]
    ("ChiaCallRemote", lambda: ChiaCallRemote(simulate, "c8")),  # type: ignore[call-arg]
    ("options", lambda: simulate.options(num_cpus=0).chia_remote("c8")),  # type: ignore[call-arg]
    ("tagged", lambda: simulate.chia_remote("c8", _chia_tag="t")),  # type: ignore[call-arg]
    ("unknown keyword", lambda: simulate.chia_remote("c8", 8, sed=1)),  # type: ignore[call-arg]
    ("too many", lambda: simulate.chia_remote("c8", 8, 1)),  # type: ignore[call-arg]
    ("bound method", lambda: Tool().run.chia_remote(Tool())),
]


@pytest.mark.parametrize(("surface", "call"), BAD_CALLS, ids=[name for name, _ in BAD_CALLS])
def test_bad_arguments_raise_typeerror_at_the_call(surface: str, call: Callable[[], object]) -> None:
    with pytest.raises(TypeError, match="argument"):
        call()


def test_the_message_names_the_function_and_the_missing_argument() -> None:
    with pytest.raises(TypeError, match=r"simulate\(\): missing a required argument: 'cores'"):
        simulate.chia_remote("c8")  # type: ignore[call-arg]


def passthrough(call: CallInfo, proceed: Callable[[], Any]) -> Any:
    return proceed()


def test_no_hook_sees_a_call_that_does_not_bind() -> None:
    seen: list[DispatchCall] = []

    def replace_everything(call: DispatchCall) -> None:
        seen.append(call)  # a bypass or cache hook would act here
        return None

    remove_hook = dispatch_hooks.add_dispatch_hook(replace_everything)
    remove_wrapper = dispatch_hooks.add_call_wrapper(passthrough)
    try:
        with pytest.raises(TypeError, match="missing a required argument"):
            simulate.chia_remote("c8")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="missing a required argument"):
            simulate.options(_chia_tag="t").chia_remote("c8")  # type: ignore[call-arg]
        assert seen == []
        assert get(simulate.chia_remote("c8", 8, seed=1)) == "c8/8/1"
        assert len(seen) == 1
    finally:
        remove_hook()
        remove_wrapper()


def test_setup_does_not_run_for_a_call_that_does_not_bind(tmp_path: Path) -> None:
    marker = tmp_path / "setup-ran"
    with pytest.raises(TypeError, match="missing a required argument"):
        simulate.chia_remote("c8", _chia_setup=marker.touch)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="missing a required argument"):
        simulate("c8", _chia_setup=marker.touch)  # type: ignore[call-arg]
    assert not marker.exists()


def test_actor_methods_check_arguments_at_the_call(tmp_path: Path) -> None:
    actor = Store.remote()  # type: ignore[attr-defined]
    try:
        store = chia_actor(actor)
        marker = tmp_path / "setup-ran"
        with pytest.raises(TypeError, match="missing a required argument"):
            store.write.chia_remote("k")
        with pytest.raises(TypeError, match="missing a required argument"):
            store.write.chia_remote("k", _chia_tag="t")
        with pytest.raises(TypeError, match="missing a required argument"):
            store.write.chia_remote("k", _chia_setup=marker.touch)
        assert not marker.exists()
        assert get(store.write.chia_remote("k", b"v", _chia_setup=marker.touch)) is True
    finally:
        ray.kill(actor)


def test_an_unpicklable_argument_keeps_rays_own_error() -> None:
    with pytest.raises(TypeError, match=r"serialize|pickle"):
        simulate.chia_remote(threading.Lock(), 1)  # type: ignore[arg-type]
