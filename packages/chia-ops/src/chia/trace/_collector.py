"""The collector actor: receives batches of profile rows and spills them to disk.

Owns the JSON-lines log of one profiling session. The actor holds no events in
memory beyond the batch it is writing (plus the file's write buffer), so a run
of millions of calls costs disk, not head-node memory. Export reads the log
back (see :mod:`chia.trace.export`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, TextIO

import ray

from chia.trace import _wire, export

MAX_TRACKED_CALLS = 1_000_000
"""Bound on remembered in-flight task ids (what stop_collector waits for), so memory stays bounded."""


class ProfileCollectorActor:
    """Collects profile rows from every process into ``<log_dir>/chia-profile-<session>.jsonl``. Experimental.

    Created by :func:`chia.trace.profiler.start_collector` as a detached, named
    Ray actor pinned to the head node (``num_cpus=0``). Processes send it rows
    in batches with fire-and-forget ``record`` calls.
    """

    def __init__(self, log_dir: str, session: str, namespace: str | None) -> None:
        directory = Path(log_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / f"chia-profile-{session}.jsonl"
        self._file: TextIO = self._path.open("a", encoding="utf-8", buffering=1 << 20)
        self._session = session
        self._namespace = namespace
        self._started = time.time()
        self._last_received = self._started
        self._records = 0
        self._dropped = 0
        self._unreported: set[str] = set()
        self._ran_first: set[str] = set()
        self._head_node = ray.get_runtime_context().get_node_id()
        self._encoder = json.JSONEncoder(separators=(",", ":"), default=repr)
        header = {"kind": "session", "session": session, "ts": self._started, "head_node": self._head_node}
        self._file.write(json.dumps(header) + "\n")

    def record(self, process: dict[str, Any], rows: list[tuple[Any, ...]], dropped: int) -> None:
        """Append a batch of wire rows from one process; ``dropped`` rows were lost there."""
        encode = self._encoder.encode
        lines = []
        for row in rows:
            self._track(row)
            lines.append(encode(_wire.record(row, process)))
        lines.append("")
        self._file.write("\n".join(lines))
        self._records += len(rows)
        if dropped:
            self._dropped += dropped
            self._file.write(json.dumps({"kind": "dropped", "count": dropped, "ts": time.time(), **process}) + "\n")
        self._last_received = time.time()

    def _track(self, row: tuple[Any, ...]) -> None:
        """Keep the task ids of calls submitted but not yet reported run (either may arrive first)."""
        kind = row[0]
        if kind == _wire.SUBMIT:
            task_id = row[8]
            if task_id is None:
                return  # no task was submitted (a hook replaced the dispatch): nothing will report
            if task_id in self._ran_first:
                self._ran_first.discard(task_id)
            elif len(self._unreported) < MAX_TRACKED_CALLS:
                self._unreported.add(task_id)
        elif kind == _wire.RUN and row[7] and row[6] is not None:
            task_id = row[6]
            if task_id in self._unreported:
                self._unreported.discard(task_id)
            elif len(self._ran_first) < MAX_TRACKED_CALLS:
                self._ran_first.add(task_id)

    def info(self) -> dict[str, Any]:
        """The collector's state (flushes the log first).

        Session, log path, head node, row counts, seconds since the last batch
        and calls submitted but not yet reported run.
        """
        self._file.flush()
        return {
            "session": self._session,
            "namespace": self._namespace,
            "log_path": str(self._path),
            "head_node": self._head_node,
            "pid": os.getpid(),
            "records": self._records,
            "dropped": self._dropped,
            "started": self._started,
            "idle_s": time.time() - self._last_received,
            "unreported": len(self._unreported),
        }

    def export(self, fmt: str) -> Any:
        """The session's profile rendered as ``fmt`` (see :func:`chia.trace.export.render`)."""
        self._file.flush()
        return export.render(export.load_profile(self._path), fmt)

    def close(self) -> str:
        """Flush and close the log; returns its path."""
        if not self._file.closed:
            self._file.close()
        return str(self._path)
