"""chia.trace: the chia profiler (distribution chia-ops).

Public modules: :mod:`chia.trace.profiler` (collect calls across the cluster),
:mod:`chia.trace.export` (Chrome traces and per-function summaries from the
logs), :mod:`chia.trace.report` (a self-contained HTML report of a run) and
:mod:`chia.trace.compare` (two runs side by side). :func:`log_event` and
:func:`log_metric` are re-exported here for use from a loop and from tasks.
The ``chia`` command line is :mod:`chia.cli`; ``chia.trace.cli`` is a
deprecated alias of :mod:`chia.cli.main`. Underscore modules are private.
"""

from chia.trace.profiler import log_event, log_metric

__all__ = ["log_event", "log_metric"]
