"""The per-process side of profiling: record calls cheaply, ship them in batches.

Owns the dispatch hooks and call wrapper registered on
:mod:`chia.base.dispatch_hooks`, the per-process event buffer and the
background thread that flushes it to the collector actor. Everything on the
task's critical path is an append of a row to a deque; the flusher thread
turns rows into flat tuples of primitives (see :mod:`chia.trace._wire`) and
sends them fire-and-forget; the collector does the JSON encoding.

A dispatch ships nothing extra to the worker: the submit row learns the Ray
task id from :meth:`DispatchCall.on_submitted`, the worker's run row records
the task id it runs, and :mod:`chia.trace.export` joins the two by task id.
(Every extra Ray argument costs a task tens of microseconds on each side.)
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray

from chia.base import dispatch_hooks
from chia.base.dispatch_hooks import CallInfo, DispatchCall
from chia.trace._wire import EVENT, METRIC, RUN, SUBMIT

logger = logging.getLogger(__name__)

CALL_ID_KEY = "trace.id"
"""DispatchCall.context key holding the submit row's call id while the hook chain runs.

Hooks that replace the dispatch (bypass) annotate the context only when it
already travels, so the key is there for them; :data:`STRIP_PRIORITY` removes
it from calls no hook replaced, which then ship no context at all. A call that
does ship it runs under that id on the worker."""

HOOK_PRIORITY = -1000
"""Runs before hooks that may replace the dispatch (bypass), which end the chain."""

STRIP_PRIORITY = 1 << 30
"""Runs after every other hook: only calls no hook replaced get here."""

SUBMIT_WAIT_S = 10.0
"""How long the flusher holds back a submit row whose task id is not known yet.

Submission normally takes microseconds (longer when Ray first exports a big
function); a dispatch that a hook replaced without submitting a task never
learns one and ships after this delay (or at stop)."""

_TASK = 8
"""Index of the task id in a buffered submit row (filled by the on_submitted callback)."""

_UNSUBMITTED: Any = object()
"""Task-id placeholder of a submit row whose dispatch has not submitted yet."""

FLUSH_INTERVAL_S = 0.5
MAX_BUFFERED_ROWS = 200_000
ROWS_PER_BATCH = 250
"""Rows per ``record`` call: a batch stays under Ray's inline-argument limit (100 KB), so it travels in
the task itself, never through the object store (whose pages a producer that keeps putting big batches
ends up holding resident, gigabytes of them over a long sweep)."""

MAX_BATCHES_IN_FLIGHT = 16
"""Batches shipped and not yet stored by the collector: beyond this the flusher waits for the oldest, so a
collector that falls behind holds back this process's rows (bounded by :data:`MAX_BUFFERED_ROWS`) instead of
Ray queueing ever more calls in it."""
WORKER_IDLE_EXIT_S = 30.0
"""A worker's flusher stops (and unregisters the worker-side hook) after this long without events."""

# Unique across processes without coordination: a random 40-bit prefix per process.
_call_ids = itertools.count(random.getrandbits(40) << 23)


@dataclass(frozen=True, slots=True)
class Session:
    """Names the collector a recorder ships to; travels (pickled) with the call wrapper."""

    name: str
    namespace: str | None
    token: str


class _Stack(threading.local):
    """Profiler call ids executing on this thread (innermost last)."""

    def __init__(self) -> None:
        self.ids: list[int] = []


