"""How chia's costs grow with the work: one table, every row measured at 1,000 / 10,000 / 100,000.

One local Ray session (2 CPUs, whole-CPU tasks). For each size N:

* **dispatch, profiling off / on**: a sweep of N tagged calls (``chia_remote``
  of a whole-CPU no-op, a distinct ``_chia_tag`` each) submitted, then
  gathered; calls per second, with and without the chia-ops collector, next to
  the same sweep in raw Ray, once with every task named as a tagged call is
  (``function[tag]``) and once unnamed, which tells Ray's own growth from
  chia's. Ray keeps a metric series per task name in every process that
  submits or runs the task, and collects them all every few seconds, so a
  sweep of distinctly named tasks costs more per call the longer it is;
  chia names the first 10,000 distinct tags of a process so
  (``CHIA_TAGGED_TASK_NAMES``) and keeps later tags out of task names. The
  same rows are measured again in a second Ray session started with
  ``RAY_enable_metrics_collection=0`` (a child process of this script).
  Past that limit a profiled call ships its tag to the worker with the call,
  a constant cost per call (``benchmarks/tag_limit.py``): the sweeps above
  reuse the tags ``s0``, ``s1``, ... so 90 % of the 100,000 sweep is past
  it and the 1,000 and 10,000 sweeps are not. The profiled rows are
  therefore shown for information, and judged like for like: **dispatch
  profiled, tags past the name limit** sweeps fresh tags at every size once
  the process has given Ray all its tagged names;
  Each chia sweep also prints the CPU each kind of process spent per call
  (this driver, Ray's task workers, the profile collector, the GCS...,
  read from /proc);
* **profile on disk** and **load_profile**: the profiled sweep's log, bytes
  per call and the seconds ``load_profile`` takes to read it (the median of
  three loads);
* **chia_wait** over N refs (half finished, half pending, stuck detection
  armed, ``timeout=0``), next to ``ray.wait`` over the same refs, and their
  ratio: what chia adds to Ray's own growth (flat when it adds nothing that
  grows). Each call is timed with the CPU's caches cold (a buffer of four
  times the last-level cache written just before), as in a loop that does
  its work between waits; the same calls repeated back to back, caches warm,
  are shown for information and not judged: the refs of 10,000 calls (a few
  MB that Ray's wait touches) stay in a 32 MiB L3 cache from one call to the
  next, 100,000 calls' do not, so the per-ref cost of both waits rises with
  the size there;
* **cache writes** of N entries into an empty store, without Ray, one put
  after another (the median of three fresh stores);
* **cache warm start** over N entries: the cache actor's background index
  load (the store's ``warm_start_seconds``, unrounded; the median of five
  starts), the same index built by the store alone in
  a fresh process (no actor, no calls meanwhile: the median of five), and
  ``start_cache`` + a first read, minus the same over an empty directory;
  the actor's resident memory over an empty-directory actor's;
* **query_kv** p50 under a store of N keys;
* **chia status** (``chia status --json``, a subprocess) while N ``chia_remote``
  calls are pending in the cluster.

Each row ends with its growth between the two largest sizes: the exponent k of
cost ~ N^k (1 = linear), and says "linear or better" (k <= 1.15, noise
allowed) or "WORSE than linear". A cost that does not grow (k near 0, or
too small to measure) is "flat". Prints a Markdown table for
benchmarks/README.md. Took 535-853 s on this 2-core machine with nothing else
running (the budget is 15 minutes).

    python benchmarks/scale.py [--sizes 1000,10000,100000]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import math
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray

from chia.base._bypass_cache.cache_store import LOCK_NAME, EntryStore
from chia.base._dispatch import tags
from chia.base.cache import start_cache, stop_cache
from chia.base.chia_kv_store import get_or_create_kv_store, query_kv
from chia.base.chia_wait import TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, get
from chia.trace import export, profiler

CHIA = str(Path(sys.executable).with_name("chia"))
LINEAR_LIMIT = 1.15
"""Growth exponents up to this count as linear: two runs of the same size differ by ~10 % here."""


@ChiaFunction(num_cpus=1)
def noop() -> None:
    return None


@ray.remote(num_cpus=1)
def raw_noop() -> None:
    return None


@ray.remote(num_cpus=0)
def never_returns() -> None:
    time.sleep(3600)


@ChiaFunction(num_cpus=1)
def blocked(value: Any) -> Any:
    return value


@dataclass
class Row:
    """One row of the table: a cost (seconds, bytes) at each size and the unit it is shown in."""

    name: str
    unit: str
    values: dict[int, float] = field(default_factory=dict)
    judged: bool = True
    """False for rows shown for information (the waits with the caches warm): their k gets no verdict."""

    def growth(self) -> str:
        sizes = sorted(self.values)
        if len(sizes) < 2:
            return "-"
        small, large = sizes[-2], sizes[-1]
        a, b = self.values[small], self.values[large]
        if a <= 0 or b <= 0:
            return "flat (too small to measure)"
        exponent = math.log(b / a) / math.log(large / small)
        if not self.judged:
            return f"k = {exponent:.2f}, for information"
        if exponent < 0.25:
            return f"flat (k = {exponent:.2f})"
        verdict = "linear or better" if exponent <= LINEAR_LIMIT else "WORSE than linear"
        return f"{verdict} (k = {exponent:.2f})"


def timed(action: Callable[[], Any]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


_ROLES = (
    ("ray::ProfileCol", "collector"),
    ("ray::PidRegistr", "registry"),
    ("gcs_server", "gcs"),
    ("raylet", "raylet"),
)
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_role() -> dict[str, float]:
    """CPU seconds so far of this machine's processes, by role: this driver, Ray's workers, named actors, GCS...

    Read from /proc (empty elsewhere). Ray's task workers are the ``ray::`` processes no role claims.
    """
    seconds: dict[str, float] = {}
    driver = str(os.getpid())
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat:
                name, _, fields = stat.read().rpartition(")")
        except OSError:
            continue
        comm = name.partition("(")[2]
        role = "driver" if pid == driver else next((role for prefix, role in _ROLES if comm.startswith(prefix)), None)
        if role is None:
            role = "workers" if comm.startswith("ray::") else "other"
        values = fields.split()
        seconds[role] = seconds.get(role, 0.0) + (int(values[11]) + int(values[12])) / _TICKS
    return seconds


def cpu_per_call(before: dict[str, float], after: dict[str, float], calls: int) -> str:
    """The CPU each role spent per call between two :func:`cpu_by_role` readings (processes that ended drop out)."""
    spent = {role: (after[role] - before.get(role, 0.0)) / calls * 1e6 for role in after}
    return ", ".join(
        f"{role} {micros:.0f}" for role, micros in sorted(spent.items(), key=lambda item: -item[1]) if micros >= 1
    )


@contextlib.contextmanager
def section(name: str) -> Iterator[None]:
    """Print how long a part of the run took (where the budget of 15 minutes goes)."""
    began = time.perf_counter()
    yield
    print(f"  ({name}: {time.perf_counter() - began:.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)


def sweep(size: int, prefix: str = "s") -> list[Any]:
    refs = [noop.chia_remote(_chia_tag=f"{prefix}{index}") for index in range(size)]  # type: ignore[call-arg]
    get(refs)
    return refs


def raw_sweep(size: int) -> None:
    """The same sweep in raw Ray, every task named as a tagged call's is: how Ray itself grows."""
    refs = [raw_noop.options(name=f"raw_noop[s{index}]").remote() for index in range(size)]
    ray.get(refs)


