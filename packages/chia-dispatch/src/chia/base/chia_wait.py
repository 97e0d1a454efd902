"""``ray.wait`` wrapper with stuck-PENDING_NODE_ASSIGNMENT detection and retry.

Ray's owner-side task submitter sends RequestWorkerLease RPCs without a
client-side timeout. If the chosen raylet is wedged but TCP-reachable
(silent), the lease slot stays full forever and downstream tasks of the same
scheduling key are throttled at the owner. :func:`chia_wait` detects the
pattern (PENDING_NODE_ASSIGNMENT older than ``pending_timeout`` while the
cluster has free resources) and optionally cancels + resubmits.

Use a :class:`TrackedRef` to pair an ObjectRef with the closure that can
re-dispatch it. ``chia_wait`` mirrors ``ray.wait``'s ``(ready, pending)``
return shape but operates on TrackedRefs. A :class:`Sweep` shows the progress
of a sweep across many ``chia_wait`` calls.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ray

from chia.base._dispatch import stuck
from chia.base._dispatch.registry import note_stuck
from chia.base._dispatch.sweep import Sweep, SweepStatus

if TYPE_CHECKING:
    from ray import ObjectRef

    from chia.base._dispatch.refs import ObjectRefCallback

__all__ = ["Sweep", "SweepStatus", "TrackedRef", "chia_wait"]

logger = logging.getLogger(__name__)

_MAX_SLICE = 1.0
_MIN_SLICE = 0.05
_MIN_QUERY_INTERVAL = 1.0
_MAX_QUERY_INTERVAL = 30.0
_PROGRESS_INTERVAL = 5.0


@dataclass(slots=True, eq=False)
class TrackedRef(ray.ObjectRef[Any]):
    """ObjectRef + resubmit closure + submission timestamp. Stable.

    ``submit_fn`` must accept no arguments and produce a fresh ObjectRef
    equivalent to the original submission (same function, args, options).
    Capture call-site state via ``functools.partial`` or a closure.
    ``ref`` may also be an ``ObjectRefCallback`` (``get(tr.ref)`` then runs
    its callback). ``submitted_at`` is a ``time.monotonic()`` reading; the
    default 0.0 means "now".

    A TrackedRef is itself an ``ObjectRef``: the one it tracks (``ref``, or
    the ref inside an ``ObjectRefCallback``; after a retry, the fresh one).
    ``chia_wait`` hands the very TrackedRefs to Ray's wait, so sorting them
    into ready and pending costs nothing per ref. ``get(tr)`` is
    ``get(tr.ref)``; ``ray.get(tr)``, ``ray.cancel(tr)`` and passing ``tr``
    to a task as an argument act on the tracked ref, as with any ObjectRef
    (the task receives the value). ``ray.put(tr)`` is refused, as for any
    ObjectRef; pickling a TrackedRef (``copy.copy``, or nested in a task's
    arguments) keeps its fields.

    TrackedRefs compare by value: two are equal when they track the same
    submission, i.e. the same ``ref``, ``label`` and ``submit_fn`` (the
    bookkeeping fields ``submitted_at`` and ``retries`` do not count). The
    hash is taken from ``label`` and ``submit_fn``, which a retry never
    changes, and, for a TrackedRef without ``submit_fn`` (never resubmitted),
    from ``ref`` too. So a TrackedRef stays findable in a dict or set while
    ``chia_wait`` mutates ``ref``, ``submitted_at`` and ``retries`` in place;
    ``chia_wait`` itself returns the very objects passed in.

    Example::

        submit = functools.partial(simulate.chia_remote, config)
        tracked = [TrackedRef(submit(), submit, label=config.name)]
        ready, pending = chia_wait(tracked, pending_timeout=300, retry=True)
    """

    ref: ObjectRef[Any] | ObjectRefCallback
    submit_fn: Callable[[], ObjectRef[Any] | ObjectRefCallback] | None = None
    label: str = ""
    submitted_at: float = 0.0
    retries: int = 0
    _plain_ref: ObjectRef[Any] = field(init=False, repr=False)
    _stuck_warned: bool = field(default=False, init=False, repr=False)
    _missing_noted: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.submitted_at == 0.0:
            self.submitted_at = time.monotonic()

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, TrackedRef):
            return NotImplemented
        return bool(
            self.label == other.label and self.submit_fn is other.submit_fn and self._plain_ref == other._plain_ref
        )

    def __ne__(self, other: object) -> bool:
        # Spelled out: ObjectRef's own ``!=`` compares the object ids alone.
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        if self.submit_fn is None:
            return hash((self.label, self._plain_ref))
        return hash((self.label, id(self.submit_fn)))

    def __setattr__(self, name: str, value: Any) -> None:
        # ``ref`` is validated and unwrapped once per assignment, not on every wait,
        # and the ObjectRef this TrackedRef is follows it.
        if name == "ref":
            plain = _plain(value)
            _point_at(self, plain)
            object.__setattr__(self, "_plain_ref", plain)
        object.__setattr__(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        # ObjectRef's own reduction would rebuild a bare ObjectRef from the id alone.
        fields = (self.ref, self.submit_fn, self.label, self.submitted_at, self.retries)
        flags = {"_stuck_warned": self._stuck_warned, "_missing_noted": self._missing_noted}
        return (TrackedRef, fields, (None, flags))

    @property
    def object_ref(self) -> ObjectRef[Any]:
        """The plain ObjectRef (unwrapping an ``ObjectRefCallback``)."""
        return self._plain_ref

    def _name(self) -> str:
        return self.label or self._plain_ref.task_id().hex()


def _plain(ref: Any) -> ObjectRef[Any]:
    if isinstance(ref, ray.ObjectRef) and not isinstance(ref, TrackedRef):
        return ref
    inner = getattr(ref, "ref", None)
    if isinstance(inner, ray.ObjectRef) and not isinstance(inner, TrackedRef):
        return inner
    raise TypeError(f"TrackedRef.ref must be an ObjectRef or an ObjectRefCallback, got {ref!r}")


_bind_object_ref = ray.ObjectRef.__init__


def _core_worker() -> Any:
    """This process's Ray core worker; None under Ray Client or when not connected."""
    return getattr(ray._private.worker.global_worker, "core_worker", None)


