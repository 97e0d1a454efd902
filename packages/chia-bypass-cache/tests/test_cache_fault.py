"""Fault tests: kill -9 the cache while it writes; nothing acknowledged is lost, nothing torn is served.

Two levels. The store alone, in a subprocess with tiny segment, checkpoint
and compaction thresholds so that kills land in appends, checkpoints, their
deltas and compactions alike, killed with SIGKILL after a random number of
acknowledged writes, many times over (a fresh process costs ~0.2 s). Then the
real cache actor on Ray, killed with SIGKILL while several tasks write to it
concurrently, a few times (each restart costs a new actor process). Values
carry their own checksum, so a corrupt or partial entry served anywhere
fails the test. The Ray level is marked slow (run in the newest-Ray cell only).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import random
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import ray
import ray.exceptions

from chia.base._bypass_cache.cache_store import EntryStore
from chia.base.cache import get_active_cache, start_cache, stop_cache
from chia_testing import wait_until

STORE_KILLS = 15
ACTOR_KILLS = 2
WRITERS = 3
WRITES_PER_WRITER = 25


def store_value(tag: str, version: str) -> bytes:
    """The value written as ``version`` of ``tag``: it names both and carries its own checksum."""
    seed = int(hashlib.sha256(f"{tag}/{version}".encode()).hexdigest()[:8], 16)
    body = random.Random(seed).randbytes(seed % 3_000 if seed % 5 else 9_000 + seed % 2_000)
    head = f"{tag}|{version}|{hashlib.sha256(body).hexdigest()}|".encode()
    return head + body


# Writes, overwrites and removes forever, printing "begin"/"ack" lines around each; thresholds tiny on purpose.
STORE_WRITER = textwrap.dedent(
    """
    import hashlib, random, sys
    from chia.base._bypass_cache import cache_store
    cache_store.SEGMENT_BYTES = 20_000
    cache_store.CHECKPOINT_RECORDS = 7
    cache_store.COMPACT_MIN_DEAD_BYTES = 10_000
    directory, seed = sys.argv[1], int(sys.argv[2])
    store = cache_store.EntryStore(directory, 200_000)
    rng = random.Random(seed)
    out = sys.stdout
    for step in range(10**9):
        tag = f"t{rng.randrange(40)}"
        if rng.random() < 0.2:
            store.get(tag)  # a read: a row of the next checkpoint delta
            continue
        if rng.random() < 0.15:
            out.write(f"begin remove {tag}\\n"); out.flush()
            store.remove(tag)
            out.write(f"ack remove {tag}\\n"); out.flush()
        else:
            version = f"{seed}.{step}"
            out.write(f"begin put {tag} {version}\\n"); out.flush()
            store.put(tag, store_value(tag, version))
            out.write(f"ack put {tag} {version}\\n"); out.flush()
    """
)


def stored_version(tag: str, payload: bytes) -> str:
    """The version an intact stored value holds; fails the test on a corrupt or foreign one."""
    stored_tag, version, digest, body = payload.split(b"|", 3)
    assert stored_tag.decode() == tag, f"entry {tag!r} holds {stored_tag!r}'s value"
    assert hashlib.sha256(body).hexdigest() == digest.decode(), f"entry {tag!r} is corrupt or partial"
    assert store_value(tag, version.decode()) == payload
    return version.decode()


def test_store_killed_mid_write_loses_nothing_acknowledged(tmp_path: Path) -> None:
    directory = str(tmp_path / "cache")
    # tag -> the versions it may hold: the last acknowledged one (None: removed or never written) and one in flight
    allowed: dict[str, set[str | None]] = {}
    rng = random.Random(7)
    for kill in range(STORE_KILLS):
        child = subprocess.Popen(
            [sys.executable, "-c", inspect.getsource(store_value) + STORE_WRITER, directory, str(kill)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        acknowledged = 0
        kill_after = rng.randrange(1, 60)
        # Every line the child printed counts, those after the kill too: it runs ahead of this reader.
        for line in child.stdout:
            action, kind, tag, *version = line.split()
            value = version[0] if kind == "put" else None
            if action == "begin":
                allowed.setdefault(tag, {None}).add(value)
                continue
            allowed[tag] = {value}
            acknowledged += 1
            if acknowledged == kill_after:
                child.send_signal(signal.SIGKILL)  # mid-way through whatever it does then
        assert child.wait() == -signal.SIGKILL
        store = EntryStore(directory, 200_000)
        for tag, versions in allowed.items():
            payload = store.get(tag)
            held = None if payload is None else stored_version(tag, bytes(payload))
            assert held in versions, f"kill {kill}: {tag!r} holds {held!r}, acknowledged or in flight: {versions}"
            allowed[tag] = {held}
        assert store.quarantined == 0
        store.close()


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


@pytest.mark.slow  # a new actor process per kill: seconds each
@pytest.mark.usefixtures("cluster")
def test_kill_during_concurrent_writes_loses_nothing_acknowledged(tmp_path: Path) -> None:
    namespace = f"chia-fault-{uuid.uuid4().hex[:8]}"
    directory = str(tmp_path / "cache")
    rng = random.Random(1)
    acknowledged: list[str] = []
    for round_index in range(ACTOR_KILLS):
        cache: Any = start_cache(1, directory, units="GB", namespace=namespace)
        keys = set(ray.get(cache.keys.remote()))
        missing = [tag for tag in acknowledged if tag not in keys]
        assert not missing, f"round {round_index}: acknowledged writes lost: {missing[:5]}"
        verify(cache, acknowledged)
        stats = ray.get(cache.stats.remote())
        assert stats["quarantined"] == 0
        pid: int = ray.get(cache.__ray_call__.remote(lambda _actor: os.getpid()))
        refs = [writer.remote(namespace, f"r{round_index}w{w}") for w in range(WRITERS)]
        # Kill while the writers are busy: as soon as a few of their writes are through.
        kill_after = rng.randint(1, WRITERS * WRITES_PER_WRITER // 3)
        wait_until(
            functools.partial(writes_reached, cache, stats["writes"] + kill_after),
            timeout=120,
            interval=0.002,
            message=f"{kill_after} acknowledged writes before the kill",
        )
        os.kill(pid, signal.SIGKILL)
        for done in ray.get(refs):
            acknowledged.extend(done)
    cache = start_cache(1, directory, units="GB", namespace=namespace)
    every_key: list[str] = ray.get(cache.keys.remote())
    assert set(acknowledged) <= set(every_key)
    verify(cache, every_key)  # every entry, acknowledged or caught mid-write
    assert ray.get(cache.stats.remote())["quarantined"] == 0
    stop_cache(namespace)
