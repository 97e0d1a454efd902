"""Pinned public signatures of chia.base.pid_registry (mypy checks the assert_type calls)."""

from __future__ import annotations

import inspect
from typing import assert_type

import pytest

from chia.base import ChiaFunction as chia_function
from chia.base import pid_registry


@pytest.mark.usefixtures("cluster")
def test_cancel_signatures_are_pinned() -> None:
    assert_type(pid_registry.kill_all_tracked(), int)
    assert_type(pid_registry.kill_all_tracked(1.0, all_jobs=True), int)
    assert_type(pid_registry.tracked_tasks(all_jobs=False), dict[str, pid_registry.TrackedTask])
    assert_type(pid_registry.task_tags([]), dict[str, str])
    assert_type(pid_registry.cancel_tasks([], grace=1.0), int)
    assert str(inspect.signature(pid_registry.task_tags)) == "(task_ids: 'Iterable[str]') -> 'dict[str, str]'"
    assert str(inspect.signature(pid_registry.chia_cancel)) == (
        "(ref: 'ObjectRef[Any] | ObjectRefCallback', force: 'bool' = False, *, grace: 'float' = 25.0) -> 'None'"
    )
    assert chia_function.chia_cancel is pid_registry.chia_cancel
    assert inspect.signature(pid_registry.kill_all_tracked).parameters["grace"].default == 25.0
    assert inspect.signature(pid_registry.PidRegistryActor.kill_all).parameters["grace"].default == 25.0
