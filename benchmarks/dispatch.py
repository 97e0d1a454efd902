"""Dispatch throughput: ``chia_remote`` + ``get`` against raw ``@ray.remote``.

Runs in one Ray session with whole-CPU no-op tasks: a batch of N tasks
submitted then gathered, and M sequential submit-and-get round trips, for raw
Ray and for chia, alternating over several rounds. The round trips are
taken in turns of M/8 per side, so that both sides' calls are spread over the
same stretch of the round (a sequential rate drifts within seconds on a
shared machine, and whatever the batches left running falls on both sides
alike). Prints the median throughput of each, the ratio of those medians chia/raw (target: both >= 0.90)
and the median of the rounds' own ratios: each round measures both sides
back to back, so that ratio holds when the machine's speed drifts between
rounds (raw Ray's sequential rate moved from 295 to 604 calls/s between two
quiet runs on the project's machine).

    python benchmarks/dispatch.py [--batch 2000] [--sequential 200] [--rounds 7] [--profile] [--tagged]

``--profile`` runs the chia side with the chia-ops profiler collecting
(target for that configuration: >= 0.80). ``--tagged`` gives every call its
own tag (``_chia_tag``, so its Ray task is named ``chia_noop[t<i>]``) and
every raw call the same kind of name (``.options(name="raw_noop[t<i>]")``):
the cost of tags on task names against raw Ray naming its tasks. chia names
at most ``CHIA_TAGGED_TASK_NAMES`` distinct tasks per process (10,000 by
default; a long ``--tagged`` run passes that), so run it with
``CHIA_TAGGED_TASK_NAMES=unlimited`` for every chia call to carry its tag.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from _rates import (  # benchmarks/ is on sys.path when run as a script
    HostSteal,
    batch_rate,
    interleaved_sequential_rates,
    paired_ratio,
)

from chia.base.ChiaFunction import ChiaFunction, get

SEQUENTIAL_CHUNKS = 8
"""Turns per round in which raw and chia take their sequential round trips (``--sequential / 8`` calls each)."""


@ray.remote(num_cpus=1)
def raw_noop() -> None:
    return None


@ChiaFunction(num_cpus=1)
def chia_noop() -> None:
    return None


def main() -> None:
    steal = HostSteal()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="collect a chia-ops profile on the chia side")
    parser.add_argument("--tagged", action="store_true", help="a distinct tag (Ray task name) on every call")
    args = parser.parse_args()

    ray.init(address=os.environ.get("RAY_ADDRESS", "local"), num_cpus=2, include_dashboard=False)
    if args.profile:
        from chia.trace import profiler

        profiler.start_collector()
    raw_submit: Callable[[], Any] = raw_noop.remote
    chia_submit: Callable[[], Any] = chia_noop.chia_remote
    if args.tagged:
        raw_ids, chia_ids = itertools.count(), itertools.count()

        def raw_submit() -> Any:
            return raw_noop.options(name=f"raw_noop[t{next(raw_ids)}]").remote()

        def chia_submit() -> Any:
            return chia_noop.chia_remote(_chia_tag=f"t{next(chia_ids)}")  # type: ignore[call-arg]

    # Warm up: start workers, export both functions.
    ray.get([raw_submit() for _ in range(200)])
    get([chia_submit() for _ in range(200)])

    results: dict[str, list[float]] = {"raw batch": [], "chia batch": [], "raw seq": [], "chia seq": []}
    sides: list[tuple[str, Callable[[], Any], Callable[[Any], Any]]] = [
        ("raw", raw_submit, ray.get),
        ("chia", chia_submit, get),
    ]
    for round_index in range(args.rounds):
        # Alternate who goes first so warm-up and drift do not favour a side.
        for name, submit, fetch in sides[:: 1 if round_index % 2 == 0 else -1]:
            results[f"{name} batch"].append(batch_rate(submit, fetch, args.batch))
        # Round trips: the sides take turns in short chunks, so that both see the same moments.
        rates = interleaved_sequential_rates(
            [(submit, fetch) for _, submit, fetch in sides], args.sequential, SEQUENTIAL_CHUNKS, round_index % 2 == 1
        )
        for (name, _, _), rate in zip(sides, rates, strict=True):
            results[f"{name} seq"].append(rate)
    medians = {name: statistics.median(values) for name, values in results.items()}
    label = ("chia (profiled)" if args.profile else "chia") + (" tagged" if args.tagged else "")
    tagged = ", every call tagged / named" if args.tagged else ""
    print(f"dispatch benchmark: {args.rounds} rounds, batch={args.batch}, sequential={args.sequential}, 2 CPUs{tagged}")
    for name, value in medians.items():
        print(f"  {name:<11} {value:10.0f} tasks/s (median)")
    for kind, side in (("batch:     ", "batch"), ("sequential:", "seq")):
        chia, raw = results[f"chia {side}"], results[f"raw {side}"]
        print(
            f"  ratio {label}/raw {kind} {medians[f'chia {side}'] / medians[f'raw {side}']:.2f} "
            f"(median of the rounds' ratios {paired_ratio(chia, raw):.2f})"
        )
    print(f"  {steal.summary()}")
    ray.shutdown()


if __name__ == "__main__":
    main()
