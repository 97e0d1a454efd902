"""``chia_cancel`` of a task running a 3-level process tree: time until every process is gone.

Each run starts a task whose subprocess tree is three levels deep (task ->
bash -> bash -> sleep, plus a setsid daemon), waits until the tree is up and
reported, then measures from the ``chia_cancel`` call until no process of
the tree is left. Two trees: one whose processes exit on SIGTERM, one that
ignores SIGTERM (killed by SIGKILL once the grace period is over). Prints
median and max over the runs (target: under 1 s beyond the grace period),
and what raw ``ray.cancel(force=True)`` of the same task as a plain Ray task
leaves behind.

    python benchmarks/cancel.py [--runs 50] [--grace 2.0]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import time
import uuid

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray

from chia.base._dispatch.registry import get_registry
from chia.base.ChiaFunction import ChiaFunction, chia_cancel
from chia_testing import tagged_pids, wait_until

LEVELS = (
    "{trap}(exec -a {tag}-daemon-l1 sleep 600) & "
    "(setsid bash -c '{trap}(exec -a {tag}-setsid sleep 600) &') ; "
    "bash -c '{trap}bash -c \"{trap}exec -a {tag}-l3 sleep 600\" & wait' & wait"
)


def tree_body(script: str) -> str:
    subprocess.run(["bash", "-c", script], start_new_session=True)
    return "finished"


run_tree = ChiaFunction(num_cpus=1)(tree_body)
raw_run_tree = ray.remote(num_cpus=1)(tree_body)  # untracked: what plain Ray does with the same task


POLL = 0.005  # seconds between two checks: the resolution of the timings


def start(ignore_sigterm: bool) -> tuple[ray.ObjectRef[str], str]:
    tag = f"chia-bench-{uuid.uuid4().hex[:8]}"
    trap = "trap '' TERM; " if ignore_sigterm else ""
    ref = run_tree.chia_remote(LEVELS.format(tag=tag, trap=trap))
    wait_until(lambda: len(tagged_pids(tag)) == 3, timeout=120, interval=POLL, message=f"the process tree {tag}")
    registry = get_registry()
    task_id = ref.task_id().hex()
    wait_until(lambda: task_id in ray.get(registry.tracked.remote()), interval=POLL, message="the spawn's report")
    return ref, tag


def time_chia_cancel(ignore_sigterm: bool, grace: float) -> float:
    ref, tag = start(ignore_sigterm)
    started = time.perf_counter()
    chia_cancel(ref, grace=grace)
    wait_until(lambda: not tagged_pids(tag), interval=POLL, message=f"chia_cancel to end every process of {tag}")
    return time.perf_counter() - started


def raw_cancel_leftovers() -> tuple[int, int]:
    tag = f"chia-bench-{uuid.uuid4().hex[:8]}"
    ref = raw_run_tree.remote(LEVELS.format(tag=tag, trap=""))
    wait_until(lambda: len(tagged_pids(tag)) == 3, timeout=120, interval=POLL, message=f"the process tree {tag}")
    before = len(tagged_pids(tag))
    ray.cancel(ref, force=True)
    with contextlib.suppress(AssertionError):  # what is left after 5 s is the result
        wait_until(lambda: not tagged_pids(tag), timeout=5.0, interval=POLL)
    left = tagged_pids(tag)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return len(left), before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--grace", type=float, default=2.0)
    args = parser.parse_args()

    ray.init(address=os.environ.get("RAY_ADDRESS", "local"), num_cpus=2, include_dashboard=False)
    time_chia_cancel(False, args.grace)  # warm up: registry, reaper, workers
    print(f"cancel benchmark: {args.runs} runs per case, grace {args.grace} s, 2 CPUs")
    for label, ignore in (("exits on SIGTERM", False), ("ignores SIGTERM", True)):
        times = [time_chia_cancel(ignore, args.grace) for _ in range(args.runs)]
        median, worst = statistics.median(times), max(times)
        beyond = "" if not ignore else f"  (max {worst - args.grace:.3f} s beyond the grace period)"
        print(f"  chia_cancel, tree {label:<17} median {median:.3f} s  max {worst:.3f} s{beyond}")
    left, total = raw_cancel_leftovers()
    print(f"  raw ray.cancel(force=True): {left} of {total} tree processes still alive 5 s later")
    ray.shutdown()


if __name__ == "__main__":
    main()