def _point_at(tracked: TrackedRef, plain: ObjectRef[Any]) -> None:
    """Make the ObjectRef that ``tracked`` is the same ref as ``plain``, as Ray counts references.

    Binding takes a local reference to the new object, as any ObjectRef
    does. Re-binding after a retry first gives back the one taken for the old
    object, which ``tracked.ref`` still holds at this point, so neither object
    is freed in between. Without a core worker (Ray Client) nothing is bound,
    and ``chia_wait`` waits on the plain refs instead.
    """
    core_worker = _core_worker()
    if core_worker is None:
        return
    if not tracked.is_nil():
        core_worker.remove_object_ref_reference(tracked)
    _bind_object_ref(tracked, plain.binary(), plain.owner_address(), plain.call_site())


def _wait_once(
    tracked: list[TrackedRef], num_returns: int, timeout: float | None
) -> tuple[list[TrackedRef], list[TrackedRef]]:
    """One wait: ``(ready, pending)``, each in input order, holding the very TrackedRefs passed in.

    Calls the core worker's wait, as ``ray.wait`` does, on the TrackedRefs
    themselves: they are ObjectRefs, so Ray's own ready and pending lists are
    the answer, with no sorting back per ref. ``ray.wait``'s per-ref Python
    validation is left out too: TrackedRef validated its ref once, and this
    call is what a wait loop repeats over thousands of refs.
    """
    if not all(map(isinstance, tracked, itertools.repeat(TrackedRef))):
        offending = next(tr for tr in tracked if not isinstance(tr, TrackedRef))
        raise TypeError(f"chia_wait needs a list of TrackedRef, got {offending!r} in it")
    core_worker = _core_worker()
    if core_worker is None:  # Ray Client, or not connected (ray.wait says which)
        return _wait_by_value(tracked, num_returns, timeout)
    timeout_ms = int((10**6 if timeout is None else timeout) * 1000)
    try:
        ready: list[TrackedRef]
        pending: list[TrackedRef]
        ready, pending = core_worker.wait(tracked, num_returns, timeout_ms, True)
    except ray.exceptions.RaySystemError:
        if len({tr.binary() for tr in tracked}) != len(tracked):
            raise ValueError("chia_wait needs TrackedRefs of distinct ObjectRefs (like ray.wait)") from None
        raise
    return ready, pending


