"""Cache benchmarks: read hits against plain ``ray.get``, warm start, write throughput.

Runs in one local Ray session (2 CPUs) and prints medians over several
rounds. A ratio against Ray is printed twice: of the two medians, and as the
median of the rounds' own ratios (each round measures both sides back to
back, alternating which goes first, so a drift of the machine's speed between
rounds cancels out):

* **read hit** of a 1 KB value (a dict of 50 metrics, what loops cache, and
  1 KB of ``bytes``), a 1 MB and a 32 MB value (``bytes``), and of the 1 KB
  dict and a 1 MB value stored pickled, as write-through from a worker stores
  them: ``ray.get(cache.read.remote(tag))`` against a plain ``ray.get`` of the
  same value already in the object store (targets: <= 1.1x, 1.1x, 1.2x).
  Repeat hits from the driver (on the cache's node) are served from its memo
  (the actor's object-store copy, or the driver's own copy of a small or
  pickled entry); the benchmark also prints a hit that goes
  through the actor (an entry's first hit, or a reader on another node), and
  a plain ``ray.get`` of a ``(True, value)`` tuple: Ray serves bare ``bytes``
  by a raw fast path that any other object, such as ``read``'s reply, misses.
  For reference it also prints a plain actor returning the same bytes from
  its memory, and a no-op actor round trip: the floor every actor-served
  read pays, which dominates at 1 MB.
* **warm start**: what a directory of 10,000 and of 100,000 entries adds to
  a cache's start over an empty directory (target: <= +0.05 s): the time the
  actor spent opening the directory (``stats()["open_ms"]``) plus the first
  read after ``start_cache`` returned, median of the rounds' differences
  (full minus empty). The whole start (``start_cache`` plus a first read) is
  printed too; it is dominated by starting the actor's process, which no
  directory changes and which varies by tenths of a second between starts,
  so rounds alternate which side starts first. The actor-side time to build
  the whole index in the background is printed as well. The directories are
  filled in this process through the store itself (Ray's call rate would
  make 100,000 writes take minutes).
* **writes/s** of 256-byte values, each one record appended to the log
  (target: >= 0.85 of a plain actor that takes the same calls and does
  nothing: Ray's floor).

    python benchmarks/cache.py [--rounds 7] [--warm-entries 10000,100000] [--writes 4000]
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from _rates import HostSteal, paired_ratio  # benchmarks/ is on sys.path when run as a script

from chia.base._bypass_cache.cache_store import EntryStore
from chia.base.cache import start_cache, stop_cache


class Holder:
    """A plain actor returning a value it keeps in memory."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value

    def ping(self) -> None:
        return None


def median_seconds(action: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def read_hit(cache: Any, label: str, value: Any, repeat: int, rounds: int, pickled: bool) -> None:
    if pickled:  # what write-through from a worker (or a reload from disk) leaves
        ray.get(cache.write_pickled.remote(label, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)))
    else:
        ray.get(cache.write.remote(label, value))
    plain_ref = ray.put(value)
    tuple_ref = ray.put((True, value))  # what read returns, as a plain object: Ray's pickled path
    holder: Any = ray.remote(num_cpus=0)(Holder).remote(value)
    assert ray.get(cache.read.remote(label)) == (True, value)
    assert ray.get(holder.get.remote()) == value
    plain: list[float] = []
    hit: list[float] = []
    as_tuple, through, actor, trip = [], [], [], []
    compared: list[tuple[list[float], Callable[[], Any]]] = [
        (plain, lambda: ray.get(plain_ref)),
        (hit, lambda: ray.get(cache.read.remote(label))),
    ]
    for round_index in range(rounds):
        # The hit and the plain ray.get back to back, alternating which goes first: the round's own ratio.
        for samples, action in compared if round_index % 2 == 0 else compared[::-1]:
            samples.append(median_seconds(action, repeat))
        as_tuple.append(median_seconds(lambda: ray.get(tuple_ref), repeat))
        through.append(median_seconds(lambda: ray.get(cache.read.options().remote(label)), repeat))
        actor.append(median_seconds(lambda: ray.get(holder.get.remote()), repeat))
        trip.append(median_seconds(lambda: ray.get(holder.ping.remote()), repeat))
    p, h, a = statistics.median(plain), statistics.median(hit), statistics.median(actor)
    paired = paired_ratio(hit, plain)
    print(
        f"  read hit {label:>18}: cache {h * 1e3:7.2f} ms   plain ray.get {p * 1e3:7.2f} ms   ratio {h / p:.2f} "
        f"(median of the rounds' ratios {paired:.2f})"
    )
    t, u = statistics.median(through), statistics.median(as_tuple)
    print(f"  {'':14} plain ray.get of (True, value) {u * 1e3:7.2f} ms   cache/that {h / u:.2f}")
    print(f"  {'':14} hit through the actor (first hit, other node) {t * 1e3:7.2f} ms   ratio {t / p:.2f}")
    print(f"  {'':14} plain actor returning the bytes {a * 1e3:7.2f} ms   cache/actor {h / a:.2f}")
    print(f"  {'':14} any actor round trip (no-op method) {statistics.median(trip) * 1e3:7.2f} ms")
    ray.kill(holder)


