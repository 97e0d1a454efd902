"""What distinct Ray task names cost a long sweep: named, unnamed, and named without Ray's metrics.

chia names a tagged call's Ray task ``function[tag]``. Ray counts tasks by name
(its ``ray_tasks`` metric) in every process that submits or runs them, keeps a
series for each name it has seen and collects them all every few seconds, so a
sweep of distinct names costs more per call the longer it is. This script runs
raw Ray sweeps of whole-CPU no-op tasks at each size and prints, per call, the
wall time, the driver's CPU time and the CPU time of every process on the
machine (``/proc/stat``; run it with nothing else running):

* ``named``: every task named ``raw_noop[s<i>]``, as chia names tagged calls;
* ``unnamed``: Ray's default name, one for all;
* ``metrics-off``: named, in a Ray session started with
  ``RAY_enable_metrics_collection=0`` (a child process of this script).

    python benchmarks/task_names.py [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from _rates import HostSteal, busy_cpu_seconds  # benchmarks/ is on sys.path when run as a script


@ray.remote(num_cpus=1)
def raw_noop() -> None:
    return None


def sweep(mode: str, size: int) -> None:
    began, driver, machine = time.perf_counter(), time.process_time(), busy_cpu_seconds()
    if mode == "unnamed":
        refs = [raw_noop.remote() for _ in range(size)]
    else:
        refs = [raw_noop.options(name=f"raw_noop[s{index}]").remote() for index in range(size)]
    ray.get(refs)
    wall = time.perf_counter() - began
    driver_us = (time.process_time() - driver) / size * 1e6
    after = busy_cpu_seconds()
    machine_us = float("nan") if machine is None or after is None else (after - machine) / size * 1e6
    print(
        f"  {mode:<11} {size:>7} tasks: {size / wall:6.0f} calls/s; per call {driver_us:5.0f} us of driver CPU, "
        f"{machine_us:5.0f} us of all CPU",
        flush=True,
    )


def run(mode: str, sizes: list[int]) -> None:
    """One Ray session: the mode's sweeps, smallest first (a session pays for every name it has seen)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.get([raw_noop.remote() for _ in range(200)])  # warm up: the workers
    for size in sizes:
        sweep(mode, size)
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated sizes, smallest first")
    parser.add_argument("--mode", choices=["named", "unnamed", "metrics-off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = sorted(int(text) for text in args.sizes.split(","))
    if args.mode is not None:  # a child: one mode in a session of its own
        run(args.mode, sizes)
        return
    steal = HostSteal()
    print(f"task names benchmark: raw Ray sweeps of {sizes} whole-CPU no-op tasks, 2 CPUs", flush=True)
    for mode in ("named", "unnamed", "metrics-off"):
        environment = {**os.environ}
        if mode == "metrics-off":
            environment["RAY_enable_metrics_collection"] = "0"
        command = [sys.executable, __file__, "--sizes", args.sizes, "--mode", mode]
        subprocess.run(command, env=environment, check=True, stderr=subprocess.DEVNULL)
    print(f"  {steal.summary()}")


if __name__ == "__main__":
    main()
