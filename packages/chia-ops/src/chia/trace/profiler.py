"""The chia profiler: record every ChiaFunction call across the cluster.

Owns the collector's lifecycle and the public recording API. A running
collector (a detached actor pinned to the head node) receives, in batches
and off the tasks' critical path, one row per ``chia_remote`` submission, per
function body run (remote or local) and per :func:`log_event`. With no
collector running, nothing is registered on the dispatch seam and profiling
costs nothing. Profiling never changes values or exceptions user code sees.

Example::

    import ray
    from chia.trace import profiler, export

    ray.init()
    profiler.start_collector(log_dir="/tmp/profile")
    ...                                   # chia_remote / get as usual
    profiler.log_event("epoch_done", epoch=3)
    profiler.log_metric("best_cost", 41.5, step=3)
    log = profiler.stop_collector()       # waits for the last batches
    print(export.format_summary(export.summarize(export.load_profile(log))))
"""

from __future__ import annotations

import logging
import math
import numbers
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from chia.trace import _recorder
from chia.trace._collector import ProfileCollectorActor, ray_nodes
from chia.trace._recorder import Recorder, Session
from chia.trace._tensorboard import require_tensorboard

__all__ = [
    "COLLECTOR_NAME",
    "DEFAULT_LOG_DIR",
    "ProfileCollectorActor",
    "Profiler",
    "get_collector",
    "get_profiler",
    "log_event",
    "log_metric",
    "start_collector",
    "stop_collector",
]

logger = logging.getLogger(__name__)

COLLECTOR_NAME = "chia_profile_collector"
"""Ray actor name of the collector (in the namespace given to :func:`start_collector`)."""

DEFAULT_LOG_DIR = str(Path(tempfile.gettempdir()) / "chia-profile")
"""Where the collector spills its log (on the head node) when no ``log_dir`` is given."""

_QUIET_S = 2.5 * _recorder.FLUSH_INTERVAL_S
"""stop_collector waits until no batch arrived for this long: every flusher has had its turn."""

_STRAGGLER_WAIT_S = 10.0
"""How long stop_collector waits for calls submitted but never reported run (lost or still running)."""


@dataclass(frozen=True, slots=True)
class Profiler:
    """This process's side of a running collector session. Experimental.

    Returned by :func:`get_profiler`. ``buffered`` rows wait for the next
    background flush (every half second); :meth:`flush` ships them now.
    """

    session: str
    namespace: str | None
    _recorder: Recorder

    @property
    def buffered(self) -> int:
        """Rows recorded in this process and not yet shipped."""
        return len(self._recorder.rows)

    @property
    def dropped(self) -> int:
        """Rows this process dropped since the last flush because its buffer was full."""
        return self._recorder.dropped

    def flush(self, timeout: float = 30.0) -> None:
        """Ship this process's buffered rows and wait until the collector has stored them."""
        ref = self._recorder.flush_now()
        if ref is not None:
            ray.get(ref, timeout=timeout)


@dataclass(frozen=True, slots=True)
class _DriverSession:
    recorder: Recorder
    handle: Any
    log_dir: str
    remove: Any


_lock = threading.Lock()
_driver: _DriverSession | None = None
_actor_class: Any = None


def _head_node_id() -> str:
    for node in ray_nodes():
        if node.get("Alive") and "node:__internal_head__" in node.get("Resources", {}):
            node_id: str = node["NodeID"]
            return node_id
    raise RuntimeError("no live head node in this Ray cluster; cannot place the profile collector")


def _find(namespace: str | None) -> Any:
    try:
        return ray.get_actor(COLLECTOR_NAME, namespace=namespace)
    except ValueError:
        return None


def _create(log_dir: str, namespace: str | None, tensorboard_dir: str | None) -> Any:
    global _actor_class
    if _actor_class is None:
        _actor_class = ray.remote(ProfileCollectorActor)
    strategy = NodeAffinitySchedulingStrategy(_head_node_id(), soft=False)
    # Detached only in a named namespace: in the job's anonymous namespace no
    # other job could find it, so it lives and dies with this driver.
    return _actor_class.options(
        name=COLLECTOR_NAME,
        namespace=namespace,
        lifetime="detached" if namespace is not None else None,
        get_if_exists=True,
        num_cpus=0,
        scheduling_strategy=strategy,
    ).remote(log_dir, uuid.uuid4().hex[:12], namespace, tensorboard_dir)


