"""Collector lifecycle: idempotent start, head pinning, zero cost when off, bounded buffers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray

from chia.base import dispatch_hooks
from chia.base.ChiaFunction import ChiaFunction, get
from chia.trace import _recorder, export, profiler

pytestmark = pytest.mark.usefixtures("no_collector")


@ChiaFunction(num_cpus=0)
def traced_remotely() -> bool:
    """True when this body runs under a call wrapper (the profiler's, here)."""
    return dispatch_hooks.current_call() is not None


@ChiaFunction(num_cpus=0)
def add_one(x: int) -> int:
    return x + 1


def test_without_a_collector_nothing_is_registered() -> None:
    assert profiler.get_profiler() is None and profiler.get_collector() is None
    assert get(traced_remotely.chia_remote()) is False
    assert traced_remotely() is False
    profiler.log_event("ignored", x=1)  # a no-op, not an error


def test_start_is_idempotent_and_stop_unregisters(tmp_path: Path) -> None:
    handle = profiler.start_collector(log_dir=tmp_path)
    assert profiler.start_collector(log_dir=tmp_path) == handle
    assert profiler.get_collector() == handle
    assert get(traced_remotely.chia_remote()) is True and traced_remotely() is True
    session = profiler.get_profiler()
    assert session is not None and session.namespace is None
    log = profiler.stop_collector()
    assert log == str(tmp_path / f"chia-profile-{session.session}.jsonl")
    assert profiler.stop_collector() is None
    assert profiler.get_profiler() is None and profiler.get_collector() is None
    assert get(traced_remotely.chia_remote()) is False and traced_remotely() is False
    lines = Path(log).read_text().splitlines()
    assert json.loads(lines[0])["kind"] == "session"
    assert {json.loads(line)["kind"] for line in lines[1:]} == {"submit", "run"}


def test_collector_is_pinned_to_the_head_node(cluster: Any, tmp_path: Path) -> None:
    handle = profiler.start_collector(log_dir=tmp_path)
    info = ray.get(handle.info.remote())
    assert info["head_node"] == cluster.node_ids["head"]
    assert info["log_path"].startswith(str(tmp_path))


def test_named_namespace_collector_is_detached_and_found_by_namespace(tmp_path: Path) -> None:
    handle = profiler.start_collector(log_dir=tmp_path, namespace="chia-ops-test")
    assert profiler.get_collector("chia-ops-test") == handle
    assert {"name": profiler.COLLECTOR_NAME, "namespace": "chia-ops-test"} in ray.util.list_named_actors(
        all_namespaces=True
    )
    with pytest.raises(RuntimeError, match=r"already running .* namespace 'chia-ops-test'"):
        profiler.start_collector(namespace="other")
    assert get(add_one.chia_remote(1)) == 2
    assert profiler.stop_collector() is not None
    assert profiler.get_collector("chia-ops-test") is None


def test_full_buffers_drop_rows_and_the_log_says_how_many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_recorder, "MAX_BUFFERED_ROWS", 3)
    profiler.start_collector(log_dir=tmp_path)
    assert [add_one(i) for i in range(50)] == list(range(1, 51))
    log = profiler.stop_collector()
    assert log is not None
    data = export.load_profile(log)
    assert data.dropped > 0
    assert len(data.calls) + data.dropped == 50


def test_flush_ships_buffered_rows_now(tmp_path: Path) -> None:
    handle = profiler.start_collector(log_dir=tmp_path)
    session = profiler.get_profiler()
    assert session is not None
    add_one(1)
    session.flush()
    assert session.buffered == 0
    assert ray.get(handle.info.remote())["records"] >= 1


def test_log_event_rejects_a_bad_name() -> None:
    with pytest.raises(ValueError, match="non-empty str"):
        profiler.log_event("")


def test_start_collector_needs_ray() -> None:
    code = "from chia.trace import profiler; profiler.start_collector()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "RuntimeError: start_collector() needs a Ray connection: call ray.init() first" in result.stderr
