"""The collector actor: receives batches of profile rows and spills them to disk.

Owns one profiling session: its log (written by :class:`chia.trace._logfile.LogWriter`),
the facts of the run in the log's header, and the optional TensorBoard mirror
of the metrics. The actor holds no events in memory beyond the batch it is
writing (plus the log's bounded value table), so a run of millions of calls
costs disk, not head-node memory. Each batch reaches the operating system as
it arrives, so the log outlives a driver killed with ``kill -9`` (and this
actor with it): it holds every row shipped before. Export reads the log back
(see :mod:`chia.trace.export`).
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

from chia.trace import _wire, export
from chia.trace._logfile import LogWriter
from chia.trace._tensorboard import MetricMirror

ray_nodes: Callable[[], list[dict[str, Any]]] = ray.nodes  # untyped in Ray; its documented type

MAX_TRACKED_CALLS = 1_000_000
"""Bound on remembered in-flight task ids (what stop_collector waits for), so memory stays bounded."""


class ProfileCollectorActor:
    """Collects profile rows from every process into ``<log_dir>/chia-profile-<session>.jsonl``. Experimental.

    Created by :func:`chia.trace.profiler.start_collector` as a detached, named
    Ray actor pinned to the head node (``num_cpus=0``). Processes send it rows
    in batches with fire-and-forget ``record`` calls.
    """

    def __init__(self, log_dir: str, session: str, namespace: str | None, tensorboard_dir: str | None = None) -> None:
        directory = Path(log_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self._path = directory / f"chia-profile-{session}.jsonl"
        self._mirror = MetricMirror(tensorboard_dir) if tensorboard_dir is not None else None
        self._session = session
        self._namespace = namespace
        self._started = time.time()
        self._last_received = self._started
        self._records = 0
        self._dropped = 0
        self._unreported: set[str] = set()
        self._ran_first: set[str] = set()
        self._head_node = ray.get_runtime_context().get_node_id()
        header = {"session": session, "ts": self._started, "head_node": self._head_node, **_run_facts()}
        self._log = LogWriter(self._path, header)
        self._log.flush()

    def record(self, process: dict[str, Any], rows: list[tuple[Any, ...]], dropped: int) -> None:
        """Append a batch of wire rows from one process; ``dropped`` rows were lost there."""
        for row in rows:
            self._track(row)
        self._log.write(process, rows, dropped)
        # One write(2) per batch (a batch per process every half second): what
        # arrived is on disk even if the driver, and this actor, die by SIGKILL.
        self._log.flush()
        if self._mirror is not None:
            self._mirror.write([row for row in rows if row[0] == _wire.METRIC])
        self._records += len(rows)
        self._dropped += dropped
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
        self._log.flush()
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
        self._log.flush()
        return export.render(export.load_profile(self._path), fmt)

    def close(self) -> str:
        """Flush and close the log (and the TensorBoard mirror); returns the log's path."""
        self._log.close()
        if self._mirror is not None:
            self._mirror.close()
        return str(self._path)


_DISTRIBUTIONS = ("chia", "chia-ops", "chia-dispatch", "chia-bypass-cache", "chia-placement", "chia-tools")


def _run_facts() -> dict[str, Any]:
    """Where and with what the run happens: the head's host, versions, the cluster's size."""
    versions = {}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    nodes = [node for node in ray_nodes() if node.get("Alive")]
    totals: dict[str, float] = {}
    for node in nodes:
        for resource, amount in node.get("Resources", {}).items():
            if resource in ("CPU", "GPU") or not (resource.startswith("node:") or "memory" in resource):
                totals[resource] = totals.get(resource, 0.0) + float(amount)
    return {
        "host": socket.gethostname(),
        "ray": ray.__version__,
        "versions": versions,
        "nodes": len(nodes),
        "resources": totals,
    }