class Recorder:
    """Buffers this process's profile rows for one collector session."""

    def __init__(self, session: Session, *, is_driver: bool) -> None:
        self.session = session
        self.is_driver = is_driver
        self.rows: deque[Sequence[Any]] = deque()
        self.dropped = 0
        self.in_flight = 0  # calls running under the wrapper (best effort: updated without a lock)
        self.wrapper = TraceWrapper(session, self)
        self._stack = _Stack()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._remove_hook: Callable[[], None] | None = None
        self._collector: Any = None
        self._process: dict[str, Any] | None = None
        self._runtime = ray.get_runtime_context()
        self._in_flight: deque[Any] = deque()  # refs of record calls not yet known stored

    # --- recording (hot path) ---------------------------------------------------

    def current_call_id(self) -> int | None:
        ids = self._stack.ids
        return ids[-1] if ids else None

    def _push(self, row: Sequence[Any]) -> None:
        if len(self.rows) >= MAX_BUFFERED_ROWS:
            self.dropped += 1
            return
        self.rows.append(row)

    def on_dispatch(self, call: DispatchCall) -> None:
        """Dispatch hook: record the submission; its task id arrives once submitted. Never replaces."""
        ids = self._stack.ids
        if not self.is_driver and not ids:
            return None  # a worker-side hook outside any traced call: stay out of the way
        call_id = next(_call_ids)
        call.context[CALL_ID_KEY] = call_id
        deps = _dependency_task_ids(call.args, call.kwargs) if (call.args or call.kwargs) else None
        row = [
            SUBMIT,
            call_id,
            call.display_name or call.qualname,
            call.tag,
            time.time(),
            call.options,
            deps,
            ids[-1] if ids else None,
            _UNSUBMITTED,
            call.args,
            call.kwargs,
        ]

        def submitted(ref: Any) -> None:
            row[_TASK] = _task_of(ref)

        call.on_submitted(submitted)
        self._push(row)
        return None

    @staticmethod
    def strip_context(call: DispatchCall) -> None:
        """Last dispatch hook: a call no hook replaced ships no profiler context."""
        call.context.pop(CALL_ID_KEY, None)
        return None

    def run_call(self, info: CallInfo, proceed: Callable[[], Any]) -> Any:
        """Call wrapper body: time the function, record where and how it ran."""
        self.ensure_started()
        ids = self._stack.ids
        caller = ids[-1] if ids else None
        call_id = info.context.get(CALL_ID_KEY) if info.context else None
        if call_id is None:
            call_id = next(_call_ids)
        task_id = self._runtime.get_task_id() if info.remote else None
        ids.append(call_id)
        self.in_flight += 1
        error: str | None = None
        start = time.time()
        try:
            return proceed()
        except BaseException as exc:
            error = type(exc).__qualname__
            raise
        finally:
            end = time.time()
            ids.pop()
            self.in_flight -= 1
            self._push(
                (
                    RUN,
                    call_id,
                    info.display_name or info.qualname,
                    info.tag,
                    start,
                    end,
                    task_id,
                    info.remote,
                    info.replaced,
                    error,
                    info.context,
                    caller,
                    None if info.remote else info,
                )
            )

    def log_event(self, name: str, fields: dict[str, Any]) -> None:
        self.ensure_started()
        self._push((EVENT, name, time.time(), fields, self.current_call_id()))

    def log_metric(self, name: str, value: float, step: int | None) -> None:
        self.ensure_started()
        self._push((METRIC, name, time.time(), value, step, self.current_call_id()))

    # --- lifecycle -----------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the flusher (and, on workers, the hook for nested dispatches)."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None or self._stopping:
                return
            if not self.is_driver:
                self._remove_hook = self._add_hooks()
            thread = threading.Thread(target=self._flush_loop, name="chia-trace-flusher", daemon=True)
            self._thread = thread
            thread.start()

    def install_driver_hooks(self, collector: Any) -> Callable[[], None]:
        """Register the hooks and the wrapper in this (driver) process; returns the remover."""
        self._collector = collector
        remove_hooks = self._add_hooks()
        remove_wrapper = dispatch_hooks.add_call_wrapper(self.wrapper)
        self.ensure_started()

        def remove() -> None:
            remove_wrapper()
            remove_hooks()

        return remove

    def _add_hooks(self) -> Callable[[], None]:
        """Register the recording hook and the context-stripping hook; returns their remover."""
        remove_record = dispatch_hooks.add_dispatch_hook(self.on_dispatch, priority=HOOK_PRIORITY)
        remove_strip = dispatch_hooks.add_dispatch_hook(self.strip_context, priority=STRIP_PRIORITY)

        def remove() -> None:
            remove_strip()
            remove_record()

        return remove

    def stop(self, timeout: float) -> None:
        """Stop the flusher after a last flush, waiting until the collector has it."""
        with self._lock:
            self._stopping = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._wake.set()
            thread.join(timeout)
        last = self.flush_now(final=True)
        if last is not None:
            ray.get(last, timeout=timeout)

    # --- flushing (background thread) -------------------------------------------------

    def _flush_loop(self) -> None:
        try:
            self._collector_handle()  # look the actor up now: the first batch should not wait for it
        except Exception:
            logger.debug("chia profiler: collector lookup failed; retrying at the first flush", exc_info=True)
        idle_since = time.monotonic()
        while not self._stopping:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            if self._stopping:
                return
            try:
                sent = self.flush_now() is not None
            except Exception:
                logger.warning("chia profiler: could not ship events to the collector", exc_info=True)
                sent = False
            now = time.monotonic()
            if sent:
                idle_since = now
            elif not self.is_driver and now - idle_since > WORKER_IDLE_EXIT_S and self.in_flight <= 0:
                self._retire_worker()
                return

    def _retire_worker(self) -> None:
        with self._lock:
            if self._remove_hook is not None:
                self._remove_hook()
                self._remove_hook = None
            self._thread = None
            self._collector = None
        forget(self.session)

    def flush_now(self, *, final: bool = False) -> Any:
        """Ship what is buffered now; returns the (unawaited) ref of the last actor call, or None.

        Rows go in batches of at most :data:`ROWS_PER_BATCH`, with at most
        :data:`MAX_BATCHES_IN_FLIGHT` unstored batches at a time (the collector
        stores a process's batches in order, so the last ref stored means all
        were). Submit rows still waiting for their task id stay buffered (up to
        :data:`SUBMIT_WAIT_S`) unless ``final``.
        """
        with self._flush_lock:
            count = len(self.rows)
            if not count and not self.dropped:
                return None
            collector = self._collector_handle()
            if collector is None:
                return None
            process = self._process_fields()
            resources = _ResourceCache()
            rows = self.rows
            held: list[Sequence[Any]] = []
            hold_after = None if final else time.time() - SUBMIT_WAIT_S
            last = None
            while count or self.dropped:
                batch: list[tuple[Any, ...]] = []
                while count and len(batch) < ROWS_PER_BATCH:
                    row = rows.popleft()
                    count -= 1
                    if (
                        hold_after is not None
                        and row[0] == SUBMIT
                        and row[_TASK] is _UNSUBMITTED
                        and row[4] > hold_after
                    ):
                        held.append(row)
                    else:
                        batch.append(_to_wire(row, resources))
                if not batch and not self.dropped:
                    continue
                dropped, self.dropped = self.dropped, 0
                self._await_room()
                last = collector.record.remote(process, batch, dropped)
                self._in_flight.append(last)
            rows.extendleft(reversed(held))
            return last

    def _await_room(self) -> None:
        """Wait until fewer than :data:`MAX_BATCHES_IN_FLIGHT` batches are unstored (or the oldest failed)."""
        in_flight = self._in_flight
        while in_flight:
            done, _ = ray.wait([in_flight[0]], timeout=0 if len(in_flight) < MAX_BATCHES_IN_FLIGHT else 30.0)
            if not done and len(in_flight) < MAX_BATCHES_IN_FLIGHT:
                return
            in_flight.popleft()  # stored, failed, or not stored within 30 s: stop holding it

    def _collector_handle(self) -> Any:
        if self._collector is None:
            try:
                self._collector = ray.get_actor(self.session.name, namespace=self.session.namespace)
            except ValueError:
                logger.debug("chia profiler: collector %s is gone; dropping events", self.session.name)
                return None
        return self._collector

    def _process_fields(self) -> dict[str, Any]:
        if self._process is None:
            context = ray.get_runtime_context()
            self._process = {
                "node": context.get_node_id(),
                "worker": context.get_worker_id(),
                "pid": os.getpid(),
                "driver": self.is_driver,
            }
        return self._process


