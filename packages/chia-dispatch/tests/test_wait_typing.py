"""Pinned public signatures of chia.base.chia_wait (mypy checks the assert_type calls)."""

from __future__ import annotations

import inspect
from typing import Any, assert_type

import pytest
from ray import ObjectRef

from chia.base.chia_wait import TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, ObjectRefCallback


@ChiaFunction(num_cpus=0)
def one() -> int:
    return 1


@pytest.mark.usefixtures("cluster")
def test_chia_wait_signature_is_pinned() -> None:
    tracked = TrackedRef(one.chia_remote(), one.chia_remote, label="one")
    assert_type(tracked.ref, ObjectRef[Any] | ObjectRefCallback)
    assert_type(tracked.object_ref, ObjectRef[Any])
    assert_type(tracked.retries, int)
    assert_type(tracked.submitted_at, float)
    ready, pending = chia_wait([tracked], num_returns=1, timeout=60)
    assert_type(ready, list[TrackedRef])
    assert_type(pending, list[TrackedRef])
    assert ready == [tracked]
    parameters = inspect.signature(chia_wait).parameters
    assert {name: p.default for name, p in parameters.items() if name != "tracked"} == {
        "num_returns": 1,
        "timeout": None,
        "pending_timeout": None,
        "retry": False,
        "max_retries": 1,
        "require_demand_absent": False,
        "min_free_fraction": 0.5,
        "cancel_on_stuck": False,
        "print_logs": False,
        "progress": False,
    }
    assert [name for name in inspect.signature(TrackedRef).parameters] == [
        "ref",
        "submit_fn",
        "label",
        "submitted_at",
        "retries",
    ]