def _wait_by_value(
    tracked: list[TrackedRef], num_returns: int, timeout: float | None
) -> tuple[list[TrackedRef], list[TrackedRef]]:
    """``ray.wait`` on the plain refs, its answer matched back by value (its refs may be new objects)."""
    refs = [tr._plain_ref for tr in tracked]
    ready_set = set(ray.wait(refs, num_returns=num_returns, timeout=timeout)[0])
    ready = [tr for tr, ref in zip(tracked, refs, strict=True) if ref in ready_set]
    pending = [tr for tr, ref in zip(tracked, refs, strict=True) if ref not in ready_set]
    return ready, pending


def _check_wait_arguments(
    count: int,
    num_returns: int,
    timeout: float | None,
    pending_timeout: float | None,
    min_free_fraction: float,
    max_retries: int,
) -> None:
    if not 1 <= num_returns <= count:
        raise ValueError(f"num_returns must be between 1 and len(tracked)={count}, got {num_returns}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0 seconds, got {timeout!r}")
    if pending_timeout is not None and pending_timeout <= 0:
        raise ValueError(f"pending_timeout must be None or > 0 seconds, got {pending_timeout!r}")
    if not 0.0 <= min_free_fraction <= 1.0:
        raise ValueError(f"min_free_fraction must be within [0, 1], got {min_free_fraction!r}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")


