"""Collector lifecycle: idempotent start, head pinning, zero cost when off, bounded buffers."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray

from chia.base import dispatch_hooks
from chia.base.ChiaFunction import ChiaFunction, get
from chia.trace import _logfile, _recorder, export, profiler

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
    header, *records = _logfile.read_records(Path(log))
    assert header["kind"] == "session" and header["format"] == _logfile.FORMAT
    assert {record["kind"] for record in records} == {"submit", "run"}


@pytest.mark.ray_compat
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


def test_log_metric_rejects_bad_names_values_and_steps() -> None:
    with pytest.raises(ValueError, match="log_metric name must be a non-empty str, got ''"):
        profiler.log_metric("", 1.0)
    with pytest.raises(TypeError, match=r"log_metric\('cost'\): value must be a real number \(int or float\), got '3'"):
        profiler.log_metric("cost", "3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value must be a real number"):
        profiler.log_metric("cost", True)
    with pytest.raises(ValueError, match=r"log_metric\('cost'\): value must be finite, got nan"):
        profiler.log_metric("cost", float("nan"))
    with pytest.raises(TypeError, match=r"step must be an int or None, got 1.5"):
        profiler.log_metric("cost", 1.0, step=1.5)  # type: ignore[arg-type]
    profiler.log_metric("cost", 3)  # no collector: a no-op, not an error


def test_tensorboard_mirror_needs_its_extra_or_writes_scalars(tmp_path: Path) -> None:
    """With tensorboardX installed the collector mirrors metrics to an event file; without, the error names the extra."""
    try:
        importlib.import_module("tensorboardX")
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install 'chia-ops\[tensorboard\]'"):
            profiler.start_collector(log_dir=tmp_path, tensorboard_dir=tmp_path / "tb")
        assert profiler.get_collector() is None
        return
    profiler.start_collector(log_dir=tmp_path, tensorboard_dir=tmp_path / "tb")
    for step, cost in enumerate((5.0, 3.0, 2.5)):
        profiler.log_metric("best_cost", cost, step=step)
    profiler.log_metric("unstepped", 1.0)
    profiler.stop_collector()
    assert read_scalars(tmp_path / "tb") == [
        ("best_cost", 0, 5.0),
        ("best_cost", 1, 3.0),
        ("best_cost", 2, 2.5),
        ("unstepped", 0, 1.0),
    ]


def read_scalars(directory: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in the TensorBoard event files of ``directory``."""
    event_class: Any = importlib.import_module("tensorboardX.proto.event_pb2").Event

    scalars = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):  # TFRecord: length (8), its crc (4), payload, payload crc (4)
            length = int.from_bytes(data[offset : offset + 8], "little")
            event = event_class.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            scalars += [(value.tag, event.step, value.simple_value) for value in event.summary.value]
    return sorted(scalars)


def test_start_collector_needs_ray() -> None:
    code = "from chia.trace import profiler; profiler.start_collector()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "RuntimeError: start_collector() needs a Ray connection: call ray.init() first" in result.stderr
