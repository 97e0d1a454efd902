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
import os
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray

from chia.base._dispatch.registry import get_registry
from chia.base.ChiaFunction import ChiaFunction, chia_cancel

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


def tree_pids(tag: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv0 = handle.read().split(b"\0", 1)[0]
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if argv0.startswith(tag.encode()) and state != b"Z":
            pids.append(int(name))
    return pids


def poll(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def start(ignore_sigterm: bool) -> tuple[ray.ObjectRef[str], str]:
    tag = f"chia-bench-{uuid.uuid4().hex[:8]}"
    trap = "trap '' TERM; " if ignore_sigterm else ""
    ref = run_tree.chia_remote(LEVELS.format(tag=tag, trap=trap))
    if not poll(lambda: len(tree_pids(tag)) == 3, 120):
        raise RuntimeError(f"the process tree did not start: {ray.wait([ref], timeout=0)}")
    registry = get_registry()
    task_id = ref.task_id().hex()
    if not poll(lambda: task_id in ray.get(registry.tracked.remote()), 60):
        raise RuntimeError("the spawn was not reported")
    return ref, tag


def time_chia_cancel(ignore_sigterm: bool, grace: float) -> float:
    ref, tag = start(ignore_sigterm)
    started = time.perf_counter()
    chia_cancel(ref, grace=grace)
    if not poll(lambda: not tree_pids(tag), 60):
        raise RuntimeError(f"processes of {tag} survived chia_cancel")
    return time.perf_counter() - started


def raw_cancel_leftovers() -> tuple[int, int]:
    tag = f"chia-bench-{uuid.uuid4().hex[:8]}"
    ref = raw_run_tree.remote(LEVELS.format(tag=tag, trap=""))
    if not poll(lambda: len(tree_pids(tag)) == 3, 120):
        raise RuntimeError("the process tree did not start")
    before = len(tree_pids(tag))
    ray.cancel(ref, force=True)
    poll(lambda: not tree_pids(tag), 5.0)
    left = tree_pids(tag)
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