def raw_unnamed_sweep(size: int) -> None:
    """The same sweep in raw Ray with Ray's default task names (one name for all)."""
    refs = [raw_noop.remote() for _ in range(size)]
    ray.get(refs)


def profiled_sweep(size: int, log_dir: Path, prefix: str = "s") -> tuple[float, str, str]:
    """A sweep with the chia-ops collector running: (seconds, CPU per call by role, the profile log's path)."""
    profiler.start_collector(log_dir=log_dir)
    cpu = cpu_by_role()
    seconds = timed(functools.partial(sweep, size, prefix))
    spent = cpu_per_call(cpu, cpu_by_role(), size)
    log = profiler.stop_collector()
    assert log is not None
    return seconds, spent, log


def past_limit_rows(sizes: list[int], root: Path, rows: dict[str, Row]) -> None:
    """Profiled sweeps of fresh tags at every size, all past the process's tagged-name limit: like for like."""
    limit = tags.parse_limit(os.environ.get(tags.LIMIT_ENV, ""))
    if limit is None:
        print(f"  (no row '{PAST_LIMIT}': {tags.LIMIT_ENV} is unlimited)", flush=True)
        return
    if limit > max(sizes):  # the sweeps so far named at most max(sizes) tags: give Ray the rest of the names
        sweep(limit, prefix="budget")
    for size in sizes:
        seconds, spent, _ = profiled_sweep(size, root / f"profile-past-{size}", f"past{size}-")
        rows[PAST_LIMIT].values[size] = seconds
        print(f"  dispatch {size:>7}: profiled, tags past the name limit, {size / seconds:7.0f} calls/s", flush=True)
        print(f"  {'':16}CPU per call, us: {spent}", flush=True)


