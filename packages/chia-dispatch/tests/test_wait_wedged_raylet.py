"""Live fault: a raylet wedged by SIGSTOP (TCP still accepts) strands a task; chia_wait recovers it."""

from __future__ import annotations

import functools
import os
import signal
import time
from typing import Any

import pytest
import ray
from ray._private import ray_constants

from chia.base._dispatch import stuck
from chia.base.chia_wait import TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, get

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("cluster")]

PENDING_TIMEOUT = 8.0


@ChiaFunction(num_cpus=1)
def where(value: int) -> tuple[int, str]:
    return value, ray.get_runtime_context().get_node_id()


def test_a_task_stranded_on_a_wedged_raylet_is_detected_and_resubmitted(cluster: Any) -> None:
    lan_id = cluster.node_ids["node_b"]
    lan = next(node for node in cluster.cluster.list_all_nodes() if node.node_id == lan_id)
    raylet = lan.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process
    stuck._querier = None  # a fresh querier on the real state API
    pin_to_head = where.options(resources={"head": 0.01})
    os.kill(raylet.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        tracked = TrackedRef(
            where.options(resources={"lan": 0.01}).chia_remote(7),
            functools.partial(pin_to_head.chia_remote, 7),  # the resubmission avoids the wedged node
            label="on the wedged node",
        )
        ready, pending = chia_wait([tracked], timeout=120, pending_timeout=PENDING_TIMEOUT, retry=True)
        detected_after = tracked.submitted_at - started  # submitted_at moves to the resubmission
        assert tracked.retries == 1
        assert detected_after <= 2 * PENDING_TIMEOUT, f"detected after {detected_after:.1f} s"
        assert ready == [tracked] and pending == []
        assert get(tracked.ref) == (7, cluster.node_ids["head"])
    finally:
        os.kill(raylet.pid, signal.SIGCONT)
    # Once resumed, the node serves tasks again.
    assert get(where.options(resources={"lan": 0.01}).chia_remote(8), timeout=120) == (8, lan_id)
