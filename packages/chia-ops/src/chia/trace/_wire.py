"""The rows processes ship to the collector, and their verbose record form.

Owns the wire format: flat tuples of primitives (cheap for Ray to pickle in
the producing process) that only the collector encodes, so producers spend
no time encoding JSON. A submit row and the run row of the same remote call
carry the same Ray task id (``"task"``), which is how they are joined; their
call ids may differ (each process numbers its own rows).

:func:`record` turns a row into the verbose JSON record (a dict with a
``"kind"``): the form the logs of the first format held line by line, and
the form the log reader hands on for both formats (see :mod:`chia.trace._logfile`).
"""

from __future__ import annotations

from typing import Any

SUBMIT, RUN, EVENT, METRIC = 0, 1, 2, 3

SUBMIT_FIELDS = 10
"""Length of a submit row: kind, id, function, tag, ts, resources, deps, caller, task, args."""

RUN_FIELDS = 14
"""Length of a run row: kind, id, function, tag, start, end, task, remote, bypassed, provider, cache_write, error, caller, args."""


def _optional(row: tuple[Any, ...], index: int) -> Any:
    """A trailing field rows of earlier versions did not have (the args summary)."""
    return row[index] if len(row) > index else None


def record(row: tuple[Any, ...], process: dict[str, Any]) -> dict[str, Any]:
    """The verbose record (a dict) for one wire row from ``process``."""
    kind = row[0]
    fields: dict[str, Any]
    if kind == SUBMIT:
        _, call_id, qualname, tag, ts, resources, deps, caller, task_id = row[:9]
        fields = {
            "kind": "submit",
            "id": call_id,
            "fn": qualname,
            "tag": tag,
            "ts": ts,
            "resources": resources,
            "deps": deps or [],
            "caller": caller,
            "task": task_id,
            "args": _optional(row, 9),
        }
    elif kind == RUN:
        _, call_id, qualname, tag, start, end, task_id, remote, bypassed, provider, cache_write, error, caller = row[
            :13
        ]
        fields = {
            "kind": "run",
            "id": call_id,
            "fn": qualname,
            "tag": tag,
            "start": start,
            "end": end,
            "task": task_id,
            "remote": remote,
            "bypassed": bypassed,
            "provider": provider,
            "cache_write": cache_write,
            "error": error,
            "caller": caller,
            "args": _optional(row, 13),
        }
    elif kind == EVENT:
        _, name, ts, event_fields, call_id = row
        fields = {"kind": "event", "name": name, "ts": ts, "fields": event_fields, "call": call_id}
    elif kind == METRIC:
        _, name, ts, value, step, call_id = row
        fields = {"kind": "metric", "name": name, "ts": ts, "value": value, "step": step, "call": call_id}
    else:
        raise ValueError(f"unknown profile row kind {kind!r} (expected {SUBMIT}, {RUN}, {EVENT} or {METRIC})")
    fields.update(process)
    return fields
