"""KV store read latency: ``query_kv`` against a raw Ray actor method call returning the same value.

Both actors live on the driver's node with ``num_cpus=0``; the raw one is a
plain ``@ray.remote`` class whose ``get`` returns a dict entry. Each round times
N sequential reads of each (alternating which goes first), one call at a time;
the script prints, per side, the median over rounds of the per-round p50 and
p99 latency, and the ratios query_kv/raw (target: p50 ratio <= 1.1).

    python benchmarks/kv.py [--calls 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from chia.base.chia_kv_store import get_or_create_kv_store, query_kv

KEY = "num_parallel"
VALUE = 4


class RawKnobs:
    def __init__(self) -> None:
        self._values = {KEY: VALUE}

    def get(self, key: str) -> Any:
        return self._values[key]


def latencies_us(read: Callable[[], Any], calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        value = read()
        samples.append((time.perf_counter_ns() - start) / 1000)
        if value != VALUE:
            raise AssertionError(f"read returned {value!r}, expected {VALUE!r}")
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    ray.init(address=os.environ.get("RAY_ADDRESS", "local"), num_cpus=2, include_dashboard=False)
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    raw: Any = ray.remote(num_cpus=0)(RawKnobs).options(scheduling_strategy=here).remote()
    store: Any = get_or_create_kv_store("bench_knobs", "chia_benchmarks", num_parallel=VALUE)
    sides: dict[str, Callable[[], Any]] = {
        "raw actor call": lambda: ray.get(raw.get.remote(KEY)),
        "query_kv": lambda: query_kv(store, KEY),
    }
    try:
        for read in sides.values():  # warm up: worker processes, method exports
            latencies_us(read, 300)
        p50: dict[str, list[float]] = {name: [] for name in sides}
        p99: dict[str, list[float]] = {name: [] for name in sides}
        for round_index in range(args.rounds):
            order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
            for name in order:
                samples = latencies_us(sides[name], args.calls)
                p50[name].append(percentile(samples, 0.50))
                p99[name].append(percentile(samples, 0.99))
    finally:
        ray.kill(store)
        ray.kill(raw)
        ray.shutdown()

    print(f"{args.rounds} rounds x {args.calls} sequential reads; medians over rounds")
    print(f"{'':16}{'p50 (us)':>10}{'p99 (us)':>10}")
    for name in sides:
        print(f"{name:16}{statistics.median(p50[name]):10.1f}{statistics.median(p99[name]):10.1f}")
    ratio_p50 = statistics.median(p50["query_kv"]) / statistics.median(p50["raw actor call"])
    ratio_p99 = statistics.median(p99["query_kv"]) / statistics.median(p99["raw actor call"])
    print(f"query_kv / raw: p50 {ratio_p50:.3f} (target <= 1.1), p99 {ratio_p99:.3f}")


if __name__ == "__main__":
    main()