def start_collector(
    log_dir: str | Path | None = None, namespace: str | None = None, *, tensorboard_dir: str | Path | None = None
) -> Any:
    """Start (or attach to) the profile collector and profile this process's calls. Experimental.

    Call on the driver after ``ray.init()``. Idempotent: a second call
    returns the same actor handle. If another driver already started a
    collector in ``namespace``, this process attaches to it. ``log_dir`` (on
    the head node; default :data:`DEFAULT_LOG_DIR`) receives
    ``chia-profile-<session>.jsonl``. ``namespace`` is the Ray namespace of the
    named actor: with one, the actor is detached and reachable from other jobs
    until :func:`stop_collector`; without, it lives in this job's namespace and
    dies with this driver (the log stays on disk). ``chia profile export``
    finds a collector in any namespace.

    ``tensorboard_dir`` (on the head node) also receives every
    :func:`log_metric` scalar as a TensorBoard event file; it needs the
    ``chia-ops[tensorboard]`` extra (ImportError naming it otherwise).

    Returns the collector's Ray actor handle.
    """
    global _driver
    if not ray.is_initialized():
        raise RuntimeError("start_collector() needs a Ray connection: call ray.init() first")
    if tensorboard_dir is not None:
        require_tensorboard()
    directory = str(log_dir) if log_dir is not None else DEFAULT_LOG_DIR
    with _lock:
        if _driver is not None:
            running = _driver.recorder.session.namespace
            if running != namespace:
                raise RuntimeError(
                    f"a profile collector is already running from this process in namespace {running!r}; "
                    f"call stop_collector() before starting one in namespace {namespace!r}"
                )
            if log_dir is not None and directory != _driver.log_dir:
                logger.warning(
                    "profile collector already running with log_dir %r; ignoring %r", _driver.log_dir, directory
                )
            return _driver.handle
        mirror = str(tensorboard_dir) if tensorboard_dir is not None else None
        handle = _find(namespace) or _create(directory, namespace, mirror)
        info = ray.get(handle.info.remote())
        session = Session(COLLECTOR_NAME, namespace, info["session"])
        recorder = _recorder.recorder_for(session, is_driver=True)
        remove = recorder.install_driver_hooks(handle)
        _driver = _DriverSession(recorder, handle, str(Path(info["log_path"]).parent), remove)
        logger.info("chia profiler collecting to %s", info["log_path"])
        return handle


def stop_collector(namespace: str | None = None, timeout: float = 30.0) -> str | None:
    """Stop profiling, let the last batches arrive, close the log and kill the collector. Experimental.

    Idempotent. Unregisters this process's hook and wrapper, flushes its
    buffer, waits (up to ``timeout`` seconds) until no process has sent a
    batch for a moment and every submitted call has reported (calls that
    never do are given 10 seconds), then closes the log. Returns the log file's path on
    the head node, or None when no collector was running. Stop after the
    results you want profiled were fetched: rows of tasks still running are lost.
    """
    global _driver
    with _lock:
        session, _driver = _driver, None
    if session is not None:
        session.remove()
        session.recorder.stop(timeout)
        handle = session.handle
        namespace = session.recorder.session.namespace
    else:
        handle = _find(namespace)
        if handle is None:
            return None
    _await_last_batches(handle, timeout)
    path: str = ray.get(handle.close.remote(), timeout=timeout)
    ray.kill(handle)
    _await_name_released(namespace, timeout)
    if session is not None:
        _recorder.forget(session.recorder.session)
    return path


def _await_last_batches(handle: Any, timeout: float) -> None:
    """Poll until no batch came for a moment and every submitted call reported, within bounds."""
    start = time.monotonic()
    while (waited := time.monotonic() - start) < timeout:
        info = ray.get(handle.info.remote(), timeout=timeout)
        if info["idle_s"] >= _QUIET_S and (info["unreported"] == 0 or waited >= _STRAGGLER_WAIT_S):
            return
        time.sleep(_recorder.FLUSH_INTERVAL_S / 2)
    logger.warning("stop_collector: processes still sending after %.0fs; closing the log anyway", timeout)


def _await_name_released(namespace: str | None, timeout: float) -> None:
    """ray.kill is asynchronous: wait until the name is free, so a restart creates a new collector."""
    deadline = time.monotonic() + timeout
    while _find(namespace) is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def get_collector(namespace: str | None = None) -> Any:
    """The running collector's actor handle, or None. Experimental."""
    session = _driver
    if session is not None and session.recorder.session.namespace == namespace:
        return session.handle
    return _find(namespace)


def get_profiler() -> Profiler | None:
    """This process's profiler, or None when this process records nothing. Experimental.

    Set on the driver between :func:`start_collector` and
    :func:`stop_collector`, and on workers running profiled calls.
    """
    recorder = _recorder.active
    if recorder is None:
        return None
    return Profiler(recorder.session.token, recorder.session.namespace, recorder)


def log_event(name: str, **fields: Any) -> None:
    """Record a custom event (with this call's id, node and worker) in the profile. Experimental.

    A no-op when this process records nothing. Field values that are not
    JSON types are stored as their ``repr``. Raises ValueError for an empty
    or non-str ``name``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"log_event name must be a non-empty str, got {name!r}")
    recorder = _recorder.active
    if recorder is not None:
        recorder.log_event(name, fields)


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Record a scalar (e.g. the best cost so far) in the profile, from the loop or a task. Experimental.

    The report plots each name over ``step`` (when every point of it has
    one) or over time; a collector started with ``tensorboard_dir`` mirrors
    it to TensorBoard. A no-op when this process records nothing. Raises
    ValueError for an empty or non-str ``name``, TypeError for a ``value``
    that is not a real number or a ``step`` that is not an int.

    Example::

        for iteration in range(10):
            best = min(best, evaluate(iteration))
            log_metric("best_cost", best, step=iteration)
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"log_metric name must be a non-empty str, got {name!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"log_metric({name!r}): value must be a real number (int or float), got {value!r}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, numbers.Integral)):
        raise TypeError(f"log_metric({name!r}): step must be an int or None, got {step!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"log_metric({name!r}): value must be finite, got {value!r}")
    recorder = _recorder.active
    if recorder is not None:
        recorder.log_metric(name, number, None if step is None else int(step))
