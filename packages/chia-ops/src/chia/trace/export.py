"""Reading a profile log back: call records, Chrome traces and per-function summaries.

Owns the interpretation of the JSON-lines logs the collector writes. Needs no
cluster: point :func:`load_profile` at a log file or a ``log_dir``.

Example::

    from chia.trace import export

    data = export.load_profile("/tmp/profile")
    Path("trace.json").write_text(json.dumps(export.chrome_trace(data)))  # open in Perfetto
    print(export.format_summary(export.summarize(data)))
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FORMATS",
    "CallRecord",
    "FunctionSummary",
    "LoggedEvent",
    "ProfileData",
    "chrome_trace",
    "format_summary",
    "load_profile",
    "profile_document",
    "render",
    "summarize",
]

FORMATS = ("chrome", "json")
"""Export formats understood by :func:`render` (and ``chia profile export --format``)."""

_LOG_GLOB = "chia-profile-*.jsonl"
_KINDS = ("session", "submit", "run", "event", "dropped")


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
    called from.
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
class ProfileData:
    """Everything one or more profile logs recorded. Experimental."""

    calls: tuple[CallRecord, ...]
    events: tuple[LoggedEvent, ...]
    head_nodes: frozenset[str]
    drivers: frozenset[str]
    sessions: tuple[str, ...]
    dropped: int


@dataclass(frozen=True, slots=True)
class FunctionSummary:
    """Per-function totals over the calls that ran. Experimental.

    ``count`` counts calls whose body ran; ``unfinished`` those submitted but
    never seen running. Durations in seconds; ``queue_p50`` is the median
    submit-to-start delay of remote calls (None with no remote calls).
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


def _records(files: Sequence[Path]) -> Iterator[dict[str, Any]]:
    for file in files:
        with file.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(
                        f"{file}:{number}: not a JSON line ({exc.msg}); is this a chia profile log?"
                    ) from exc
                kind = record.get("kind") if isinstance(record, dict) else None
                if kind not in _KINDS:
                    raise ValueError(f"{file}:{number}: unknown record kind {kind!r}; expected one of {_KINDS}")
                yield record


def load_profile(path: str | Path) -> ProfileData:
    """Read a profile log file, or every ``chia-profile-*.jsonl`` in a directory. Experimental.

    Raises FileNotFoundError when there is no log there and ValueError
    (naming file and line) for a line that is not a profile record.
    """
    submits: dict[int, dict[str, Any]] = {}
    runs: dict[int, dict[str, Any]] = {}
    events: list[LoggedEvent] = []
    heads: set[str] = set()
    drivers: set[str] = set()
    sessions: list[str] = []
    dropped = 0
    for record in _records(_log_files(Path(path))):
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
        elif kind == "session":
            sessions.append(record["session"])
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
    return ProfileData(tuple(calls), tuple(events), frozenset(heads), frozenset(drivers), tuple(sessions), dropped)


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
    )


# --- Chrome trace-event format ----------------------------------------------------------


def _slice_args(call: CallRecord) -> dict[str, Any]:
    args: dict[str, Any] = {"call_id": call.call_id, "function": call.function, "tag": call.tag}
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
        for dep in call.deps:
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
    """Per-function count, total, p50, p95, queue time and nodes; slowest total first. Experimental."""
    grouped: dict[str, list[CallRecord]] = defaultdict(list)
    for call in data.calls:
        grouped[call.function].append(call)
    rows = []
    for function, calls in grouped.items():
        durations = sorted(d for d in (call.duration for call in calls) if d is not None)
        queues = sorted(q for q in (call.queue_time for call in calls) if q is not None)
        rows.append(
            FunctionSummary(
                function=function,
                count=len(durations),
                total=sum(durations),
                p50=_percentile(durations, 0.5) if durations else 0.0,
                p95=_percentile(durations, 0.95) if durations else 0.0,
                queue_p50=_percentile(queues, 0.5) if queues else None,
                nodes=tuple(sorted({call.node for call in calls if call.node})),
                bypassed=sum(call.bypassed for call in calls),
                errors=sum(call.error is not None for call in calls),
                unfinished=sum(call.duration is None for call in calls),
            )
        )
    rows.sort(key=lambda row: (-row.total, row.function))
    return rows


def format_summary(rows: Sequence[FunctionSummary]) -> str:
    """The summary as an aligned text table (times in ms). Experimental."""
    header = ("function", "calls", "total ms", "p50 ms", "p95 ms", "queue p50 ms", "nodes", "bypassed", "errors")
    table = [header]
    for row in rows:
        queue = "-" if row.queue_p50 is None else f"{row.queue_p50 * 1e3:.2f}"
        calls = str(row.count) + (f" (+{row.unfinished} unfinished)" if row.unfinished else "")
        table.append(
            (
                row.function,
                calls,
                f"{row.total * 1e3:.1f}",
                f"{row.p50 * 1e3:.2f}",
                f"{row.p95 * 1e3:.2f}",
                queue,
                str(len(row.nodes)),
                str(row.bypassed),
                str(row.errors),
            )
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(header))]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=False)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def profile_document(data: ProfileData) -> dict[str, Any]:
    """The profile as plain JSON: calls, events and the per-function summary. Experimental."""
    return {
        "sessions": list(data.sessions),
        "head_nodes": sorted(data.head_nodes),
        "dropped_rows": data.dropped,
        "calls": [_plain(asdict(call)) for call in data.calls],
        "events": [_plain(asdict(event)) for event in data.events],
        "summary": [_plain(asdict(row)) for row in summarize(data)],
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