def read_hits(rounds: int, directory: str) -> None:
    namespace = f"bench-read-{uuid.uuid4().hex[:8]}"
    cache: Any = start_cache(1, directory, units="GB", namespace=namespace)
    metrics = {f"metric_{index:02d}": index * 1.5 for index in range(50)}  # 1,066 bytes pickled
    for label, value, repeat, pickled in (
        ("1 KB dict", metrics, 2000, False),
        ("1 KB dict, pickled", metrics, 2000, True),
        ("1 KB bytes", os.urandom(1 << 10), 2000, False),
        ("1 MB", os.urandom(1 << 20), 400, False),
        ("1 MB, pickled", os.urandom(1 << 20), 400, True),
        ("32 MB", os.urandom(32 << 20), 10, False),
    ):
        read_hit(cache, label, value, repeat, rounds, pickled)
    stop_cache(namespace)


def warm_start(rounds: int, entries: int, root: str) -> None:
    template = os.path.join(root, f"template-{entries}")
    store = EntryStore(template, 1 << 30)
    value = pickle.dumps(b"v" * 256)  # entries hold pickles, as the actor stores them
    for index in range(entries):
        store.put(f"entry-{index}", value)
    store.close()

    def start_and_read(directory: str) -> tuple[float, float, int]:
        """(whole start: start_cache + first read, the directory's part: opening + first read, index build ms)."""
        space = f"bench-warm-{uuid.uuid4().hex[:8]}"
        began = time.perf_counter()
        handle: Any = start_cache(1, directory, units="GB", namespace=space)
        started = time.perf_counter()
        ray.get(handle.read.remote("entry-0"))
        answered = time.perf_counter()
        stats = ray.get(handle.stats.remote())  # waits for the index
        stop_cache(space)
        return answered - began, stats["open_ms"] / 1e3 + (answered - started), stats["warm_start_ms"]

    full: list[tuple[float, float, int]] = []
    empty: list[tuple[float, float, int]] = []
    for round_index in range(rounds):
        # Fresh directories each round: a directory is locked until its killed actor's process is gone.
        empty_dir = os.path.join(root, f"empty-{entries}-{round_index}")
        full_dir = os.path.join(root, f"full-{entries}-{round_index}")
        os.makedirs(empty_dir, mode=0o700)
        shutil.copytree(template, full_dir, ignore=shutil.ignore_patterns("lock"))
        # Alternate which side starts first: a start right after the other side's stop_cache pays for the
        # killed actor's process going away meanwhile.
        if round_index % 2:
            empty.append(start_and_read(empty_dir))
        full.append(start_and_read(full_dir))
        if not round_index % 2:
            empty.append(start_and_read(empty_dir))

    def median_of(rows: list[tuple[float, float, int]], column: int) -> float:
        return statistics.median(row[column] for row in rows)

    def median_difference(column: int) -> float:
        return statistics.median(whole[column] - bare[column] for whole, bare in zip(full, empty, strict=True))

    print(
        f"  warm start over {entries} entries: opening the directory + first read {median_of(full, 1) * 1e3:.1f} ms, "
        f"empty directory {median_of(empty, 1) * 1e3:.1f} ms, extra {median_difference(1):+.3f} s"
    )
    print(
        f"  {'':14} whole start (start_cache + first read) {median_of(full, 0):.3f} s, empty directory "
        f"{median_of(empty, 0):.3f} s, median of the rounds' differences {median_difference(0):+.3f} s "
        "(each side's actor process start varies by tenths of a second)"
    )
    print(f"  {'':14} whole index built in the background in {median_of(full, 2):.0f} ms (actor side)")

    def open_and_read(directory: str) -> float:
        began = time.perf_counter()
        store = EntryStore(directory, 1 << 30, background=True)
        store.get("entry-0")
        elapsed = time.perf_counter() - began
        store.tags()  # the index, built meanwhile
        store.close()
        return elapsed

    # The same without the actor's process start, whose noise the figure above carries: the store alone.
    opened = [open_and_read(os.path.join(root, f"full-{entries}-{index}")) for index in range(rounds)]
    bare = [open_and_read(os.path.join(root, f"empty-{entries}-{index}")) for index in range(rounds)]
    print(
        f"  {'':14} the store alone (no Ray): open + first read {statistics.median(opened) * 1e3:.1f} ms, "
        f"empty directory {statistics.median(bare) * 1e3:.1f} ms, "
        f"extra {(statistics.median(opened) - statistics.median(bare)) * 1e3:+.1f} ms"
    )