def dispatch_rows(sizes: list[int], root: Path, rows: dict[str, Row], *, unnamed: bool = True) -> dict[int, list[Any]]:
    """Sweeps with profiling off and on; keeps the finished refs for the wait row.

    Raw Ray's named sweeps come last: each name they give Ray costs every
    later call of the session (Ray collects every series it has seen), so
    run before chia's, they would charge chia for 100,000 names of theirs.
    """
    finished: dict[int, list[Any]] = {}
    sweep(200)  # warm up: workers, the function's export
    raw_sweep(200)
    for size in sizes:
        if unnamed:
            rows["dispatch, raw Ray unnamed"].values[size] = timed(functools.partial(raw_unnamed_sweep, size))
        cpu = cpu_by_role()
        began = time.perf_counter()
        finished[size] = sweep(size)
        seconds = time.perf_counter() - began
        plain_cpu = cpu_per_call(cpu, cpu_by_role(), size)
        rows["dispatch"].values[size] = seconds
        profiled, profiled_cpu, log = profiled_sweep(size, root / f"profile-{size}")
        rows["dispatch profiled"].values[size] = profiled
        rows["profile size"].values[size] = os.path.getsize(log)
        loads = []
        for _ in range(3):  # the median of three: one load moved by up to 20 % between runs
            began = time.perf_counter()
            profile = export.load_profile(log)
            loads.append(time.perf_counter() - began)
        rows["load_profile"].values[size] = statistics.median(loads)
        calls = len(profile.calls)
        unnamed_rate = (
            f"raw Ray {size / rows['dispatch, raw Ray unnamed'].values[size]:7.0f} unnamed, " if unnamed else ""
        )
        print(
            f"  dispatch {size:>7}: {unnamed_rate}"
            f"chia {size / seconds:7.0f} calls/s, profiled {size / profiled:7.0f} calls/s; "
            f"profile {os.path.getsize(log) / max(calls, 1):.0f} B/call over {calls} calls, "
            f"load_profile {rows['load_profile'].values[size]:.2f} s",
            flush=True,
        )
        print(f"  {'':16}CPU per call, us: chia {plain_cpu}; profiled {profiled_cpu}", flush=True)
    past_limit_rows(sizes, root, rows)
    for size in sizes:
        rows["dispatch, raw Ray"].values[size] = timed(functools.partial(raw_sweep, size))
        print(f"  dispatch {size:>7}: raw Ray {size / rows['dispatch, raw Ray'].values[size]:7.0f} named", flush=True)
    return finished


PAST_LIMIT = "dispatch profiled, tags past the name limit"
METRICS_OFF = {
    "dispatch, raw Ray": "dispatch, raw Ray (Ray metrics off)",
    "dispatch": "dispatch (Ray metrics off)",
    "dispatch profiled": "dispatch profiled (Ray metrics off)",
    PAST_LIMIT: f"{PAST_LIMIT} (Ray metrics off)",
}
"""The dispatch rows measured again in a Ray session without metrics, under these names."""


def metrics_off_rows(sizes: list[int], rows: dict[str, Row]) -> None:
    """The dispatch rows in a child process whose Ray session collects no metrics (Ray reads the variable at start)."""
    command = [sys.executable, __file__, "--sizes", ",".join(map(str, sizes)), "--dispatch-only"]
    environment = {**os.environ, "RAY_enable_metrics_collection": "0", "RAY_ADDRESS": "local"}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=1800, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("  dispatch") or "CPU per call" in line]
    for line in lines:
        line = line.replace("CPU per call", "CPU per call (Ray metrics off)", 1)
        print(line.replace("  dispatch", "  dispatch (Ray metrics off)", 1), flush=True)
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"the metrics-off pass failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    measured: dict[str, dict[str, float]] = json.loads(result.stdout.strip().splitlines()[-1])
    for name, values in measured.items():
        rows[METRICS_OFF[name]].values.update({int(size): seconds for size, seconds in values.items()})


def pending_calls(blocker: Any, have: list[Any], size: int) -> None:
    """Grow ``have`` to ``size`` chia_remote calls that wait on ``blocker`` (never scheduled)."""
    have.extend(blocked.chia_remote(blocker) for _ in range(size - len(have)))


