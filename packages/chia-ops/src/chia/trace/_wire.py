"""The rows processes ship to the collector, and their JSON-lines form.

Owns the wire format: flat tuples of primitives (cheap for Ray to pickle in
the producing process) that only the collector turns into JSON objects, so
producers spend no time encoding JSON. A submit row and the run row of the
same remote call carry the same Ray task id (``"task"``), which is how they
are joined; their call ids may differ (each process numbers its own rows).
"""

from __future__ import annotations

from typing import Any

SUBMIT, RUN, EVENT = 0, 1, 2


def record(row: tuple[Any, ...], process: dict[str, Any]) -> dict[str, Any]:
    """The JSON-lines record (a dict) for one wire row from ``process``."""
    kind = row[0]
    fields: dict[str, Any]
    if kind == SUBMIT:
        _, call_id, qualname, tag, ts, resources, deps, caller, task_id = row
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
        }
    elif kind == RUN:
        _, call_id, qualname, tag, start, end, task_id, remote, bypassed, provider, cache_write, error, caller = row
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
        }
    elif kind == EVENT:
        _, name, ts, event_fields, call_id = row
        fields = {"kind": "event", "name": name, "ts": ts, "fields": event_fields, "call": call_id}
    else:
        raise ValueError(f"unknown profile row kind {kind!r} (expected {SUBMIT}, {RUN} or {EVENT})")
    fields.update(process)
    return fields
