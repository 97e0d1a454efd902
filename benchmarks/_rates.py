"""Throughput helpers shared by the dispatch and bypass benchmarks."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def batch_rate(submit: Callable[[], Any], fetch: Callable[[list[Any]], Any], n: int) -> float:
    """Calls per second for ``n`` submissions followed by one fetch of them all."""
    start = time.perf_counter()
    refs = [submit() for _ in range(n)]
    fetch(refs)
    return n / (time.perf_counter() - start)


def sequential_rate(submit: Callable[[], Any], fetch: Callable[[Any], Any], n: int) -> float:
    """Calls per second for ``n`` submit-then-fetch round trips."""
    start = time.perf_counter()
    for _ in range(n):
        fetch(submit())
    return n / (time.perf_counter() - start)


def interleaved_sequential_rates(
    sides: Sequence[tuple[Callable[[], Any], Callable[[Any], Any]]], n: int, chunks: int, reverse: bool = False
) -> list[float]:
    """Each side's calls per second over ``n`` submit-then-fetch round trips, measured in ``chunks`` turns.

    The sides take turns, a chunk of ``n / chunks`` round trips at a time
    (``reverse``: the last side starts), so every side sees the same moments
    of the run: a drift of the machine's speed, or work left over from an
    earlier phase, falls on all sides alike rather than on whichever side ran
    its whole ``n`` at that time.
    """
    per_chunk = max(1, n // chunks)
    order = list(range(len(sides)))[:: -1 if reverse else 1]
    elapsed = [0.0] * len(sides)
    for _ in range(chunks):
        for index in order:
            submit, fetch = sides[index]
            elapsed[index] += per_chunk / sequential_rate(submit, fetch, per_chunk)
    return [per_chunk * chunks / seconds for seconds in elapsed]


def paired_ratio(mine: Sequence[float], theirs: Sequence[float]) -> float:
    """Median of the rounds' own ratios ``mine[i] / theirs[i]`` (both sides measured back to back in round i)."""
    return statistics.median(a / b for a, b in zip(mine, theirs, strict=True))


class HostSteal:
    """CPU time the hypervisor gave other guests while the benchmark ran (Linux ``/proc/stat``).

    On a shared virtual machine a run can lose a sixth of its CPU to the
    host (measured on this project's machine) while the load average stays
    near zero; such a run is not quiet. Started when built; :meth:`summary` says
    how much was stolen since, as a share of all CPU time.
    """

    def __init__(self) -> None:
        self._start = _cpu_ticks()

    def summary(self) -> str:
        end = _cpu_ticks()
        if self._start is None or end is None:
            return "CPU stolen by the host: not measurable here (no /proc/stat)"
        total = sum(end) - sum(self._start)
        stolen = end[7] - self._start[7]
        share = stolen / total if total > 0 else 0.0
        verdict = "quiet" if share < 0.02 else "not quiet: ratios are less reliable"
        return f"CPU stolen by the host during the run: {share:.1%} of all CPU time ({verdict})"


def busy_cpu_seconds() -> float | None:
    """CPU seconds every process on the machine has used (user, nice, system, irq, softirq), or None off Linux."""
    ticks = _cpu_ticks()
    if ticks is None:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, _steal = ticks
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _cpu_ticks() -> list[int] | None:
    """The machine-wide ``cpu`` line of ``/proc/stat`` (user … steal), or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    return [int(value) for value in fields[1:9]]
