"""Throughput helpers shared by the dispatch and bypass benchmarks."""

from __future__ import annotations

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


def paired_ratio(mine: Sequence[float], theirs: Sequence[float]) -> float:
    """Median of the rounds' own ratios ``mine[i] / theirs[i]`` (both sides measured back to back in round i)."""
    return statistics.median(a / b for a, b in zip(mine, theirs, strict=True))
