"""Fault test: kill the cache actor while tasks write, 100 times; nothing acknowledged is lost.

Each round restarts the cache over the same directory (a warm start after a
``ray.kill``), checks that every write acknowledged before any earlier kill is
still there and intact, then lets several tasks write concurrently and kills
the actor at a random point. Values carry their own checksum, so a corrupt or
partial entry served anywhere fails the test. Four independent lanes (own
namespace and directory) run side by side to keep it short.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import threading
import uuid
from pathlib import Path
from typing import Any, cast

import pytest
import ray
import ray.exceptions
from ray.actor import ActorHandle

from chia.base.cache import get_active_cache, start_cache, stop_cache
from chia_testing import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("cluster")]

KILLS = int(os.environ.get("CHIA_FAULT_KILLS", "100"))
LANES = int(os.environ.get("CHIA_FAULT_LANES", "2"))
WRITERS = 3
WRITES_PER_WRITER = 25


def make_value(tag: str) -> tuple[str, bytes, str]:
    seed = int(hashlib.sha256(tag.encode()).hexdigest()[:8], 16)
    size = seed % 2_000 if seed % 8 else 110_000 + seed % 20_000  # some large (object-store) values too
    payload = random.Random(seed).randbytes(size)
    return tag, payload, hashlib.sha256(payload).hexdigest()


def is_intact(tag: str, value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 3
        and value[0] == tag
        and hashlib.sha256(value[1]).hexdigest() == value[2]
        and value == make_value(tag)
    )


@ray.remote(num_cpus=0, max_retries=0)
def writer(namespace: str, prefix: str) -> list[str]:
    """Write until the cache dies; return the tags whose write was acknowledged."""
    cache = get_active_cache(namespace)
    acknowledged: list[str] = []
    if cache is None:
        return acknowledged
    for index in range(WRITES_PER_WRITER):
        tag = f"{prefix}-{index}"
        try:
            ray.get(cache.write.remote(tag, make_value(tag)))
        except ray.exceptions.RayActorError:
            break
        acknowledged.append(tag)
    return acknowledged


def verify(cache: Any, tags: list[str]) -> None:
    """Every tag reads back, intact."""
    results = ray.get([cache.read.remote(tag) for tag in tags])
    for tag, (hit, value) in zip(tags, results, strict=True):
        assert hit, f"write {tag!r} was lost"
        assert is_intact(tag, value), f"entry {tag!r} is corrupt or partial"


def writes_reached(cache: Any, count: int) -> bool:
    """The cache has acknowledged ``count`` writes since it started."""
    writes: int = ray.get(cache.stats.remote())["writes"]
    return writes >= count


def run_lane(lane: int, rounds: int, directory: str, failures: list[BaseException]) -> None:
    namespace = f"chia-fault-{uuid.uuid4().hex[:8]}-{lane}"
    rng = random.Random(lane)
    acknowledged: list[str] = []
    try:
        for round_index in range(rounds):
            cache = start_cache(1, directory, units="GB", namespace=namespace)
            listed: list[str] = ray.get(cache.keys.remote())
            keys = set(listed)
            missing = [tag for tag in acknowledged if tag not in keys]
            assert not missing, f"lane {lane} round {round_index}: acknowledged writes lost: {missing[:5]}"
            verify(cache, acknowledged[-WRITERS * WRITES_PER_WRITER :])
            before = ray.get(cache.stats.remote())["writes"]
            assert ray.get(cache.stats.remote())["quarantined"] == 0
            refs = [writer.remote(namespace, f"l{lane}r{round_index}w{w}") for w in range(WRITERS)]
            kill_after = rng.randint(1, WRITERS * WRITES_PER_WRITER // 2)
            wait_until(
                functools.partial(writes_reached, cache, before + kill_after),
                timeout=120,
                interval=0.005,
                message=f"{kill_after} acknowledged writes before the kill",
            )
            ray.kill(cast(ActorHandle[Any], cache), no_restart=True)
            for done in ray.get(refs):
                acknowledged.extend(done)
        cache = start_cache(1, directory, units="GB", namespace=namespace)
        every_key: list[str] = ray.get(cache.keys.remote())
        assert set(acknowledged) <= set(every_key)
        verify(cache, every_key)  # every entry, acknowledged or caught mid-write, once at the end
        assert ray.get(cache.stats.remote())["quarantined"] == 0
        leftovers = [name for name in os.listdir(directory) if name.startswith(".tmp-")]
        assert not leftovers
        stop_cache(namespace)
    except BaseException as exc:  # reported by the test thread
        failures.append(exc)


def test_kill_during_concurrent_writes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    failures: list[BaseException] = []
    rounds = KILLS // LANES
    lanes = [
        threading.Thread(target=run_lane, args=(lane, rounds, str(tmp_path / f"lane{lane}"), failures))
        for lane in range(LANES)
    ]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()
    if failures:
        raise failures[0]
