"""``chia_wait`` against ``ray.wait`` over 5,000 refs, half completed and half pending.

The pending half are tasks waiting on an argument that never resolves (cheap
to hold, never scheduled). Each round times ``ray.wait`` and ``chia_wait`` on
the same refs (``timeout=0``) for ``num_returns`` 1 and 2,500, plus
``chia_wait`` with stuck detection armed (``pending_timeout`` set; no ref is
old enough to query the state API), back to back, alternating which goes
first. Prints the median wall time of each, the ratio chia/raw of those
medians and the median of the rounds' own ratios (target: <= 1.10).

    python benchmarks/wait.py [--refs 5000] [--rounds 15] [--repeat 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from _rates import HostSteal, paired_ratio  # benchmarks/ is on sys.path when run as a script

from chia.base.chia_wait import TrackedRef, chia_wait


@ray.remote(num_cpus=0)
def never_returns() -> None:
    time.sleep(3600)


@ray.remote(num_cpus=1)  # whole CPUs: a fractional request let Ray start dozens of workers, whose
def echo(value: Any) -> Any:  # start-up and idle exits then ran during the timed waits
    return value


def timed(call: Callable[[], Any], repeat: int) -> float:
    """Best-of-``repeat`` wall time of ``call`` (the noise on a shared machine is one-sided)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    steal = HostSteal()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    ray.init(address=os.environ.get("RAY_ADDRESS", "local"), num_cpus=2, include_dashboard=False)
    half = args.refs // 2
    done = [echo.remote(i) for i in range(half)]
    ray.get(done)
    blocker = never_returns.remote()
    pending = [echo.remote(blocker) for _ in range(args.refs - half)]
    refs = done + pending
    random.Random(0).shuffle(refs)
    tracked = [TrackedRef(ref) for ref in refs]

    cases: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    for num_returns in (1, half):
        cases[f"num_returns={num_returns}"] = (
            functools.partial(ray.wait, refs, num_returns=num_returns, timeout=0),
            functools.partial(chia_wait, tracked, num_returns=num_returns, timeout=0),
        )
    cases[f"num_returns={half}, detection armed"] = (
        functools.partial(ray.wait, refs, num_returns=half, timeout=0),
        functools.partial(chia_wait, tracked, num_returns=half, timeout=0, pending_timeout=3600),
    )
    for raw, chia in cases.values():  # warm up
        raw()
        chia()

    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cases}
    for round_index in range(args.rounds):
        for name, (raw, chia) in cases.items():
            # Both back to back, alternating which goes first: the round's own ratio.
            if round_index % 2:
                results[name][1].append(timed(chia, args.repeat))
                results[name][0].append(timed(raw, args.repeat))
            else:
                results[name][0].append(timed(raw, args.repeat))
                results[name][1].append(timed(chia, args.repeat))

    print(f"wait benchmark: {len(refs)} refs ({half} completed), {args.rounds} rounds x best of {args.repeat}")
    for name, (raw_times, chia_times) in results.items():
        raw_ms, chia_ms = statistics.median(raw_times) * 1e3, statistics.median(chia_times) * 1e3
        paired = paired_ratio(chia_times, raw_times)
        print(
            f"  {name:<36} ray.wait {raw_ms:7.2f} ms  chia_wait {chia_ms:7.2f} ms  ratio {chia_ms / raw_ms:.2f} "
            f"(median of the rounds' ratios {paired:.2f})"
        )
    ray.cancel(blocker, force=True)
    print(f"  {steal.summary()}")
    ray.shutdown()


if __name__ == "__main__":
    main()