def last_level_cache() -> int:
    """Bytes of the CPU's last-level cache (32 MiB when the system does not say)."""
    for name in ("SC_LEVEL4_CACHE_SIZE", "SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
        with contextlib.suppress(ValueError, OSError):
            if (size := os.sysconf(name)) > 0:
                return size
    return 32 << 20


def wait_rows(sizes: list[int], finished: dict[int, list[Any]], pending: list[Any], rows: dict[str, Row]) -> None:
    evict = bytearray(4 * last_level_cache())
    fills = (b"\x55" * len(evict), b"\xaa" * len(evict))

    def cold(call: Callable[[], Any]) -> float:
        evict[:] = fills[0] if evict[0] != 0x55 else fills[1]  # every line written: the caches hold this now
        return timed(call)

    for size in sizes:
        half = size // 2
        refs = finished[size][:half] + pending[: size - half]
        tracked = [TrackedRef(ref) for ref in refs]
        sides: list[tuple[str, Callable[[], Any]]] = [
            ("raw", functools.partial(ray.wait, refs, num_returns=half, timeout=0)),
            ("chia", functools.partial(chia_wait, tracked, num_returns=half, timeout=0, pending_timeout=3600)),
        ]
        for caches, measure, suffix in (("cold", cold, ""), ("warm", timed, ", caches warm")):
            best = dict.fromkeys(("raw", "chia"), math.inf)
            for turn in range(15):  # alternating which goes first; the best of each (the noise is one-sided)
                for side, call in sides if turn % 2 == 0 else sides[::-1]:
                    best[side] = min(best[side], measure(call))
            raw, chia = best["raw"], best["chia"]
            rows[f"chia_wait{suffix}"].values[size] = chia
            rows[f"ray.wait{suffix}"].values[size] = raw
            rows[f"chia_wait / ray.wait{suffix}"].values[size] = chia / raw
            print(
                f"  wait {size:>7}, caches {caches}: ray.wait {raw * 1e3:8.2f} ms, "
                f"chia_wait {chia * 1e3:8.2f} ms ({chia / raw:.2f})",
                flush=True,
            )


def status_rows(sizes: list[int], blocker: Any, pending: list[Any], rows: dict[str, Row]) -> None:
    address = ray.get_runtime_context().gcs_address
    for size in sizes:
        pending_calls(blocker, pending, size)
        samples = []
        for _ in range(3):
            began = time.perf_counter()
            result = subprocess.run(
                [CHIA, "status", "--json", "--address", address], capture_output=True, text=True, timeout=300
            )
            samples.append(time.perf_counter() - began)
            if result.returncode != 0:
                raise RuntimeError(f"chia status failed ({result.returncode}): {result.stderr.strip()}")
        rows["chia status"].values[size] = min(samples)
        print(f"  chia status with {size:>7} calls pending: {min(samples):.2f} s")


def wait_unlocked(directory: Path) -> None:
    """Until no cache actor holds ``directory`` (a stopped actor's process exits asynchronously)."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{directory} still locked by a stopped cache actor") from None
                time.sleep(0.05)
                continue
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
    finally:
        os.close(fd)


def start_and_read(directory: Path) -> tuple[float, float, int]:
    """Seconds for start_cache + a first read, the actor's index load (seconds) and its resident memory (bytes)."""
    wait_unlocked(directory)
    namespace = f"scale-{uuid.uuid4().hex[:8]}"
    began = time.perf_counter()
    handle: Any = start_cache(4, str(directory), units="GB", namespace=namespace)
    ray.get(handle.read.remote("entry-0"))
    elapsed = time.perf_counter() - began
    ray.get(handle.stats.remote())  # waits for the index
    # The store's own float: stats() rounds to whole ms, 12 % of the 8 ms a 10,000-entry build takes.
    index_seconds: float = ray.get(handle.__ray_call__.remote(lambda actor: actor._opened.warm_start_seconds))
    rss: int = ray.get(handle.__ray_call__.remote(lambda _actor: _resident_bytes()))
    stop_cache(namespace)
    return elapsed, index_seconds, rss


def _resident_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# The whole index built by the store in a fresh process, as the actor's is, with nothing else running in it:
# the actor builds it in a background thread while it answers calls, and its figure moves with them; this
# process holds the sweeps' objects, and the collector's passes over them would be timed with the build
# (measured: 0.74 us an entry at 100,000 alone, 0.90 next to 3 million other objects).
_BUILD_ALONE = (
    "import sys, time\n"
    "from chia.base._bypass_cache.cache_store import EntryStore\n"
    "began = time.perf_counter()\n"
    "EntryStore(sys.argv[1], 4 << 30).close()\n"
    "print(time.perf_counter() - began)\n"
)


def build_alone(directory: Path) -> float:
    """Seconds the store alone takes to open ``directory`` and build its whole index, in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _BUILD_ALONE, str(directory)], capture_output=True, text=True, check=True, timeout=300
    )
    return float(done.stdout)


def fill(directory: Path, size: int, value: bytes, *, start: int = 0) -> float:
    """Seconds to put entries ``start`` to ``size`` into the store at ``directory``, one put after another."""
    store = EntryStore(str(directory), 4 << 30)
    began = time.perf_counter()
    for index in range(start, size):
        store.put(f"entry-{index}", value)
    seconds = time.perf_counter() - began
    store.close()
    return seconds


def cache_rows(sizes: list[int], root: Path, rows: dict[str, Row]) -> None:
    empty, full = root / "cache-empty", root / "cache-full"
    empty.mkdir(mode=0o700)
    value = pickle.dumps(b"v" * 256)  # entries hold pickles, as the actor stores them
    # An empty directory's start, first read and memory: measured three times for all sizes (not per size:
    # each start of a cache actor takes seconds here).
    empties = [start_and_read(empty) for _ in range(3)]
    base_wall = statistics.median(wall for wall, _, _ in empties)
    base_rss = statistics.median(rss for _, _, rss in empties)
    filled = 0
    for size in sizes:
        # Filled in this process (Ray's call rate would dominate): N puts into an empty store, the
        # median of three fresh stores (one fill moved by up to 40 % between runs), then the directory
        # the warm-start rows open is grown to N entries.
        fills = []
        for turn in range(3):
            fills.append(fill(root / f"cache-writes-{turn}", size, value))
            shutil.rmtree(root / f"cache-writes-{turn}")
        rows["cache writes (store alone)"].values[size] = statistics.median(fills)
        fill(full, size, value, start=filled)
        filled = size
        builds = [build_alone(full) for _ in range(5)]
        rows["cache warm start (store alone)"].values[size] = statistics.median(builds)
        walls, indexes, memory = [], [], []
        for _ in range(5):
            wall, index_seconds, rss = start_and_read(full)
            walls.append(wall - base_wall)
            indexes.append(index_seconds)
            memory.append(rss - base_rss)
        rows["cache warm start"].values[size] = statistics.median(indexes)
        rows["cache start + first read"].values[size] = statistics.median(walls)
        rows["cache memory"].values[size] = statistics.median(memory)
        print(
            f"  cache {size:>7} entries: index {statistics.median(indexes):.3f} s (store alone "
            f"{statistics.median(builds):.3f} s), start + first read "
            f"{statistics.median(walls):+.3f} s over empty, memory {statistics.median(memory) / 1e6:+.1f} MB",
            flush=True,
        )


def kv_rows(sizes: list[int], rows: dict[str, Row]) -> None:
    store: Any = get_or_create_kv_store(f"scale_{uuid.uuid4().hex[:8]}", "chia_benchmarks")
    held = 0
    try:
        for size in sizes:
            for start in range(held, size, 1000):
                ray.get([store.set.remote(f"key-{index}", index) for index in range(start, min(start + 1000, size))])
            held = size
            key = f"key-{size // 2}"
            for _ in range(200):
                query_kv(store, key)
            samples = []
            for _ in range(1000):
                began = time.perf_counter()
                query_kv(store, key)
                samples.append(time.perf_counter() - began)
            rows["query_kv"].values[size] = statistics.median(samples)
            print(f"  query_kv under {size:>7} keys: p50 {statistics.median(samples) * 1e6:.0f} us", flush=True)
    finally:
        ray.kill(store)


def format_value(row: Row, size: int) -> str:
    value = row.values.get(size)
    if value is None:
        return "-"
    if row.unit == "calls/s":
        return f"{size / value:,.0f}/s"
    if row.unit == "B/call":
        return f"{value / size:,.0f} B"
    if row.unit == "MB":
        return f"{value / 1e6:+,.1f} MB"
    if row.unit == "ms":
        return f"{value * 1e3:,.2f} ms"
    if row.unit == "us":
        return f"{value * 1e6:,.0f} us"
    if row.unit == "ratio":
        return f"{value:.2f}"
    if row.unit == "+s":
        return f"{value:+.3f} s"
    return f"{value:.3f} s" if value < 0.1 else f"{value:.2f} s"


def new_rows() -> dict[str, Row]:
    names = (
        ("dispatch, raw Ray unnamed", "calls/s"),
        ("dispatch, raw Ray", "calls/s"),
        ("dispatch", "calls/s"),
        ("dispatch profiled", "calls/s"),
        (PAST_LIMIT, "calls/s"),
        *((name, "calls/s") for name in METRICS_OFF.values()),
        ("profile size", "B/call"),
        ("load_profile", "s"),
        ("chia_wait", "ms"),
        ("ray.wait", "ms"),
        ("chia_wait / ray.wait", "ratio"),
        ("chia_wait, caches warm", "ms"),
        ("ray.wait, caches warm", "ms"),
        ("chia_wait / ray.wait, caches warm", "ratio"),
        ("cache warm start", "s"),
        ("cache warm start (store alone)", "s"),
        ("cache start + first read", "+s"),
        ("cache memory", "MB"),
        ("cache writes (store alone)", "s"),
        ("query_kv", "us"),
        ("chia status", "s"),
    )
    # Shown, not judged: the warm waits (see the module's docstring), and the profiled sweeps that mix calls
    # within the tagged-name limit and past it (judged like for like in the PAST_LIMIT rows).
    unjudged = {"dispatch profiled", METRICS_OFF["dispatch profiled"]}
    return {
        name: Row(name, unit, judged=not name.endswith("caches warm") and name not in unjudged) for name, unit in names
    }


def dispatch_only(sizes: list[int], rows: dict[str, Row]) -> None:
    """The child of :func:`metrics_off_rows`: the named dispatch rows, then their seconds as one JSON line."""
    with tempfile.TemporaryDirectory(prefix="chia-scale-") as directory:
        dispatch_rows(sizes, Path(directory), rows, unnamed=False)
    print(json.dumps({name: rows[name].values for name in METRICS_OFF}), flush=True)
    ray.shutdown()  # after the line: Ray may end this process while it shuts down (see main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated sizes, smallest first")
    parser.add_argument("--dispatch-only", action="store_true", help=argparse.SUPPRESS)  # the metrics-off pass
    args = parser.parse_args()
    sizes = sorted(int(text) for text in args.sizes.split(","))
    began = time.perf_counter()
    rows = new_rows()
    if not args.dispatch_only:
        print(f"scale benchmark: sizes {sizes}, 2 CPUs; load {os.getloadavg()[0]:.1f}", flush=True)
        with section("dispatch, Ray metrics off"):  # first, in its own Ray session, before this one starts
            metrics_off_rows(sizes, rows)
    for attempt in range(3):  # on a loaded machine the local node can miss Ray's 30 s to start
        try:
            ray.init(address=os.environ.get("RAY_ADDRESS", "local"), num_cpus=2, include_dashboard=False)
            break
        except Exception:
            if attempt == 2:
                raise
            print("  the local Ray node did not start in time; trying again", flush=True)
    if args.dispatch_only:
        dispatch_only(sizes, rows)
        return
    with tempfile.TemporaryDirectory(prefix="chia-scale-") as directory:
        root = Path(directory)
        with section("dispatch"):
            finished = dispatch_rows(sizes, root, rows)
        blocker = never_returns.remote()
        pending: list[Any] = []
        with section("chia status"):
            status_rows(sizes, blocker, pending, rows)
        with section("wait"):
            wait_rows(sizes, finished, pending, rows)
        ray.cancel(blocker, force=True)
        del finished, pending
        with section("cache"):
            cache_rows(sizes, root, rows)
        with section("kv"):
            kv_rows(sizes, rows)
        shutil.rmtree(root, ignore_errors=True)
    print_table(sizes, rows, began)
    # Last: Ray's core worker may end this process from a background thread while it shuts down
    # (its raylet gone before the calls cancelled above were settled), so nothing is printed after.
    ray.shutdown()


def print_table(sizes: list[int], rows: dict[str, Row], began: float) -> None:
    header = " | ".join(f"{size:,}" for size in sizes)
    print(f"\n| measure | {header} | growth {sizes[-2]:,} -> {sizes[-1]:,} |")
    print("|---" * (len(sizes) + 2) + "|")
    for row in rows.values():
        cells = " | ".join(format_value(row, size) for size in sizes)
        print(f"| {row.name} | {cells} | {row.growth()} |")
    print(f"\ntook {time.perf_counter() - began:.0f} s; load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
