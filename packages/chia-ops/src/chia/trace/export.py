"""Reading a profile log back: call records, Chrome traces and per-function summaries.

Owns the interpretation of the logs the collector writes (both on-disk
formats, see :mod:`chia.trace._logfile`). Needs no cluster: point
:func:`load_profile` at a log file or a ``log_dir``. Durations in documents
and tables are milliseconds, and every key or column says so (``p50_ms``).

Example::

    from chia.trace import export

    data = export.load_profile("/tmp/profile")
    Path("trace.json").write_text(json.dumps(export.chrome_trace(data)))  # open in Perfetto
    print(export.format_summary(export.summarize(data)))
"""

from __future__ import annotations

import gc
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chia.trace._logfile import read_records

__all__ = [
    "CANCEL_ERRORS",
    "FORMATS",
    "MODES",
    "SUMMARY_COLUMNS",
    "CallRecord",
    "CallStats",
    "FunctionSummary",
    "LoggedEvent",
    "MetricPoint",
    "ProfileData",
    "SessionFacts",
    "chrome_trace",
    "format_summary",
    "format_table",
    "load_profile",
    "profile_document",
    "render",
    "summarize",
    "summary_document",
]

FORMATS = ("chrome", "json")
"""Export formats understood by :func:`render` (and ``chia profile export --format``)."""

MODES = ("real", "cached", "replayed")
"""How a call that ran ran: for real, for real and written to the cache, or replayed by a bypass provider."""

CANCEL_ERRORS = frozenset({"TaskCancelledError", "CancelledError", "KeyboardInterrupt"})
"""Exception types that mean a call was cancelled (``chia_cancel``, ``ray.cancel``) rather than failed."""

