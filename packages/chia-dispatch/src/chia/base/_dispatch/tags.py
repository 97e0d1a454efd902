"""Where a call's tag lives once it is dispatched: in its Ray task name, or in its job's pid registry.

Owns the task name of a tagged call (``function[tag]``, ``display[tag]``),
the limit on how many distinct tagged names one process gives Ray
(``CHIA_TAGGED_TASK_NAMES``), and the ledger that sends the tags of calls
whose task name does not carry them to the job's pid registry, where
``chia status`` and ``chia cancel --tag`` find them.

Ray keeps a metric series for every task name a process has seen and
collects them all every few seconds, so each new name makes every later
call dearer: a sweep of 100,000 distinct names costs Ray about twice the
driver CPU per call that 10,000 do. Past the limit, a call whose name Ray
has not seen yet is named as an untagged call is, and only its tag's
place changes.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from typing import Any

import ray

from chia.base._dispatch import job_actors, registry

logger = logging.getLogger(__name__)

LIMIT_ENV = "CHIA_TAGGED_TASK_NAMES"
"""Environment variable: how many distinct tagged task names a process gives Ray (a whole number, or ``unlimited``)."""

DEFAULT_LIMIT = 10_000
_UNLIMITED = "unlimited"
_FLUSH_INTERVAL = 0.5  # seconds between sends of the ledger; Ray's state API itself lags about a second
_FLUSH_SIZE = 5_000  # a ledger this long is sent at once


def parse_limit(raw: str | None) -> int | None:
    """The limit ``CHIA_TAGGED_TASK_NAMES`` sets: a count, None for unlimited; ValueError naming what is valid."""
    if raw is None or raw.strip() == "":
        return DEFAULT_LIMIT
    value = raw.strip()
    if value.lower() == _UNLIMITED:
        return None
    if value.isascii() and value.isdigit():  # not "²", which str.isdigit accepts and int refuses
        return int(value)
    raise ValueError(
        f"{LIMIT_ENV}={raw!r} is not valid: give how many distinct tagged task names one process may give Ray, "
        f"a whole number >= 0 (0: never put tags in task names), or {_UNLIMITED!r}; the default is {DEFAULT_LIMIT}"
    )


class TaskNamer:
    """The Ray task names of one process's calls, tagged up to ``limit`` distinct names (None: no limit)."""

    __slots__ = ("_limit", "_named", "_warned")

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._named: set[str] = set()
        self._warned = False

    def name(self, label: str, tag: str, display_name: str | None) -> tuple[str | None, bool]:
        """The task name of a tagged call (None: Ray's default) and whether it carries the tag."""
        name = f"{display_name or label}[{tag}]"
        named = self._named
        if name in named:
            return name, True
        if self._limit is None or len(named) < self._limit:
            named.add(name)
            return name, True
        if not self._warned:
            self._warned = True
            logger.warning(
                "chia: this process has given Ray %d distinct tagged task names; later tagged calls are named "
                "like untagged ones (%s), and their tags stay with chia (chia status, chia cancel --tag, bypass, "
                "cache, profile). Ray keeps a metric series per task name, which makes every call dearer as names "
                "accumulate. %s sets the limit.",
                self._limit,
                display_name or label,
                LIMIT_ENV,
            )
        return display_name, False


_namer: TaskNamer | None = None
_namer_lock = threading.Lock()


def namer() -> TaskNamer:
    """This process's namer, built on first use from ``CHIA_TAGGED_TASK_NAMES``."""
    global _namer
    found = _namer
    if found is None:
        with _namer_lock:
            if _namer is None:
                _namer = TaskNamer(parse_limit(os.environ.get(LIMIT_ENV)))
            found = _namer
    return found


def task_name(label: str, tag: str | None, display_name: str | None) -> tuple[str | None, bool]:
    """The task name of a call and whether it carries the tag: an untagged call's needs no namer (nor its variable)."""
    if tag is None:
        return display_name, False
    return namer().name(label, tag, display_name)


class TagLedger:
    """Tags of submitted tasks whose names do not carry them, sent to their jobs' registries in batches.

    ``remember`` costs an append; a daemon thread sends what accumulated
    every half second (at once past 5,000), one fire-and-forget registry
    call per job. Tags of a previous Ray session are dropped, never sent.
    """

    __slots__ = ("_lock", "_pending", "_thread", "_wake")

    def __init__(self) -> None:
        self._pending: collections.deque[tuple[Any, str]] = collections.deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def remember(self, ref: Any, tag: str) -> None:
        """Record the tag of the task behind ``ref`` (an ObjectRef, or a list of them)."""
        if isinstance(ref, list):
            ref = ref[0] if ref else None
        task_id = getattr(ref, "task_id", None)
        if task_id is None:
            return
        pending = self._pending
        pending.append((task_id(), tag))
        if self._thread is None:
            self._start()
        elif len(pending) >= _FLUSH_SIZE:
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="chia-tag-ledger", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(_FLUSH_INTERVAL)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # a tag is a status detail: sending it must never break dispatch
                logger.debug("could not send task tags to the pid registry", exc_info=True)

    def flush(self) -> int:
        """Send what accumulated (this Ray session's tags only); returns how many tags were sent."""
        pending = self._pending  # callers only append: what is there now can be taken
        batch = [pending.popleft() for _ in range(len(pending))]
        if not batch or not ray.is_initialized():
            return 0
        job_hex = job_actors.current_job_hex()
        pairs = [(task_id.hex(), tag) for task_id, tag in batch if task_id.job_id().hex() == job_hex]
        if pairs:
            registry.get_registry(job_hex).note_tags.remote(pairs)
        return len(pairs)


ledger = TagLedger()
"""This process's ledger."""


class Tagged:
    """A remote function handle whose submissions remember ``tag`` in the ledger of the process that submits.

    It pickles, so a call relayed through the job's dispatch proxy has its
    tag remembered there, by the owner of the task.
    """

    __slots__ = ("handle", "tag")

    def __init__(self, handle: Any, tag: str) -> None:
        self.handle = handle
        self.tag = tag

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        ref = self.handle.remote(*args, **kwargs)
        ledger.remember(ref, self.tag)
        return ref
