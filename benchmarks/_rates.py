"""Throughput helpers shared by the dispatch and bypass benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
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