_LOG_GLOB = "chia-profile-*.jsonl"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One ChiaFunction call: where and when it was submitted and ran. Experimental.

    Times are Unix seconds. ``submitted`` is None for local calls (and for
    remote calls dispatched where no profiler hook ran); ``started`` and
    ``finished`` are None when the body never ran (lost task, dispatch
    replaced without a task). ``task_id`` is the Ray task that ran (or was
    submitted for) the call; the submission and the run of a remote call are
    matched by it. ``deps`` are the call ids whose ObjectRefs were passed as
    top-level arguments; ``caller`` is the call this one was dispatched or
    called from. ``args`` summarizes the arguments by type and size (numbers
    by value; never the text of strings).
    """

    call_id: int
    function: str
    tag: str | None = None
    submitted: float | None = None
    started: float | None = None
    finished: float | None = None
    node: str | None = None
    worker: str | None = None
    pid: int | None = None
    task_id: str | None = None
    remote: bool = True
    bypassed: bool = False
    provider: str | None = None
    cache_write: bool = False
    error: str | None = None
    caller: int | None = None
    deps: tuple[int, ...] = ()
    resources: Mapping[str, float] = field(default_factory=dict)
    submit_node: str | None = None
    submit_worker: str | None = None
    args: str | None = None

    @property
    def mode(self) -> str:
        """One of :data:`MODES`: ``replayed`` (bypassed), ``cached`` (written to the cache) or ``real``."""
        if self.bypassed:
            return "replayed"
        return "cached" if self.cache_write else "real"

    @property
    def status(self) -> str:
        """``ok``, ``failed`` (raised), ``cancelled`` (see :data:`CANCEL_ERRORS`) or ``unfinished`` (never reported a finish)."""
        if self.started is None or self.finished is None:
            return "unfinished"
        if self.error is None:
            return "ok"
        return "cancelled" if self.error in CANCEL_ERRORS else "failed"

    @property
    def duration(self) -> float | None:
        """Seconds the body ran, or None when it did not run."""
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    @property
    def queue_time(self) -> float | None:
        """Seconds from submission to the body starting (remote calls only)."""
        if self.submitted is None or self.started is None:
            return None
        return max(0.0, self.started - self.submitted)


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """A custom event from :func:`chia.trace.profiler.log_event`. Experimental."""

    name: str
    ts: float
    fields: Mapping[str, Any]
    call_id: int | None
    node: str | None
    worker: str | None
    pid: int | None


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """A scalar from :func:`chia.trace.profiler.log_metric`. Experimental."""

    name: str
    value: float
    step: int | None
    ts: float
    call_id: int | None
    node: str | None
    worker: str | None
    pid: int | None


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """When, where and with what a profiling session ran (from its log's header). Experimental.

    ``versions`` maps the chia distributions installed on the head node to
    their versions; ``nodes`` and ``resources`` are the cluster's size when
    the collector started (None and empty in logs of the first format).
    """

    session: str
    started: float
    head_node: str
    host: str | None = None
    ray_version: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    nodes: int | None = None
    resources: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProfileData:
    """Everything one or more profile logs recorded. Experimental."""

    calls: tuple[CallRecord, ...]
    events: tuple[LoggedEvent, ...]
    head_nodes: frozenset[str]
    drivers: frozenset[str]
    sessions: tuple[str, ...]
    dropped: int
    metrics: tuple[MetricPoint, ...] = ()
    facts: tuple[SessionFacts, ...] = ()


@dataclass(frozen=True, slots=True)
class CallStats:
    """Run times of one function's calls of one mode (see :data:`MODES`). Experimental.

    Durations in seconds; percentiles are nearest-rank and None with no
    calls; ``queue_p50`` is the median submit-to-start delay of the remote
    ones. ``failed`` and ``cancelled`` count the calls that raised.
    """

    count: int = 0
    total: float = 0.0
    p50: float | None = None
    p95: float | None = None
    queue_p50: float | None = None
    failed: int = 0
    cancelled: int = 0

    @classmethod
    def of(cls, calls: Sequence[CallRecord]) -> CallStats:
        """The statistics of ``calls`` (those that ran)."""
        durations = sorted(d for d in (call.duration for call in calls) if d is not None)
        queues = sorted(q for q in (call.queue_time for call in calls) if q is not None)
        return cls(
            count=len(durations),
            total=sum(durations),
            p50=_percentile(durations, 0.5) if durations else None,
            p95=_percentile(durations, 0.95) if durations else None,
            queue_p50=_percentile(queues, 0.5) if queues else None,
            failed=sum(call.status == "failed" for call in calls),
            cancelled=sum(call.status == "cancelled" for call in calls),
        )

    def to_json(self) -> dict[str, Any]:
        """The statistics with durations in milliseconds (``p50_ms``...)."""
        return {
            "calls": self.count,
            "total_ms": _ms(self.total),
            "p50_ms": _ms(self.p50),
            "p95_ms": _ms(self.p95),
            "queue_p50_ms": _ms(self.queue_p50),
            "failed": self.failed,
            "cancelled": self.cancelled,
        }

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> CallStats:
        """Inverse of :meth:`to_json`."""
        return cls(
            row["calls"],
            _seconds(row["total_ms"]) or 0.0,
            _seconds(row["p50_ms"]),
            _seconds(row["p95_ms"]),
            _seconds(row["queue_p50_ms"]),
            row["failed"],
            row["cancelled"],
        )


_NO_CALLS = CallStats()


@dataclass(frozen=True, slots=True)
class FunctionSummary:
    """Per-function totals over the calls that ran. Experimental.

    ``count`` counts calls whose body ran; ``unfinished`` those submitted but
    never seen running. Durations in seconds. ``total``, ``p50``, ``p95`` and
    ``queue_p50`` (the median submit-to-start delay of remote calls, None
    with none) are over every call that ran, real and replayed alike;
    ``real``, ``cached`` and ``replayed`` keep the three apart (see
    :data:`MODES`), which is what the table and the report show.
    ``errors`` counts calls that raised, ``cancelled`` of them were cancelled.
    """

    function: str
    count: int
    total: float
    p50: float
    p95: float
    queue_p50: float | None
    nodes: tuple[str, ...]
    bypassed: int
    errors: int
    unfinished: int
    cancelled: int = 0
    real: CallStats = _NO_CALLS
    cached: CallStats = _NO_CALLS
    replayed: CallStats = _NO_CALLS

    def by_mode(self) -> dict[str, CallStats]:
        """``{"real": ..., "cached": ..., "replayed": ...}``."""
        return {"real": self.real, "cached": self.cached, "replayed": self.replayed}

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON object, durations in milliseconds (``total_ms``, ``p50_ms``...)."""
        return {
            "function": self.function,
            "calls": self.count,
            "total_ms": _ms(self.total),
            "p50_ms": _ms(self.p50),
            "p95_ms": _ms(self.p95),
            "queue_p50_ms": _ms(self.queue_p50),
            "nodes": list(self.nodes),
            "bypassed": self.bypassed,
            "errors": self.errors,
            "cancelled": self.cancelled,
            "unfinished": self.unfinished,
            **{mode: stats.to_json() for mode, stats in self.by_mode().items()},
        }

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> FunctionSummary:
        """Inverse of :meth:`to_json` (what ``chia profile summary`` gets from a live collector)."""
        return cls(
            function=row["function"],
            count=row["calls"],
            total=_seconds(row["total_ms"]) or 0.0,
            p50=_seconds(row["p50_ms"]) or 0.0,
            p95=_seconds(row["p95_ms"]) or 0.0,
            queue_p50=_seconds(row["queue_p50_ms"]),
            nodes=tuple(row["nodes"]),
            bypassed=row["bypassed"],
            errors=row["errors"],
            unfinished=row["unfinished"],
            cancelled=row["cancelled"],
            real=CallStats.from_json(row["real"]),
            cached=CallStats.from_json(row["cached"]),
            replayed=CallStats.from_json(row["replayed"]),
        )


def _ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds rounded to the microsecond (None stays None)."""
    return None if seconds is None else round(seconds * 1e3, 3)


def _seconds(milliseconds: float | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1e3


# --- loading ---------------------------------------------------------------------------


def _log_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob(_LOG_GLOB))
        if not files:
            raise FileNotFoundError(f"no profile logs ({_LOG_GLOB}) in directory {str(path)!r}")
        return files
    if not path.exists():
        raise FileNotFoundError(f"profile log {str(path)!r} does not exist (give a {_LOG_GLOB} file or its directory)")
    return [path]


def _session_facts(header: Mapping[str, Any]) -> SessionFacts:
    return SessionFacts(
        session=header["session"],
        started=header["ts"],
        head_node=header["head_node"],
        host=header.get("host"),
        ray_version=header.get("ray"),
        versions=header.get("versions") or {},
        nodes=header.get("nodes"),
        resources=header.get("resources") or {},
    )


def load_profile(path: str | Path) -> ProfileData:
    """Read a profile log file, or every ``chia-profile-*.jsonl`` in a directory. Experimental.

    Raises FileNotFoundError when there is no log there and ValueError
    (naming file and line) for a line that is not a profile record.
    """
    # A log of 100,000 calls makes millions of dicts and lists, none in a cycle: the collector's
    # passes over them, each over more of them, took a third of the load (2.3 s against 1.5 s
    # without; 0.15 s against 0.11 s at 10,000 calls). Paused while loading, as it was found.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load_profile(path)
    finally:
        if collecting:
            gc.enable()


def _load_profile(path: str | Path) -> ProfileData:
    submits: dict[int, dict[str, Any]] = {}
    runs: dict[int, dict[str, Any]] = {}
    events: list[LoggedEvent] = []
    metrics: list[MetricPoint] = []
    heads: set[str] = set()
    drivers: set[str] = set()
    facts: list[SessionFacts] = []
    dropped = 0
    records = (record for file in _log_files(Path(path)) for record in read_records(file))
    for record in records:
        kind = record["kind"]
        if kind == "submit":
            submits[record["id"]] = record
        elif kind == "run":
            runs[record["id"]] = record
        elif kind == "event":
            events.append(
                LoggedEvent(
                    record["name"],
                    record["ts"],
                    record.get("fields") or {},
                    record.get("call"),
                    record.get("node"),
                    record.get("worker"),
                    record.get("pid"),
                )
            )
        elif kind == "metric":
            metrics.append(
                MetricPoint(
                    record["name"],
                    record["value"],
                    record.get("step"),
                    record["ts"],
                    record.get("call"),
                    record.get("node"),
                    record.get("worker"),
                    record.get("pid"),
                )
            )
        elif kind == "session":
            facts.append(_session_facts(record))
            heads.add(record["head_node"])
        else:
            dropped += int(record["count"])
        if record.get("driver"):
            drivers.add(record["worker"])
    joined = _join(submits, runs)
    call_by_task = {
        record["task"]: call_id
        for call_id, pair in joined.items()
        for record in pair
        if record is not None and record.get("task")
    }
    calls = [_call_record(call_id, submit, run, call_by_task) for call_id, (submit, run) in joined.items()]
    calls.sort(key=lambda call: call.started or call.submitted or 0.0)
    events.sort(key=lambda event: event.ts)
    metrics.sort(key=lambda point: point.ts)
    return ProfileData(
        tuple(calls),
        tuple(events),
        frozenset(heads),
        frozenset(drivers),
        tuple(fact.session for fact in facts),
        dropped,
        tuple(metrics),
        tuple(facts),
    )


def _join(
    submits: Mapping[int, dict[str, Any]], runs: Mapping[int, dict[str, Any]]
) -> dict[int, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Pair each submit row with the run row of its Ray task; keyed by the call's id.

    A call that ran is known by its run row's id (what callers and events on
    the worker refer to). A submit row whose task has no run row pairs by
    call id when a run row has the same id (logs of earlier versions, which
    had no task id on submit rows), else stands alone.
    """
    run_by_task = {run["task"]: call_id for call_id, run in runs.items() if run.get("task")}
    joined: dict[int, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {
        call_id: (None, run) for call_id, run in runs.items()
    }
    for call_id, submit in submits.items():
        run_id = run_by_task.get(submit.get("task"), call_id)
        pair = joined.get(run_id)
        if pair is None:
            joined[call_id] = (submit, None)
        elif pair[0] is None:
            joined[run_id] = (submit, pair[1])
    return joined


def _call_record(
    call_id: int, submit: dict[str, Any] | None, run: dict[str, Any] | None, call_by_task: Mapping[str, int]
) -> CallRecord:
    submit = submit or {}
    run = run or {}
    deps = tuple(call_by_task[task] for task in submit.get("deps", ()) if task in call_by_task)
    return CallRecord(
        call_id=call_id,
        function=run.get("fn") or submit.get("fn") or "?",
        tag=run.get("tag", submit.get("tag")),
        submitted=submit.get("ts"),
        started=run.get("start"),
        finished=run.get("end"),
        node=run.get("node"),
        worker=run.get("worker"),
        pid=run.get("pid"),
        task_id=run.get("task") or submit.get("task"),
        remote=run.get("remote", True),
        bypassed=bool(run.get("bypassed")),
        provider=run.get("provider"),
        cache_write=bool(run.get("cache_write")),
        error=run.get("error"),
        caller=submit.get("caller", run.get("caller")),
        deps=deps,
        resources=submit.get("resources", {}),
        submit_node=submit.get("node"),
        submit_worker=submit.get("worker"),
        args=submit.get("args") or run.get("args"),
    )


# --- Chrome trace-event format ----------------------------------------------------------


def _slice_args(call: CallRecord) -> dict[str, Any]:
    args: dict[str, Any] = {"call_id": call.call_id, "function": call.function, "tag": call.tag}
    if call.args is not None:
        args["args"] = call.args
    if call.queue_time is not None:
        args["queue_ms"] = round(call.queue_time * 1e3, 3)
    if call.resources:
        args["resources"] = dict(call.resources)
    if call.bypassed:
        args.update(bypassed=True, provider=call.provider)
    if call.cache_write:
        args["cache_write"] = True
    if call.error:
        args["error"] = call.error
    if call.caller is not None:
        args["caller"] = call.caller
    return args


def chrome_trace(data: ProfileData) -> dict[str, Any]:
    """The profile as Chrome trace-event JSON (Perfetto, ``chrome://tracing``). Experimental.

    One process track per node (the head first), one thread track per Ray
    worker (drivers labelled), a slice per call, flow arrows from each
    ObjectRef's producer to the call that consumed it, and an instant event
    per :func:`~chia.trace.profiler.log_event`.
    """
    ran = [call for call in data.calls if call.started is not None and call.finished is not None]
    stamps = [call.started for call in ran if call.started is not None] + [event.ts for event in data.events]
    origin = min(stamps, default=0.0)
    tracks = _Tracks(data)
    trace: list[dict[str, Any]] = []
    by_id = {call.call_id: call for call in ran}

    def micros(ts: float) -> float:
        return round((ts - origin) * 1e6, 3)

    for call in ran:
        assert call.started is not None and call.finished is not None
        pid, tid = tracks.of(call.node, call.worker, call.pid)
        args = _slice_args(call)
        category = "bypassed" if call.bypassed else ("remote" if call.remote else "local")
        name = call.function.rsplit(".", 1)[-1] + (f" [{call.tag}]" if call.tag else "")
        trace.append(
            {
                "name": name,
                "cat": category,
                "ph": "X",
                "ts": micros(call.started),
                "dur": round((call.finished - call.started) * 1e6, 3),
                "pid": pid,
                "tid": tid,
                "args": args,
            }
        )
    flow_ids = iter(range(1, 1 << 62))
    for call in ran:
        assert call.started is not None
        for dep in dict.fromkeys(call.deps):  # one arrow per producer, however many of its refs were passed
            producer = by_id.get(dep)
            if producer is None or producer.started is None or producer.finished is None:
                continue
            flow = next(flow_ids)
            span = producer.finished - producer.started
            start_pid, start_tid = tracks.of(producer.node, producer.worker, producer.pid)
            end_pid, end_tid = tracks.of(call.node, call.worker, call.pid)
            trace.append(
                {
                    "name": "ObjectRef",
                    "cat": "dependency",
                    "ph": "s",
                    "id": flow,
                    "ts": micros(producer.finished - min(span / 2, 1e-6)),
                    "pid": start_pid,
                    "tid": start_tid,
                }
            )
            trace.append(
                {
                    "name": "ObjectRef",
                    "cat": "dependency",
                    "ph": "f",
                    "bp": "e",
                    "id": flow,
                    "ts": micros(call.started),
                    "pid": end_pid,
                    "tid": end_tid,
                }
            )
    for event in data.events:
        pid, tid = tracks.of(event.node, event.worker, event.pid)
        args = {**event.fields, "call_id": event.call_id} if event.call_id is not None else dict(event.fields)
        trace.append(
            {
                "name": event.name,
                "cat": "event",
                "ph": "i",
                "s": "t",
                "ts": micros(event.ts),
                "pid": pid,
                "tid": tid,
                "args": args,
            }
        )
    return {
        "traceEvents": tracks.metadata() + trace,
        "displayTimeUnit": "ms",
        "otherData": {"origin_unix_s": origin, "sessions": list(data.sessions), "dropped_rows": data.dropped},
    }


class _Tracks:
    """Numbers nodes (pids) and workers (tids) in order of appearance, head first."""

    def __init__(self, data: ProfileData) -> None:
        self._heads = data.head_nodes
        self._drivers = data.drivers
        self._nodes: dict[str | None, int] = {}
        self._workers: dict[tuple[str | None, str | None], tuple[int, int | None]] = {}
        for head in sorted(data.head_nodes):
            self._node(head)

    def _node(self, node: str | None) -> int:
        if node not in self._nodes:
            self._nodes[node] = len(self._nodes) + 1
        return self._nodes[node]

    def of(self, node: str | None, worker: str | None, pid: int | None) -> tuple[int, int]:
        node_index = self._node(node)
        key = (node, worker)
        if key not in self._workers:
            self._workers[key] = (sum(1 for known in self._workers if known[0] == node) + 1, pid)
        return node_index, self._workers[key][0]

    def metadata(self) -> list[dict[str, Any]]:
        meta: list[dict[str, Any]] = []
        for node, index in self._nodes.items():
            label = f"node {node[:12]}" if node else "node ?"
            if node in self._heads:
                label += " (head)"
            meta.append({"name": "process_name", "ph": "M", "pid": index, "tid": 0, "args": {"name": label}})
            meta.append(
                {"name": "process_sort_index", "ph": "M", "pid": index, "tid": 0, "args": {"sort_index": index}}
            )
        for (node, worker), (tid, pid) in self._workers.items():
            role = "driver" if worker in self._drivers else "worker"
            label = f"{role} {worker[:8] if worker else '?'}" + (f" (pid {pid})" if pid is not None else "")
            meta.append(
                {"name": "thread_name", "ph": "M", "pid": self._nodes[node], "tid": tid, "args": {"name": label}}
            )
        return meta


# --- summaries ----------------------------------------------------------------------------


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(data: ProfileData) -> list[FunctionSummary]:
    """Per-function counts, times per mode, queue time and nodes; slowest total first. Experimental."""
    grouped: dict[str, list[CallRecord]] = defaultdict(list)
    for call in data.calls:
        grouped[call.function].append(call)
    rows = []
    for function, calls in grouped.items():
        ran = [call for call in calls if call.duration is not None]
        overall = CallStats.of(ran)
        modes = {mode: CallStats.of([call for call in ran if call.mode == mode]) for mode in MODES}
        rows.append(
            FunctionSummary(
                function=function,
                count=overall.count,
                total=overall.total,
                p50=overall.p50 or 0.0,
                p95=overall.p95 or 0.0,
                queue_p50=overall.queue_p50,
                nodes=tuple(sorted({call.node for call in calls if call.node})),
                bypassed=sum(call.bypassed for call in calls),
                errors=sum(call.error is not None for call in calls),
                unfinished=len(calls) - len(ran),
                cancelled=overall.cancelled,
                real=modes["real"],
                cached=modes["cached"],
                replayed=modes["replayed"],
            )
        )
    rows.sort(key=lambda row: (-row.total, row.function))
    return rows


SUMMARY_COLUMNS = (
    "function",
    "mode",
    "calls",
    "total ms",
    "p50 ms",
    "p95 ms",
    "queue p50 ms",
    "failed",
    "cancelled",
    "nodes",
)
"""Columns of :func:`format_summary`'s table."""


def _milliseconds(seconds: float | None, digits: int = 2) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.{digits}f}"


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """An aligned text table: the first column left-aligned, the others right-aligned. Experimental."""
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_summary(rows: Sequence[FunctionSummary]) -> str:
    """The summary as an aligned text table, times in ms (see :data:`SUMMARY_COLUMNS`). Experimental.

    One line per function and mode it ran in (``real``, ``cached``,
    ``replayed``; see :data:`MODES`), so replayed calls never blend into the
    percentiles of real ones, and an ``unfinished`` line for calls submitted
    but never seen finishing.
    """
    table = []
    for row in rows:
        nodes = str(len(row.nodes))
        for mode, stats in row.by_mode().items():
            if stats.count:
                table.append(
                    (
                        row.function,
                        mode,
                        str(stats.count),
                        _milliseconds(stats.total, 1),
                        _milliseconds(stats.p50),
                        _milliseconds(stats.p95),
                        _milliseconds(stats.queue_p50),
                        str(stats.failed),
                        str(stats.cancelled),
                        nodes,
                    )
                )
        if row.unfinished:
            table.append((row.function, "unfinished", str(row.unfinished), "-", "-", "-", "-", "-", "-", nodes))
    return format_table(SUMMARY_COLUMNS, table)


def summary_document(rows: Sequence[FunctionSummary]) -> list[dict[str, Any]]:
    """The summary rows as JSON objects, durations in ms (see :meth:`FunctionSummary.to_json`). Experimental."""
    return [row.to_json() for row in rows]


def profile_document(data: ProfileData) -> dict[str, Any]:
    """The profile as plain JSON: calls, events, metrics and the per-function summary. Experimental.

    Call and event times are Unix seconds (as recorded); the summary's
    durations are milliseconds, named ``*_ms``.
    """
    return {
        "sessions": list(data.sessions),
        "head_nodes": sorted(data.head_nodes),
        "dropped_rows": data.dropped,
        "facts": [_plain(asdict(fact)) for fact in data.facts],
        "calls": [_plain(asdict(call)) for call in data.calls],
        "events": [_plain(asdict(event)) for event in data.events],
        "metrics": [_plain(asdict(point)) for point in data.metrics],
        "summary": summary_document(summarize(data)),
    }


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in record.items()}


def render(data: ProfileData, fmt: str) -> dict[str, Any]:
    """Render ``data`` in one of :data:`FORMATS`. Experimental.

    Raises ValueError naming the format for anything else.
    """
    if fmt == "chrome":
        return chrome_trace(data)
    if fmt == "json":
        return profile_document(data)
    raise ValueError(f"unknown profile export format {fmt!r}; expected one of {FORMATS}")
