"""Opt-in persistence: an operator's last values survive the store's actor dying."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import ray

from chia.base.chia_kv_store import attach_kv_store, get_or_create_kv_store, query_kv
from chia_testing import wait_until


def _pid_of(store: Any) -> int | None:
    try:
        pid: int = ray.get(store.__ray_call__.remote(lambda _self: os.getpid()), timeout=5)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
        return None
    return pid


def test_a_store_recreated_after_its_actor_was_killed_has_the_last_values(
    kv_name: tuple[str, str], tmp_path: Path, actor_gone: Any
) -> None:
    name, namespace = kv_name
    path = tmp_path / "knobs.pickle"
    store: Any = get_or_create_kv_store(name, namespace, persist_path=path, num_parallel=2, stage="warmup")
    ray.get(store.set.remote("num_parallel", 6))
    ray.get(store.delete.remote("stage"))
    versions = ray.get(store.entries.remote())

    ray.kill(store)
    wait_until(lambda: actor_gone(name, namespace), message="the killed store's name to be released")
    again: Any = get_or_create_kv_store(
        name, namespace, persist_path=path, num_parallel=2, stage="warmup", new_knob="on"
    )

    assert query_kv(again, "num_parallel") == 6
    assert ray.get(again.get_versioned.remote("num_parallel")) == versions["num_parallel"]
    # Defaults fill only keys the snapshot lacks (a deleted default comes back).
    assert ray.get(again.items.remote()) == {"num_parallel": 6, "stage": "warmup", "new_knob": "on"}


@pytest.mark.ray_compat
def test_a_crashed_store_is_restarted_by_ray_with_its_values(kv_name: tuple[str, str], tmp_path: Path) -> None:
    name, namespace = kv_name
    store: Any = get_or_create_kv_store(name, namespace, persist_path=tmp_path / "knobs.pickle", num_parallel=2)
    ray.get(store.set.remote("num_parallel", 12))

    crashed_pid = _pid_of(store)

    ray.kill(store, no_restart=False)

    wait_until(lambda: _pid_of(store) not in (None, crashed_pid), message="Ray to restart the store in a new process")
    assert query_kv(store, "num_parallel") == 12
    assert query_kv(attach_kv_store(name, namespace), "num_parallel") == 12


def test_a_value_that_cannot_be_persisted_is_refused_and_changes_nothing(
    kv_name: tuple[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "knobs.pickle"
    store: Any = get_or_create_kv_store(*kv_name, persist_path=path, rate=1)
    saved = path.read_bytes()

    class HoldsALockOnTheActor:
        def __init__(self) -> None:
            self.lock: Any = None

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.lock = threading.Lock()

    with pytest.raises(ray.exceptions.RayTaskError, match="lock"):
        ray.get(store.set.remote("rate", HoldsALockOnTheActor()))

    assert query_kv(store, "rate") == 1
    assert path.read_bytes() == saved
    assert [entry.name for entry in tmp_path.iterdir()] == ["knobs.pickle"], "no temporary file left behind"


def test_an_unreadable_snapshot_stops_creation_and_names_the_file(kv_name: tuple[str, str], tmp_path: Path) -> None:
    path = tmp_path / "knobs.pickle"
    path.write_bytes(b"not a snapshot")
    with pytest.raises(ValueError, match=f"KV store snapshot {re.escape(str(path))} cannot be read"):
        get_or_create_kv_store(*kv_name, persist_path=path)
    assert path.read_bytes() == b"not a snapshot"
    with pytest.raises(LookupError):
        attach_kv_store(*kv_name)
