"""What a profiled call pays once its tag no longer fits in the Ray task name.

A process gives Ray at most ``CHIA_TAGGED_TASK_NAMES`` distinct tagged task
names (10,000 by default: Ray keeps a metric series per name). Past that, a
call's tag leaves the name; a call that runs under a call wrapper (the
profiler's) then ships the tag to the worker as one keyword argument, which
Ray binds and serializes on both sides. This script runs profiled sweeps of
distinct tags in fresh Ray sessions (child processes), with every tag in the
name (``unlimited``) and with none (``0``), alternating, and prints each
mode's rate and the ratio, against raw Ray in the same sessions::

    python benchmarks/tag_limit.py [--rounds 2] [--calls 2000] [--sweeps 4]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

MODES = ("unlimited", "0")


def nothing() -> None:
    """The task body of both sides."""


def child(calls: int, sweeps: int) -> None:
    """One session: raw Ray and profiled chia sweeps; prints their median rates as one JSON line."""
    import ray

    from chia.base.ChiaFunction import ChiaFunction, get
    from chia.trace import profiler

    noop = ChiaFunction(num_cpus=1)(nothing)
    raw_noop = ray.remote(num_cpus=1)(nothing)

    def raw_sweep() -> None:
        ray.get([raw_noop.remote() for _ in range(calls)])

    def profiled_sweep(first: int) -> None:
        get([noop.chia_remote(_chia_tag=f"s{first + index}") for index in range(calls)])  # type: ignore[call-arg]

    def rate(sweep: Callable[[], None]) -> float:
        began = time.perf_counter()
        sweep()
        return calls / (time.perf_counter() - began)

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    get([noop.chia_remote(_chia_tag=f"warm{index}") for index in range(300)])  # type: ignore[call-arg]
    ray.get([raw_noop.remote() for _ in range(300)])
    raw, profiled = [], []
    with tempfile.TemporaryDirectory(prefix="chia-tag-limit-") as log_dir:
        profiler.start_collector(log_dir=log_dir)
        for turn in range(sweeps):
            raw.append(rate(raw_sweep))
            profiled.append(rate(functools.partial(profiled_sweep, turn * calls)))
        profiler.stop_collector()
    print(json.dumps({"raw": statistics.median(raw), "profiled": statistics.median(profiled)}), flush=True)
    ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="sessions per mode")
    parser.add_argument("--calls", type=int, default=2000, help="calls per sweep")
    parser.add_argument("--sweeps", type=int, default=4, help="sweeps per session")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.calls, args.sweeps)
        return
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            done = subprocess.run(
                [sys.executable, __file__, "--child", "--calls", str(args.calls), "--sweeps", str(args.sweeps)],
                env={**os.environ, "CHIA_TAGGED_TASK_NAMES": mode, "RAY_ADDRESS": "local"},
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            results[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"tag limit benchmark: {args.rounds} sessions per mode, {args.sweeps} profiled sweeps of {args.calls} calls")
    rates = {}
    for mode in MODES:
        profiled = statistics.median(row["profiled"] for row in results[mode])
        raw = statistics.median(row["raw"] for row in results[mode])
        rates[mode] = profiled
        where = "every tag in the task name" if mode == "unlimited" else "no tag in the task name"
        print(
            f"  CHIA_TAGGED_TASK_NAMES={mode:9} ({where}): profiled {profiled:6.0f} calls/s, "
            f"raw Ray {raw:6.0f}/s, profiled / raw {profiled / raw:.2f}"
        )
    print(f"  past the limit / within it: {rates['0'] / rates['unlimited']:.2f}")


if __name__ == "__main__":
    main()
