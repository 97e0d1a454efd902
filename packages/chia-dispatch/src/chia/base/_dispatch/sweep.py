"""The progress of a sweep across many ``chia_wait`` calls: what it counts and how it shows it.

Owns :class:`Sweep` and :class:`SweepStatus` (published by
:mod:`chia.base.chia_wait`): done of total, running, stuck, resubmitted, cache
hits and replays, elapsed and ETA; one live line drawn by tqdm on a terminal,
plain periodic lines otherwise. Cache hits and replays are read from the
dispatch seam (:attr:`DispatchCall.outcome`), never from the distribution
that replays.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm  # type: ignore[import-untyped]  # no types-tqdm in the environment

from chia.base._dispatch import seam

if TYPE_CHECKING:
    from ray import ObjectRef

__all__ = ["Sweep", "SweepStatus"]

PLAIN_INTERVAL_S = 5.0
"""Seconds between two plain lines (not a terminal)."""

HOOK_PRIORITY = -(1 << 30)
"""The sweep's dispatch hook runs before every hook that may replace a call (bypass at 50, the profiler at -1000)."""

_TERMINAL_REFRESH_S = 0.5


def _clock_text(seconds: float) -> str:
    """``75.2`` -> ``0:01:15``."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass(frozen=True, slots=True)
class SweepStatus:
    """A snapshot of a :class:`Sweep`'s counts. Stable.

    ``running`` counts the calls submitted and not yet returned ready by
    ``chia_wait`` (the pending refs of its latest call); ``stuck`` those of
    them classified stuck and left pending; ``resubmitted`` every stuck call
    resubmitted during the sweep; ``cache_hits`` and ``replays`` the calls
    dispatched while the sweep was open that a dispatch hook served from a
    cache or replayed instead of running the function.
    """

    done: int
    total: int | None
    running: int
    stuck: int
    resubmitted: int
    cache_hits: int
    replays: int
    elapsed: float
    """Seconds since the sweep started."""

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None without a total or before the first call is done)."""
        if self.total is None or self.done == 0:
            return None
        return self.elapsed / self.done * max(0, self.total - self.done)

    def counts_text(self) -> str:
        """``"4 running, 0 stuck, 1 resubmitted, 2 cache hits, 0 replays"``: the counts beyond done."""
        return ", ".join(
            (
                f"{self.running} running",
                f"{self.stuck} stuck",
                f"{self.resubmitted} resubmitted",
                _plural(self.cache_hits, "cache hit"),
                _plural(self.replays, "replay"),
            )
        )

    def line(self, description: str) -> str:
        """The plain line: ``"sweep: 12/40 done, 4 running, ..., elapsed 0:00:30, ETA 0:01:10"``."""
        done = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        eta = self.eta
        timing = f"elapsed {_clock_text(self.elapsed)}, ETA {'?' if eta is None else _clock_text(eta)}"
        return f"{description}: {done} done, {self.counts_text()}, {timing}"


