"""Pinned public signatures of chia.base.pid_registry (mypy checks the assert_type calls)."""

from __future__ import annotations

import inspect
from typing import assert_type

import pytest

from chia.base import ChiaFunction as chia_function
from chia.base.pid_registry import PidRegistryActor, chia_cancel, kill_all_tracked


@pytest.mark.usefixtures("cluster")
def test_cancel_signatures_are_pinned() -> None:
    assert_type(kill_all_tracked(), int)
    assert_type(kill_all_tracked(1.0, all_jobs=True), int)
    assert str(inspect.signature(chia_cancel)) == (
        "(ref: 'ObjectRef[Any] | ObjectRefCallback', force: 'bool' = False, *, grace: 'float' = 25.0) -> 'None'"
    )
    assert chia_function.chia_cancel is chia_cancel
    assert inspect.signature(kill_all_tracked).parameters["grace"].default == 25.0
    assert inspect.signature(PidRegistryActor.kill_all).parameters["grace"].default == 25.0
