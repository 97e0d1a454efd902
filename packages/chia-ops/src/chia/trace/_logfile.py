"""The profile log on disk: compact JSON lines written by the collector, read back by the export.

Format 2 (what the collector writes). The first line is a JSON object, the
session header: ``{"kind": "session", "format": 2, "session", "ts", "head_node",
...facts}``. Every other line is a JSON array (or, for rows a process had to
drop, a ``{"kind": "dropped", ...}`` object):

- ``["v", i, value]``: entry *i* of the value table (function names, tags,
  resources, providers, error types, argument summaries, task-id suffixes);
- ``["p", i, node, worker, pid, driver]``: process *i*;
- ``["c", i, prefix]``: call-id prefix *i*: call ids are written as
  ``(i << 23) | (id & (2**23 - 1))`` and read back as the original ids;
- ``[0, proc, id, fn, ts, task, resources, tag, args, deps, caller]``: a submission;
- ``[1, proc, id, fn, start, duration, task, flags, tag, provider, error, caller, args]``:
  a body run (flags: 1 remote, 2 bypassed, 4 written to the cache);
- ``[2, proc, name, ts, fields, call]``: a ``log_event``;
- ``[3, proc, name, ts, value, step, call]``: a ``log_metric``.

Times are integer microseconds after the header's ``ts``; trailing empty fields
are left out; a field that takes a table value holds its index (or, once the
table is full, the value itself). Task ids keep their first 16 hex digits and
name the rest (the job or actor part, the same for many tasks) by table index:
``"<16 hex>.<i>"``. Every line reads back as the verbose record of
:func:`chia.trace._wire.record`, which is what format 1 (earlier logs) held
line by line; both are read. A last line cut short (its writer was killed
mid-write, so it has no newline) is skipped with a warning: the rows before it
load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from chia.trace._wire import EVENT, METRIC, RUN, SUBMIT

__all__ = ["FORMAT", "LogWriter", "read_records"]

logger = logging.getLogger(__name__)

FORMAT = 2
"""The format the writer writes (the header's ``"format"``; logs without one are format 1)."""

KINDS = ("session", "submit", "run", "event", "metric", "dropped")
"""Kinds of verbose records."""

MAX_TABLE_VALUES = 200_000
"""Bound on the value table (the collector's memory): later new values are written inline."""

_ID_BITS = 23
_ID_MASK = (1 << _ID_BITS) - 1
_TASK_HEAD = 16
_REMOTE, _BYPASSED, _CACHE_WRITE = 1, 2, 4


def _trimmed(row: list[Any]) -> list[Any]:
    """The row without its trailing empty fields (None, [], {})."""
    end = len(row)
    while end > 1 and (row[end - 1] is None or row[end - 1] == [] or row[end - 1] == {}):
        end -= 1
    return row[:end]


class LogWriter:
    """Appends batches of wire rows to one session's log, in format 2."""

    def __init__(self, path: Path, header: Mapping[str, Any]) -> None:
        self._file: TextIO = path.open("a", encoding="utf-8", buffering=1 << 20)
        self._origin = float(header["ts"])
        self._encode = json.JSONEncoder(separators=(",", ":"), default=repr).encode
        self._values: dict[Any, int] = {}
        self._processes: dict[tuple[Any, ...], int] = {}
        self._prefixes: dict[int, int] = {}
        self._pending: list[str] = []
        self._file.write(self._encode({"kind": "session", "format": FORMAT, **header}) + "\n")

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._file.closed

    def write(self, process: Mapping[str, Any], rows: list[tuple[Any, ...]], dropped: int = 0) -> None:
        """Append ``rows`` from ``process``; ``dropped`` rows were lost there."""
        lines = self._pending
        proc = self._process(process)
        encode = self._encode
        for row in rows:
            kind = row[0]
            if kind == SUBMIT:
                encoded = self._submit(proc, row)
            elif kind == RUN:
                encoded = self._run(proc, row)
            elif kind == EVENT:
                _, name, ts, fields, call_id = row
                encoded = [EVENT, proc, self._ref(name), self._time(ts), fields, self._id(call_id)]
            elif kind == METRIC:
                _, name, ts, value, step, call_id = row
                encoded = [METRIC, proc, self._ref(name), self._time(ts), value, step, self._id(call_id)]
            else:
                raise ValueError(f"unknown profile row kind {kind!r} (expected {SUBMIT}, {RUN}, {EVENT} or {METRIC})")
            lines.append(encode(_trimmed(encoded)))
        if dropped:
            lines.append(encode({"kind": "dropped", "count": dropped, "ts": self._origin, **process}))
        lines.append("")
        self._file.write("\n".join(lines))
        lines.clear()

    def flush(self) -> None:
        """Hand what is buffered to the operating system."""
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if not self._file.closed:
            self._file.close()

    # --- encoding ---------------------------------------------------------------------

    def _submit(self, proc: int, row: tuple[Any, ...]) -> list[Any]:
        _, call_id, qualname, tag, ts, resources, deps, caller, task_id = row[:9]
        args = row[9] if len(row) > 9 else None
        return [
            SUBMIT,
            proc,
            self._id(call_id),
            self._ref(qualname),
            self._time(ts),
            self._task(task_id),
            self._ref(resources or None),
            self._ref(tag),
            self._ref(args),
            [self._task(dep) for dep in deps or ()],
            self._id(caller),
        ]

    def _run(self, proc: int, row: tuple[Any, ...]) -> list[Any]:
        _, call_id, qualname, tag, start, end, task_id, remote, bypassed, provider, cache_write, error, caller = row[
            :13
        ]
        args = row[13] if len(row) > 13 else None
        flags = (_REMOTE if remote else 0) | (_BYPASSED if bypassed else 0) | (_CACHE_WRITE if cache_write else 0)
        return [
            RUN,
            proc,
            self._id(call_id),
            self._ref(qualname),
            self._time(start),
            round((end - start) * 1e6),
            self._task(task_id),
            flags,
            self._ref(tag),
            self._ref(provider),
            self._ref(error),
            self._id(caller),
            self._ref(args),
        ]

    def _time(self, ts: float) -> int:
        return round((ts - self._origin) * 1e6)

    def _ref(self, value: Any) -> Any:
        """The table index of ``value`` (defining it on first use), or None for None."""
        if value is None:
            return None
        key = value if isinstance(value, str) else ("json", self._encode(value))
        index = self._values.get(key)
        if index is None:
            if len(self._values) >= MAX_TABLE_VALUES:
                return value
            index = self._values[key] = len(self._values)
            self._pending.append(self._encode(["v", index, value]))
        return index

    def _id(self, call_id: int | None) -> int | None:
        if call_id is None:
            return None
        prefix = call_id >> _ID_BITS
        index = self._prefixes.get(prefix)
        if index is None:
            index = self._prefixes[prefix] = len(self._prefixes)
            self._pending.append(self._encode(["c", index, prefix]))
        return (index << _ID_BITS) | (call_id & _ID_MASK)

    def _task(self, task_id: str | None) -> str | None:
        if task_id is None or len(task_id) <= _TASK_HEAD or "." in task_id:
            return task_id
        index = self._ref(task_id[_TASK_HEAD:])
        return f"{task_id[:_TASK_HEAD]}.{index}" if isinstance(index, int) else task_id

    def _process(self, process: Mapping[str, Any]) -> int:
        key = (process.get("node"), process.get("worker"), process.get("pid"), bool(process.get("driver")))
        index = self._processes.get(key)
        if index is None:
            index = self._processes[key] = len(self._processes)
            self._pending.append(self._encode(["p", index, *key]))
        return index


# --- reading ----------------------------------------------------------------------------


class _Decoder:
    """Turns the array lines of one format-2 log back into verbose records."""

    def __init__(self, header: Mapping[str, Any]) -> None:
        self._origin = float(header["ts"])
        self._values: dict[int, Any] = {}
        self._processes: dict[int, dict[str, Any]] = {}
        self._prefixes: dict[int, int] = {}

    def decode(self, row: list[Any]) -> dict[str, Any] | None:
        """The verbose record of ``row``, or None for a table definition."""
        kind = row[0]
        if kind == SUBMIT:
            return self._submit(row)
        if kind == RUN:
            return self._run(row)
        if kind in (EVENT, METRIC):
            return self._event_or_metric(row)
        if kind == "v":
            self._values[row[1]] = row[2]
        elif kind == "p":
            _, index, node, worker, pid, driver = row
            self._processes[index] = {"node": node, "worker": worker, "pid": pid, "driver": driver}
        elif kind == "c":
            self._prefixes[row[1]] = row[2]
        else:
            raise ValueError(f"unknown row kind {kind!r}")
        return None

    def _value(self, ref: Any) -> Any:
        return self._values[ref] if isinstance(ref, int) else ref

    def _time(self, micros: int) -> float:
        return self._origin + micros / 1e6

    def _id(self, encoded: int | None) -> int | None:
        if encoded is None:
            return None
        return (self._prefixes[encoded >> _ID_BITS] << _ID_BITS) | (encoded & _ID_MASK)

    def _task(self, encoded: str | None) -> str | None:
        if encoded is None:
            return None
        head, dot, index = encoded.partition(".")
        return head + str(self._values[int(index)]) if dot else encoded

    def _submit(self, row: list[Any]) -> dict[str, Any]:
        _, proc, call_id, fn, ts, task, resources, tag, args, deps, caller = row + [None] * (11 - len(row))
        return {
            "kind": "submit",
            "id": self._id(call_id),
            "fn": self._value(fn),
            "tag": self._value(tag),
            "ts": self._time(ts),
            "resources": self._value(resources) or {},
            "deps": [self._task(dep) for dep in deps or ()],
            "caller": self._id(caller),
            "task": self._task(task),
            "args": self._value(args),
            **self._processes[proc],
        }

    def _run(self, row: list[Any]) -> dict[str, Any]:
        padded = row + [None] * (13 - len(row))
        _, proc, call_id, fn, start, duration, task, flags, tag, provider, error, caller, args = padded
        started = self._time(start)
        flags = flags or 0
        return {
            "kind": "run",
            "id": self._id(call_id),
            "fn": self._value(fn),
            "tag": self._value(tag),
            "start": started,
            "end": started + duration / 1e6,
            "task": self._task(task),
            "remote": bool(flags & _REMOTE),
            "bypassed": bool(flags & _BYPASSED),
            "provider": self._value(provider),
            "cache_write": bool(flags & _CACHE_WRITE),
            "error": self._value(error),
            "caller": self._id(caller),
            "args": self._value(args),
            **self._processes[proc],
        }

    def _event_or_metric(self, row: list[Any]) -> dict[str, Any]:
        process = self._processes[row[1]]
        name, ts = self._value(row[2]), self._time(row[3])
        if row[0] == EVENT:
            fields, call_id = (row + [None] * (6 - len(row)))[4:6]
            return {
                "kind": "event",
                "name": name,
                "ts": ts,
                "fields": fields or {},
                "call": self._id(call_id),
                **process,
            }
        value, step, call_id = (row + [None] * (7 - len(row)))[4:7]
        return {
            "kind": "metric",
            "name": name,
            "ts": ts,
            "value": value,
            "step": step,
            "call": self._id(call_id),
            **process,
        }


_CHUNK_BYTES = 4 << 20
"""Bytes of lines parsed by one call of the JSON parser (its per-call cost dominates short lines)."""


def _parsed(file: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-blank line; ValueError naming the line that is not JSON."""
    with file.open(encoding="utf-8") as handle:
        first = 1
        while lines := handle.readlines(_CHUNK_BYTES):
            try:  # the fast path: the whole chunk at once (a blank line or a bad one takes the slow path)
                values = json.loads("[" + ",".join(lines) + "]")
            except json.JSONDecodeError:
                values = None
            if values is not None and len(values) == len(lines):
                yield from enumerate(values, first)
            else:
                for number, line in enumerate(lines, first):
                    if not line.strip():
                        continue
                    if not line.endswith("\n") and not _is_json(line):
                        logger.warning("%s:%d: skipping the last line, cut short (its writer was killed)", file, number)
                        continue
                    yield number, _parse_line(file, number, line)
            first += len(lines)


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except json.JSONDecodeError:
        return False
    return True


def _parse_line(file: Path, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}:{number}: not a JSON line ({exc.msg}); is this a chia profile log?") from exc


def read_records(file: Path) -> Iterator[dict[str, Any]]:
    """The verbose records of one log file, either format, in file order.

    Raises ValueError naming the file and line for a line that is not a
    profile record.
    """
    decoder: _Decoder | None = None
    for number, row in _parsed(file):
        if isinstance(row, list) and row:
            if decoder is None:
                raise ValueError(f"{file}:{number}: a compact row before a format-{FORMAT} session header")
            try:
                record = decoder.decode(row)
            except KeyError as exc:
                raise ValueError(
                    f"{file}:{number}: malformed profile row: refers to entry {exc} of a table (process, value or "
                    "call-id prefix) no earlier line defined"
                ) from exc
            except (IndexError, TypeError, ValueError) as exc:
                raise ValueError(f"{file}:{number}: malformed profile row ({type(exc).__name__}: {exc})") from exc
            if record is not None:
                yield record
            continue
        kind = row.get("kind") if isinstance(row, dict) else None
        if kind not in KINDS:
            raise ValueError(f"{file}:{number}: unknown record kind {kind!r}; expected one of {KINDS}")
        if kind == "session" and row.get("format") == FORMAT:
            decoder = _Decoder(row)
        yield row