def chia_wait(
    tracked: Sequence[TrackedRef],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    pending_timeout: float | None = None,
    retry: bool = False,
    max_retries: int = 1,
    require_demand_absent: bool = False,
    min_free_fraction: float = 0.5,
    cancel_on_stuck: bool = False,
    print_logs: bool = False,
    progress: bool | Sweep = False,
) -> tuple[list[TrackedRef], list[TrackedRef]]:
    """Drop-in replacement for ``ray.wait()`` that handles stuck-PENDING tasks. Stable.

    Returns ``(ready, pending)`` lists of :class:`TrackedRef` after at most
    ``num_returns`` complete or ``timeout`` seconds elapse — same semantics
    as ``ray.wait`` (both lists keep the input order; ``ready`` holds at most
    ``num_returns``). When ``pending_timeout`` is set, any pending TrackedRef
    whose submission age exceeds ``pending_timeout`` is classified as
    "stuck" iff:

    1. Ray's state API reports ``state == PENDING_NODE_ASSIGNMENT``, AND
    2. ``ray.available_resources()`` covers the task's required resources
       (it could schedule somewhere if Ray were healthy), AND
    3. for every required resource ``r``,
       ``available[r] / cluster_total[r] >= min_free_fraction`` (a wedged
       raylet leaves the resource unused; a busy cluster does not), AND
    4. (when ``require_demand_absent=True``) the cluster reports no pending
       demand for the task's resource shape.

    A task the state API does not report is not stuck (no evidence). The
    cause of each stuck task is recorded in its job's pid registry, where
    ``chia status`` shows it. For each stuck TrackedRef:

    * If ``retry=True``, ``tr.submit_fn`` is set and ``tr.retries <
      max_retries``: ``ray.cancel(tr.ref, force=True)`` (best effort), then
      ``tr.submit_fn()`` for a fresh ref; ``tr`` is mutated in place
      (``ref``, ``submitted_at``, ``retries += 1``). The old ref is orphaned.
    * Else: a warning is logged once for that ref, which stays pending
      (with ``cancel_on_stuck=True`` it is also cancelled, so it resolves
      with Ray's cancellation error and shows up as ready).

    Detection runs even with ``timeout=None`` (the wait proceeds in slices of
    at most a second). Ray's state API (it needs the dashboard) is queried
    in a background thread — never on this call's path — at most once per
    ``pending_timeout / 4`` (between 1 and 30 s), only while some pending
    ref is older than ``pending_timeout``; if it fails, detection is off
    (one warning) and the wait goes on. ``print_logs=True`` prints each
    detection and resubmission; ``progress=True`` prints a progress line
    of this call to stderr every few seconds; ``progress=sweep`` (a
    :class:`Sweep`) reports to the display of a sweep made of many calls.

    ``tracked`` may be any sequence (a list or a tuple); both results are
    lists. The returned ``pending`` list contains the same TrackedRef objects
    passed in; callers can keep parallel bookkeeping keyed on identity.
    """
    if isinstance(tracked, list):
        items = tracked
    elif isinstance(tracked, Sequence) and not isinstance(tracked, (str, bytes)):
        items = list(tracked)
    else:
        raise TypeError(f"chia_wait needs a sequence (list or tuple) of TrackedRef, got {tracked!r}")
    if not items:
        return [], []
    _check_wait_arguments(len(items), num_returns, timeout, pending_timeout, min_free_fraction, max_retries)
    if pending_timeout is None and progress is False:
        return _wait_once(items, num_returns, timeout)

    deadline = None if timeout is None else time.monotonic() + timeout
    slice_length = _MAX_SLICE if pending_timeout is None else min(_MAX_SLICE, max(_MIN_SLICE, pending_timeout / 4))
    detector = (
        None
        if pending_timeout is None
        else _Detector(
            pending_timeout, retry, max_retries, require_demand_absent, min_free_fraction, cancel_on_stuck, print_logs
        )
    )
    sweep = progress if isinstance(progress, Sweep) else None
    reporter = _Progress(len(items), num_returns) if progress is True else None
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        wait_for = slice_length if remaining is None else min(slice_length, remaining)
        ready, pending = _wait_once(items, num_returns, wait_for)
        returning = len(ready) >= num_returns or (remaining is not None and remaining <= wait_for)
        if reporter is not None:
            reporter.show(len(ready), detector, force=returning)
        if sweep is not None:
            _report(sweep, ready, pending, detector, returning=returning)
        if returning:
            return ready, pending
        if detector is not None:
            detector.check(pending)


