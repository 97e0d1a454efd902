"""The HTML profile report of a 50,000-call profile: bytes per call, generation time, browser open time.

Writes a synthetic profile through the collector's own log writer (format 2):
a design-space loop on 4 nodes x 4 workers and a driver, each iteration a
``build`` feeding 8 ``simulate`` calls, each feeding an ``evaluate``, all
feeding a ``merge``; later iterations partly replayed, some written to the
cache, a few failed, cancelled or never finished, and a ``best_cost`` metric
per iteration. Then times, over several rounds (medians), loading the log and
writing the report (``chia.trace.report.write_report``), and opening the page
in headless Chromium (Playwright; the load event and the first contentful
paint). Targets: generated in < 10 s, opened in < 5 s, <= 300 bytes per call.

    python benchmarks/report.py [--calls 50000] [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from chia.trace import _wire, export, report
from chia.trace._logfile import LogWriter

NODES, WORKERS_PER_NODE, FANOUT = 4, 4, 8
DURATIONS = {"build": 2.0, "simulate": 0.6, "evaluate": 0.05, "merge": 0.01}


class _Run:
    """Schedules synthetic calls on workers and keeps the rows each process would ship."""

    def __init__(self, origin: float, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = origin + 0.5
        self.nodes = [f"{self.rng.getrandbits(224):056x}" for _ in range(NODES)]
        self.driver = {"node": self.nodes[0], "worker": "01000000" + "f" * 48, "pid": 1000, "driver": True}
        self.workers = [
            {"node": node, "worker": f"{self.rng.getrandbits(224):056x}", "pid": 2000 + index, "driver": False}
            for index, node in enumerate(node for node in self.nodes for _ in range(WORKERS_PER_NODE))
        ]
        self.free = [self.now] * len(self.workers)
        self.rows: dict[int, list[tuple[Any, ...]]] = {index: [] for index in range(-1, len(self.workers))}
        self.ids = iter(range(self.rng.getrandbits(40) << 23, 1 << 63))
        self.tasks = iter(range(1, 1 << 62))
        self.calls = 0

    def call(self, function: str, tag: str, deps: list[tuple[str, float]], iteration: int) -> tuple[str, float]:
        """Submit and run one call after its dependencies; returns its task id and finish time."""
        rng = self.rng
        call_id, task = next(self.ids), f"{next(self.tasks):016x}ffffffffffffffffffffffff01000000"
        submitted = self.now
        self.now += 0.0004
        args = "str[24], dict[3]" if not deps else ", ".join("ref" for _ in deps)
        self.rows[-1].append(
            (
                _wire.SUBMIT,
                call_id,
                f"dse.{function}",
                tag,
                submitted,
                {"CPU": 1.0},
                [d for d, _ in deps] or None,
                None,
                task,
                args,
            )
        )
        self.calls += 1
        if rng.random() < 0.001:
            return task, submitted  # never reported: lost or killed
        worker = min(range(len(self.workers)), key=self.free.__getitem__)
        ready = max([submitted, self.free[worker], *(finish for _, finish in deps)])
        replayed = function == "simulate" and iteration % 2 == 1 and rng.random() < 0.5
        took = 0.002 if replayed else rng.lognormvariate(0, 0.4) * DURATIONS[function]
        start = ready + rng.uniform(0.0005, 0.004)
        end = start + took
        self.free[worker] = end
        draw = rng.random()
        error = "TaskCancelledError" if draw < 0.002 else ("ValueError" if draw < 0.012 else None)
        cache_write = function == "simulate" and not replayed and rng.random() < 0.3
        provider = "dse.cache_provider" if replayed else None
        self.rows[worker].append(
            (
                _wire.RUN,
                next(self.ids),
                f"dse.{function}",
                tag,
                start,
                end,
                task,
                True,
                replayed,
                provider,
                cache_write,
                error,
                None,
            )
        )
        return task, end

    def iteration(self, index: int, best: float) -> float:
        build = self.call("build", f"it{index}_build", [], index)
        evaluated = []
        for design in range(FANOUT):
            simulated = self.call("simulate", f"it{index}_sim{design}", [build], index)
            evaluated.append(self.call("evaluate", f"it{index}_eval{design}", [simulated], index))
        _, finished = self.call("merge", f"it{index}_merge", evaluated, index)
        self.now = max(self.now, finished - 4.0)  # the loop runs a few iterations ahead
        best = min(best, self.rng.uniform(10, 100) / (1 + index / 50))
        self.rows[-1].append((_wire.METRIC, "best_cost", finished, best, index, None))
        return best


def synthetic_profile(directory: Path, calls: int, seed: int = 7) -> Path:
    """Write a profile of about ``calls`` calls into ``directory``; returns the log's path."""
    origin = time.time() - 3600
    run = _Run(origin, seed)
    best = float("inf")
    index = 0
    while run.calls < calls:
        best = run.iteration(index, best)
        index += 1
    path = directory / "chia-profile-bench.jsonl"
    header = {
        "session": "bench",
        "ts": origin,
        "head_node": run.nodes[0],
        "host": "benchmark",
        "nodes": NODES,
        "resources": {"CPU": float(NODES * WORKERS_PER_NODE)},
    }
    writer = LogWriter(path, header)
    for index, rows in run.rows.items():
        process = run.driver if index < 0 else run.workers[index]
        for offset in range(0, len(rows), 2000):  # batches, as processes flush them
            writer.write(process, rows[offset : offset + 2000])
    writer.close()
    return path


def open_in_browser(page_path: Path, rounds: int) -> tuple[float, float]:
    """Median seconds to the load event and to the first contentful paint, over ``rounds`` fresh pages."""
    loads, paints = [], []
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        for _ in range(rounds):
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=120_000)
            timing = page.evaluate(
                """() => {
                    const nav = performance.getEntriesByType("navigation")[0];
                    const paint = performance.getEntriesByName("first-contentful-paint")[0];
                    return [nav.loadEventEnd, paint ? paint.startTime : null];
                }"""
            )
            loads.append(timing[0] / 1e3)
            paints.append((timing[1] or timing[0]) / 1e3)
            page.close()
        browser.close()
    return statistics.median(loads), statistics.median(paints)


def load_average() -> str:
    """The 1-minute load average (what else the machine is doing weighs on every figure)."""
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="write the log and the report here (default: a temp dir, removed)")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="chia-report-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        print(f"load average before: {load_average()}")
        log = synthetic_profile(directory, args.calls)
        loads, generations, cpu = [], [], []
        target = directory / "report.html"
        for _ in range(args.rounds):
            start, start_cpu = time.perf_counter(), time.process_time()
            data = export.load_profile(log)
            loaded = time.perf_counter()
            report.write_report(data, target)
            done = time.perf_counter()
            loads.append(loaded - start)
            generations.append(done - start)
            cpu.append(time.process_time() - start_cpu)
        calls = len(data.calls)
        print(
            f"profile: {calls} calls, {len(data.metrics)} metric points, {log.stat().st_size / calls:.0f} bytes per call"
        )
        print(
            f"report: {target.stat().st_size / 1e6:.2f} MB; generated in {statistics.median(generations):.2f} s "
            f"(median of {args.rounds}; of which loading the log {statistics.median(loads):.2f} s; "
            f"CPU time {statistics.median(cpu):.2f} s)  target < 10 s"
        )
        load_event, first_paint = open_in_browser(target, args.rounds)
        print(f"browser: first contentful paint {first_paint:.2f} s, load event {load_event:.2f} s  target < 5 s")
        print(f"load average after: {load_average()}")
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
