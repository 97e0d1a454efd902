"""Randomized chia_cancel stress: 200+ cancels, some racing natural completion, zero orphans."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from ray.exceptions import TaskCancelledError, WorkerCrashedError

from chia.base.ChiaFunction import ChiaFunction, chia_cancel, get
from chia_testing import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("cluster")]

CANCELS = 210
THREADS = 3  # one per CPU of the cluster


@dataclass(frozen=True, slots=True)
class Plan:
    seconds: float
    delay: float
    force: bool
    new_session: bool
    node: str


@ChiaFunction(num_cpus=1)
def busy_tree(tag: str, seconds: float, new_session: bool) -> str:
    script = (
        f"(exec -a {tag}-child sleep {seconds}) & "
        f"bash -c '(exec -a {tag}-grandchild sleep {seconds}) & wait' & "
        f"(setsid bash -c '(exec -a {tag}-daemon sleep {seconds}) &') ; wait"
    )
    subprocess.run(["bash", "-c", script], start_new_session=new_session)
    return "finished"


def test_randomized_cancels_leave_no_orphan(tagged: Any) -> None:
    run_tag = tagged.new_tag("chia-stress")
    rng = random.Random(20261129)
    plans = [
        Plan(
            # A third finish on their own around the time the cancel lands.
            seconds=rng.uniform(0.05, 0.6) if rng.random() < 0.33 else 300.0,
            delay=rng.uniform(0.0, 0.8),
            force=rng.random() < 0.1,
            new_session=rng.random() < 0.5,
            node=rng.choice(["head", "node_b"]),
        )
        for _ in range(CANCELS)
    ]
    outcomes: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(indices: range) -> None:
        try:
            for index in indices:
                plan = plans[index]
                ref = busy_tree.options(resources={plan.node: 0.01}).chia_remote(
                    f"{run_tag}-{index}", plan.seconds, plan.new_session
                )
                time.sleep(plan.delay)  # the race under test, not synchronization
                chia_cancel(ref, force=plan.force, grace=2.0)
                try:
                    outcome = get(ref)
                except (TaskCancelledError, WorkerCrashedError) as error:
                    outcome = type(error).__name__
                with lock:
                    outcomes[outcome] += 1
        except BaseException as error:  # surfaced below, with the thread's traceback
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(range(i, CANCELS, THREADS),)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    assert sum(outcomes.values()) == CANCELS
    # Short sleepers of tasks that finished first may still be exiting on their own; long ones must be dead.
    try:
        wait_until(lambda: tagged.pids(run_tag) == [], timeout=15, message="zero orphans")
    except AssertionError:
        raise AssertionError(f"orphans (outcomes {dict(outcomes)}): {describe(tagged.pids(run_tag))}") from None


def describe(pids: list[int]) -> list[str]:
    """argv[0], parent, group, session and chia marker of each process (for the failure message)."""
    lines = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv0 = handle.read().split(b"\0", 1)[0].decode()
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{pid}/environ", "rb") as handle:
                marker = [e.decode() for e in handle.read().split(b"\0") if e.startswith(b"CHIA_TASK_MARKER=")]
        except OSError:
            continue
        lines.append(f"{pid} {argv0} ppid={int(fields[1])} pgid={int(fields[2])} sid={int(fields[3])} {marker}")
    return lines
