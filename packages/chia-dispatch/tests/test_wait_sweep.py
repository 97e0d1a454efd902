"""A Sweep shows the progress of a sweep across chia_wait calls: plain lines off a terminal, tqdm's line on one."""

from __future__ import annotations

import io
from typing import Any

import pytest
import ray

from chia.base import dispatch_hooks
from chia.base.chia_wait import Sweep, SweepStatus, TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, get
from chia.base.dispatch_hooks import DispatchCall

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=0)
def square(x: int) -> int:
    return x * x


def replayed_square(x: int) -> int:
    return -x * x


def replay_odd(call: DispatchCall) -> ray.ObjectRef[Any] | None:
    """Replays odd x; x == 3 as if from a cache (what chia-bypass-cache's cache replay says)."""
    (x,) = call.args
    if x % 2 == 0:
        return None
    if x == 3:
        call.outcome = dispatch_hooks.CACHE_HIT
    return call.submit(replayed_square, x)


def finished(count: int) -> list[TrackedRef]:
    """``count`` squares (odd ones replayed), all finished: the counts a wait sees do not depend on timing."""
    remove = dispatch_hooks.add_dispatch_hook(replay_odd)
    try:
        tracked = [TrackedRef(square.chia_remote(x)) for x in range(count)]
    finally:
        remove()
    assert get([tr.object_ref for tr in tracked]) == [0, -1, 4, -9][:count]
    return tracked


def test_plain_lines_every_interval_with_the_counts_of_the_whole_sweep() -> None:
    now = [100.0]
    out = io.StringIO()
    with Sweep(total=4, file=out, terminal=False, interval=5, clock=lambda: now[0]) as sweep:
        tracked = finished(4)
        assert chia_wait(tracked[:2], num_returns=2, progress=sweep) == (tracked[:2], [])
        assert out.getvalue() == ""  # less than an interval since the sweep started
        now[0] = 106.0
        _, pending = chia_wait(tracked[2:], num_returns=1, progress=sweep)
        now[0] = 107.0
        chia_wait(pending, num_returns=1, progress=sweep)  # within the interval of the last line: none
        assert sweep.status() == SweepStatus(
            done=4, total=4, running=0, stuck=0, resubmitted=0, cache_hits=1, replays=1, elapsed=7.0
        )
        now[0] = 112.0
    assert out.getvalue().splitlines() == [
        "sweep: 3/4 done, 1 running, 0 stuck, 0 resubmitted, 1 cache hit, 1 replay, elapsed 0:00:06, ETA 0:00:02",
        "sweep: 4/4 done, 0 running, 0 stuck, 0 resubmitted, 1 cache hit, 1 replay, elapsed 0:00:12, ETA 0:00:00",
    ]
    remove = dispatch_hooks.add_dispatch_hook(replay_odd)
    try:
        assert get(square.chia_remote(5)) == -25  # replayed after the sweep: not counted
    finally:
        remove()
    assert sweep.status().replays == 1


def test_without_a_total_the_line_counts_done_and_has_no_eta() -> None:
    out = io.StringIO()
    with Sweep(file=out, terminal=False, description="configs") as sweep:
        chia_wait([TrackedRef(square.chia_remote(2))], progress=sweep)
    assert out.getvalue().startswith("configs: 1 done, 0 running, 0 stuck, 0 resubmitted, 0 cache hits, 0 replays,")
    assert out.getvalue().rstrip().endswith("ETA ?")


def test_a_terminal_gets_one_live_line_drawn_by_tqdm() -> None:
    out = io.StringIO()
    with Sweep(total=3, file=out, terminal=True) as sweep:
        tracked = finished(3)
        for tr in tracked:
            chia_wait([tr], progress=sweep)
    drawn = out.getvalue()
    assert "\n" not in drawn.rstrip("\n")  # one line, redrawn in place
    last = drawn.split("\r")[-1]
    assert last.startswith("sweep: 100%") and "3/3 [" in last  # tqdm's bar, elapsed<ETA and rate
    assert last.rstrip().endswith("0 running, 0 stuck, 0 resubmitted, 0 cache hits, 1 replay]")


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ValueError, match="Sweep total must be None or an int >= 0, got -1"):
        Sweep(total=-1)
    with pytest.raises(ValueError, match="Sweep interval must be > 0 seconds, got 0"):
        Sweep(interval=0)
