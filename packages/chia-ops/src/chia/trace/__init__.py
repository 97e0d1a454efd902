"""chia.trace: the chia profiler and the ``chia`` command line (distribution chia-ops).

Public modules: :mod:`chia.trace.profiler` (collect calls across the cluster),
:mod:`chia.trace.export` (Chrome traces and per-function summaries from the
logs), :mod:`chia.trace.report` (a self-contained HTML report of a run),
:mod:`chia.trace.compare` (two runs side by side) and :mod:`chia.trace.cli`
(the ``chia`` script). :func:`log_event` and :func:`log_metric` are
re-exported here for use from a loop and from tasks. Underscore modules are
private.
"""

from chia.trace.profiler import log_event, log_metric

__all__ = ["log_event", "log_metric"]