class Sink:
    """A plain actor whose write does nothing: Ray's floor for the same call."""

    def write(self, tag: str, value: bytes) -> None:
        return None


def write_rate(rounds: int, writes: int, directory: str) -> None:
    namespace = f"bench-write-{uuid.uuid4().hex[:8]}"
    cache: Any = start_cache(1, directory, units="GB", namespace=namespace)
    sink: Any = ray.remote(num_cpus=0)(Sink).remote()
    value = os.urandom(256)
    ray.get([cache.write.remote(f"warmup-{index}", value) for index in range(500)])
    ray.get([sink.write.remote(f"warmup-{index}", value) for index in range(500)])
    rates: list[float] = []
    floor: list[float] = []
    sides: list[tuple[list[float], Any]] = [(rates, cache), (floor, sink)]
    for round_index in range(rounds):
        # Both sides back to back, alternating which goes first: the round's own ratio.
        for samples, actor in sides if round_index % 2 == 0 else sides[::-1]:
            began = time.perf_counter()
            ray.get([actor.write.remote(f"r{round_index}-{index}", value) for index in range(writes)])
            samples.append(writes / (time.perf_counter() - began))
    rate, ceiling = statistics.median(rates), statistics.median(floor)
    paired = paired_ratio(rates, floor)
    print(f"  writes of 256-byte values: {rate:8.0f} /s (median of {rounds}), each a record appended to the log")
    print(
        f"  {'':14} a plain Ray actor taking the same calls and doing nothing: {ceiling:8.0f} /s ({rate / ceiling:.2f}; "
        f"median of the rounds' ratios {paired:.2f})"
    )
    ray.kill(sink)
    stop_cache(namespace)


def main() -> None:
    steal = HostSteal()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warm-entries", default="10000,100000", help="comma-separated directory sizes")
    parser.add_argument("--writes", type=int, default=4_000)
    parser.add_argument("--only", choices=("read", "warm", "write"), default=None)
    args = parser.parse_args()
    ray.init(address=os.environ.get("RAY_ADDRESS", "local"), num_cpus=2, include_dashboard=False)
    print(f"cache benchmark: {args.rounds} rounds, 2 CPUs")
    with tempfile.TemporaryDirectory(prefix="chia-cache-bench-") as root:
        if args.only in (None, "read"):
            read_hits(args.rounds, os.path.join(root, "read"))
        if args.only in (None, "warm"):
            for entries in (int(size) for size in args.warm_entries.split(",")):
                warm_start(args.rounds, entries, root)
        if args.only in (None, "write"):
            write_rate(args.rounds, args.writes, os.path.join(root, "write"))
    print(f"  {steal.summary()}")
    ray.shutdown()


if __name__ == "__main__":
    main()