class _Detector:
    """Stuck detection and its consequences for one ``chia_wait`` call."""

    def __init__(
        self,
        pending_timeout: float,
        retry: bool,
        max_retries: int,
        require_demand_absent: bool,
        min_free_fraction: float,
        cancel_on_stuck: bool,
        print_logs: bool,
    ) -> None:
        self.pending_timeout = pending_timeout
        self.retry = retry
        self.max_retries = max_retries
        self.require_demand_absent = require_demand_absent
        self.min_free_fraction = min_free_fraction
        self.cancel_on_stuck = cancel_on_stuck
        self.print_logs = print_logs
        self.interval = min(_MAX_QUERY_INTERVAL, max(_MIN_QUERY_INTERVAL, pending_timeout / 4))
        self.stuck = 0
        self.resubmitted = 0

    def check(self, pending: list[TrackedRef]) -> None:
        now = time.monotonic()
        old_by_job: dict[str, list[TrackedRef]] = {}
        for tr in pending:
            if now - tr.submitted_at > self.pending_timeout:
                old_by_job.setdefault(tr.object_ref.task_id().job_id().hex(), []).append(tr)
        querier = stuck.querier()
        for job_hex, old in old_by_job.items():
            not_before = min(tr.submitted_at for tr in old) + self.pending_timeout
            snapshot = querier.latest(
                job_hex, with_demands=self.require_demand_absent, not_before=not_before, interval=self.interval
            )
            if snapshot is None:
                continue
            for tr in old:
                if snapshot.taken_at < tr.submitted_at + self.pending_timeout:
                    continue  # evidence from before this ref was overdue
                verdict = stuck.classify(
                    tr.object_ref.task_id().hex(),
                    snapshot,
                    min_free_fraction=self.min_free_fraction,
                    require_demand_absent=self.require_demand_absent,
                )
                if verdict is stuck.Verdict.STUCK:
                    self._handle_stuck(tr)
                elif verdict is stuck.Verdict.MISSING and not tr._missing_noted:
                    tr._missing_noted = True
                    self._log(logging.DEBUG, "chia_wait: %s is not reported by Ray's state API yet", tr._name())

    def _handle_stuck(self, tr: TrackedRef) -> None:
        self.stuck += 1
        age = time.monotonic() - tr.submitted_at
        task_hex = tr.object_ref.task_id().hex()
        if self.retry and tr.submit_fn is not None and tr.retries < self.max_retries:
            note_stuck(task_hex, _stuck_cause(age, f"resubmitted (retry {tr.retries + 1} of {self.max_retries})"))
            _cancel_quietly(tr.object_ref)
            tr.ref = tr.submit_fn()
            tr.submitted_at = time.monotonic()
            tr.retries += 1
            self.resubmitted += 1
            self._log(
                logging.WARNING,
                "chia_wait: %s stuck in PENDING_NODE_ASSIGNMENT for %.0f s: resubmitted (retry %d of %d)",
                tr._name(),
                age,
                tr.retries,
                self.max_retries,
            )
            return
        if not tr._stuck_warned:
            tr._stuck_warned = True
            action = "cancelled" if self.cancel_on_stuck else "left pending"
            note_stuck(task_hex, _stuck_cause(age, f"{action} after {tr.retries} of {self.max_retries} retries"))
            self._log(
                logging.WARNING,
                "chia_wait: %s stuck in PENDING_NODE_ASSIGNMENT for %.0f s: %s (retries %d of %d%s)",
                tr._name(),
                age,
                action,
                tr.retries,
                self.max_retries,
                "" if tr.submit_fn is not None else ", no submit_fn",
            )
            if self.cancel_on_stuck:
                _cancel_quietly(tr.object_ref)

    def _log(self, level: int, message: str, *args: Any) -> None:
        logger.log(level, message, *args)
        if self.print_logs:
            print(message % args, flush=True)


def _stuck_cause(age: float, action: str) -> str:
    """What ``chia status`` shows for a stuck task: the classification and what chia_wait did."""
    return (
        f"{stuck.PENDING_NODE_ASSIGNMENT} for {age:.0f} s while the cluster had its resources free "
        f"(a wedged raylet); chia_wait {action}"
    )


def _report(
    sweep: Sweep, ready: list[TrackedRef], pending: list[TrackedRef], detector: _Detector | None, *, returning: bool
) -> None:
    """Tell ``sweep`` what this slice saw; counting stuck refs walks ``pending`` only once one was seen."""
    stuck_now = sum(tr._stuck_warned for tr in pending) if detector is not None and detector.stuck else 0
    resubmitted = detector.resubmitted if detector is not None else 0
    sweep._observe(ready, len(pending), stuck_now, resubmitted, returning=returning)


def _cancel_quietly(ref: ObjectRef[Any]) -> None:
    try:
        ray.cancel(ref, force=True)
    except Exception:  # best effort: e.g. actor tasks refuse force, the task may be gone
        logger.debug("chia_wait: could not cancel %s", ref, exc_info=True)


class _Progress:
    """A plain progress line on stderr, at most every few seconds."""

    def __init__(self, total: int, num_returns: int) -> None:
        self.total = total
        self.num_returns = num_returns
        self.started = time.monotonic()
        self.shown_at = self.started

    def show(self, ready: int, detector: _Detector | None, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.shown_at < _PROGRESS_INTERVAL:
            return
        self.shown_at = now
        line = f"chia_wait: {ready}/{self.num_returns} ready of {self.total}, {now - self.started:.0f} s"
        if detector is not None:
            line += f", {detector.stuck} stuck, {detector.resubmitted} resubmitted"
        print(line, file=sys.stderr, flush=True)