def _task_of(ref: Any) -> Any:
    """The Ray task id behind what a submission returned (a ref, or a list of them for num_returns > 1)."""
    if isinstance(ref, list):
        ref = ref[0] if ref else None
    return ref.task_id() if isinstance(ref, ray.ObjectRef) else None


def _dependency_task_ids(args: Iterable[Any], kwargs: Mapping[str, Any]) -> list[str] | None:
    """Task ids producing the top-level ObjectRef arguments (Ray resolves only those)."""
    deps = [arg.task_id().hex() for arg in args if isinstance(arg, ray.ObjectRef)]
    deps.extend(value.task_id().hex() for value in kwargs.values() if isinstance(value, ray.ObjectRef))
    return deps or None


class _ResourceCache:
    """Resources requested, computed once per options mapping within one flush."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Mapping[str, Any], dict[str, float]]] = {}

    def __call__(self, options: Mapping[str, Any]) -> dict[str, float]:
        hit = self._seen.get(id(options))
        if hit is not None and hit[0] is options:
            return hit[1]
        requested: dict[str, float] = {}
        for key, label in (("num_cpus", "CPU"), ("num_gpus", "GPU"), ("memory", "memory")):
            value = options.get(key)
            if value is not None:
                requested[label] = float(value)
        for name, amount in (options.get("resources") or {}).items():
            requested[str(name)] = float(amount)
        self._seen[id(options)] = (options, requested)
        return requested


def _json_safe(fields: dict[str, Any]) -> Any:
    """User event fields as JSON types (others as their repr), so the batch always pickles."""
    return json.loads(json.dumps(fields, default=repr))


_ARGS_SUMMARY_LIMIT = 120
_SHOWN_BY_VALUE = (bool, int, float, type(None))


def _describe(value: Any) -> str:
    """One argument, in a few characters: numbers by value, everything else by type and size.

    Strings and containers are never shown by value, so a secret passed as an
    argument does not land in the profile.
    """
    if isinstance(value, _SHOWN_BY_VALUE):
        text = f"{value:.6g}" if isinstance(value, float) else repr(value)
        return text if len(text) <= 24 else type(value).__name__
    if isinstance(value, ray.ObjectRef):
        return "ref"
    if isinstance(value, str | bytes | bytearray | list | tuple | dict | set | frozenset):
        return f"{type(value).__name__}[{len(value)}]"
    return type(value).__name__


def args_summary(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """``"str[12], dict[3], 4, hang=str[0]"``: what a call was given, bounded; None with no arguments."""
    if not args and not kwargs:
        return None
    parts = [_describe(value) for value in args]
    parts.extend(f"{name}={_describe(value)}" for name, value in kwargs.items())
    text = ", ".join(parts)
    return text if len(text) <= _ARGS_SUMMARY_LIMIT else text[: _ARGS_SUMMARY_LIMIT - 3] + "..."


def _to_wire(row: Sequence[Any], resources: _ResourceCache) -> tuple[Any, ...]:
    kind = row[0]
    if kind == SUBMIT:
        _, call_id, qualname, tag, ts, options, deps, caller, task, args, kwargs = row
        task_id = None if task is None or task is _UNSUBMITTED else task.hex()
        summary = args_summary(args, kwargs)
        return (SUBMIT, call_id, qualname, tag, ts, resources(options), deps, caller, task_id, summary)
    if kind == RUN:
        _, call_id, qualname, tag, start, end, task_id, remote, replaced, error, context, caller, local = row
        return (
            RUN,
            call_id,
            qualname,
            tag,
            start,
            end,
            task_id,
            remote,
            bool(replaced or context.get("bypass.bypassed")),
            context.get("bypass.provider"),
            bool(context.get("cache.write")),
            error,
            caller,
            None if local is None else args_summary(local.args, local.kwargs),
        )
    if kind == METRIC:
        return tuple(row)
    _, name, ts, fields, call_id = row
    return (EVENT, name, ts, _json_safe(fields), call_id)


class TraceWrapper:
    """The call wrapper shipped with traced dispatches; pickles as its session."""

    __slots__ = ("recorder", "session")

    def __init__(self, session: Session, recorder: Recorder) -> None:
        self.session = session
        self.recorder = recorder

    def __call__(self, call: CallInfo, proceed: Callable[[], Any], /) -> Any:
        return self.recorder.run_call(call, proceed)

    def __reduce__(self) -> tuple[Any, ...]:
        session = self.session
        return (_wrapper_for, (session.name, session.namespace, session.token))


# --- this process's recorders -------------------------------------------------------

_recorders: dict[Session, Recorder] = {}
_recorders_lock = threading.Lock()
active: Recorder | None = None
"""The recorder that most recently recorded in this process (log_event's target)."""


def recorder_for(session: Session, *, is_driver: bool = False) -> Recorder:
    global active
    recorder = _recorders.get(session)
    if recorder is None:
        with _recorders_lock:
            recorder = _recorders.get(session)
            if recorder is None:
                recorder = Recorder(session, is_driver=is_driver)
                _recorders[session] = recorder
    active = recorder
    return recorder


def _wrapper_for(name: str, namespace: str | None, token: str) -> TraceWrapper:
    return recorder_for(Session(name, namespace, token)).wrapper


def forget(session: Session) -> None:
    global active
    with _recorders_lock:
        recorder = _recorders.pop(session, None)
        if active is recorder:
            active = None