class Sweep:
    """The progress of one sweep, across every ``chia_wait`` call that reports to it. Experimental.

    Pass it as ``chia_wait(..., progress=sweep)``; use it as a context
    manager, so that it counts the cache hits and replays of the calls
    dispatched inside the block and shows its last line when the block ends::

        from chia.base.chia_wait import Sweep, TrackedRef, chia_wait

        with Sweep(total=len(configs)) as sweep:
            pending = [TrackedRef(simulate.chia_remote(c), label=c.name) for c in configs]
            while pending:
                ready, pending = chia_wait(pending, num_returns=1, pending_timeout=300, retry=True, progress=sweep)
                for tr in ready:
                    results[tr.label] = get(tr.ref)

    On a terminal it draws one live line with tqdm (done/total, a bar,
    elapsed, ETA and rate, then the other counts); elsewhere (a log file, a
    pipe, CI) it writes a plain line every ``interval`` seconds while
    ``chia_wait`` runs, and one at the end.

    Args:
        total: how many calls the sweep will wait for (None: unknown; set
            :attr:`total` later when it is known).
        description: the line's first word(s).
        file: where the lines go (default: ``sys.stderr``).
        terminal: draw the live line (True) or plain lines (False); default:
            whether ``file`` is a terminal.
        interval: seconds between plain lines.
        clock: the time source of elapsed and ETA (``time.monotonic``).
    """

    def __init__(
        self,
        total: int | None = None,
        *,
        description: str = "sweep",
        file: TextIO | None = None,
        terminal: bool | None = None,
        interval: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
            raise ValueError(f"Sweep total must be None or an int >= 0, got {total!r}")
        if not interval > 0:
            raise ValueError(f"Sweep interval must be > 0 seconds, got {interval!r}")
        self.total = total
        self.description = description
        self._file = file if file is not None else sys.stderr
        self._terminal = self._file.isatty() if terminal is None else terminal
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._shown_at = self._started
        self._done: set[bytes] = set()
        self._running = 0
        self._stuck = 0
        self._resubmitted_before = 0  # by the chia_wait calls that returned
        self._resubmitted_now = 0  # by the chia_wait call running
        self._cache_hits = 0
        self._replays = 0
        self._bar: Any = None
        self._remove_hook: Callable[[], None] | None = None
        self._closed = False

    def __enter__(self) -> Sweep:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Start counting the cache hits and replays of calls dispatched from now on (``with`` does it)."""
        if self._remove_hook is None:
            self._remove_hook = seam.add_dispatch_hook(self._on_dispatch, priority=HOOK_PRIORITY)

    def close(self) -> None:
        """Stop counting dispatches and show the last line (``with`` does it). Idempotent."""
        if self._closed:
            return
        if self._remove_hook is not None:
            self._remove_hook()
            self._remove_hook = None
        self._show(force=True)
        self._closed = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def status(self) -> SweepStatus:
        """The counts now."""
        return SweepStatus(
            done=len(self._done),
            total=self.total,
            running=self._running,
            stuck=self._stuck,
            resubmitted=self._resubmitted_before + self._resubmitted_now,
            cache_hits=self._cache_hits,
            replays=self._replays,
            elapsed=self._clock() - self._started,
        )

    def _on_dispatch(self, call: seam.DispatchCall) -> None:
        call.on_submitted(lambda _ref: self._count_outcome(call.outcome))

    def _count_outcome(self, outcome: str) -> None:
        if outcome == seam.CACHE_HIT:
            self._cache_hits += 1
        elif outcome != seam.REAL:
            self._replays += 1

    def _observe(
        self, ready: Sequence[ObjectRef[Any]], running: int, stuck: int, resubmitted: int, *, returning: bool
    ) -> None:
        """What one slice of a ``chia_wait`` call saw (called by chia_wait).

        ``resubmitted`` counts this call's resubmissions so far; ``returning``
        says the call returns after this slice.
        """
        self._done.update(ref.binary() for ref in ready)
        self._running = running
        self._stuck = stuck
        self._resubmitted_now = resubmitted
        if returning:
            self._resubmitted_before += resubmitted
            self._resubmitted_now = 0
        self._show(force=False)

    def _show(self, *, force: bool) -> None:
        if self._closed:
            return
        status = self.status()
        if self._terminal:
            self._draw(status)
            return
        now = self._started + status.elapsed
        if force or now - self._shown_at >= self._interval:
            self._shown_at = now
            print(status.line(self.description), file=self._file, flush=True)

    def _draw(self, status: SweepStatus) -> None:
        if self._bar is None:
            self._bar = tqdm(
                total=status.total,
                desc=self.description,
                unit="call",
                file=self._file,
                dynamic_ncols=True,
                mininterval=_TERMINAL_REFRESH_S,
            )
        self._bar.total = status.total
        self._bar.update(status.done - self._bar.n)
        self._bar.set_postfix_str(status.counts_text(), refresh=False)
        self._bar.refresh()
