"""Bypass replay throughput: bypassed ``chia_remote`` calls against raw Ray no-op tasks.

Runs in one Ray session with whole-CPU tasks: a batch of N calls submitted then
gathered, and M sequential submit-and-get round trips. The raw side is a
``@ray.remote`` no-op; the chia side is a ``@ChiaFunction`` bypassed by a
trivial provider (which runs on the worker, in a task with the function's own
options). Measurements interleave in a shuffled order; medians are printed
with the ratio bypassed/raw (target: both >= 0.90). Tagged calls
(``.options(_chia_tag=...)``) are measured too: their tag travels with each
call, which costs what one more Ray argument costs. A last line repeats the
batch after many calls to show the rate does not decay as calls accumulate.

    python benchmarks/bypass_replay.py [--batch 2000] [--sequential 200] [--rounds 7]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import tempfile
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from _rates import batch_rate, sequential_rate  # benchmarks/ is on sys.path when run as a script

from chia.base.bypass import Bypass
from chia.base.ChiaFunction import ChiaFunction, get


@ray.remote(num_cpus=1)
def raw_noop() -> None:
    return None


@ChiaFunction(num_cpus=1)
def simulated_step() -> str:
    raise AssertionError("the bypass must replace this function")


def trivial_provider(tag: str | None, data_path: str | None) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    ray.init(address=os.environ.get("RAY_ADDRESS", "local"), num_cpus=2, include_dashboard=False)
    with tempfile.TemporaryDirectory(prefix="chia-bypass-bench-") as directory:
        config = os.path.join(directory, "bypass.yaml")
        with open(config, "w", encoding="utf-8") as stream:
            stream.write("bypass:\n  simulated_step: true\n")
        bypass = Bypass(config)
        bypass.set_provider("simulated_step", trivial_provider)
        raw_submit, chia_submit = raw_noop.remote, simulated_step.chia_remote
        ray.get([raw_submit() for _ in range(200)])  # warm up workers and exports
        get([chia_submit() for _ in range(200)])

        tags = itertools.count()

        def tagged_submit() -> Any:
            return simulated_step.options(_chia_tag=f"iter{next(tags)}").chia_remote()

        tagged_submit()
        results: dict[str, list[float]] = {
            "raw batch": [],
            "bypass batch": [],
            "tagged batch": [],
            "raw seq": [],
            "bypass seq": [],
        }
        measures: dict[str, Callable[[], float]] = {
            "raw batch": lambda: batch_rate(raw_submit, ray.get, args.batch),
            "bypass batch": lambda: batch_rate(chia_submit, get, args.batch),
            "tagged batch": lambda: batch_rate(tagged_submit, get, args.batch),
            "raw seq": lambda: sequential_rate(raw_submit, ray.get, args.sequential),
            "bypass seq": lambda: sequential_rate(chia_submit, get, args.sequential),
        }
        order = random.Random(0)
        for _ in range(args.rounds):
            names = list(measures)
            order.shuffle(names)  # a shared machine's load drifts: no side always goes first
            for name in names:
                results[name].append(measures[name]())
        medians = {name: statistics.median(values) for name, values in results.items()}
        late = [
            batch_rate(chia_submit, get, args.batch) / batch_rate(raw_submit, ray.get, args.batch) for _ in range(3)
        ]
    print(f"bypass replay benchmark: {args.rounds} rounds, batch={args.batch}, sequential={args.sequential}, 2 CPUs")
    for name, value in medians.items():
        print(f"  {name:<13} {value:10.0f} calls/s (median)")
    print(f"  ratio bypass/raw batch:      {medians['bypass batch'] / medians['raw batch']:.2f}")
    print(f"  ratio bypass/raw sequential: {medians['bypass seq'] / medians['raw seq']:.2f}")
    print(
        f"  ratio tagged bypass/raw batch (each call ships its tag): {medians['tagged batch'] / medians['raw batch']:.2f}"
    )
    print(
        f"  batch ratio after {args.rounds * (3 * args.batch + 2 * args.sequential)} calls: {statistics.median(late):.2f}"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
