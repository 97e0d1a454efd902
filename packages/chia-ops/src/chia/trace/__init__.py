"""chia.trace: the chia profiler and the ``chia`` command line (distribution chia-ops).

Public modules: :mod:`chia.trace.profiler` (collect calls across the cluster),
:mod:`chia.trace.export` (Chrome traces and per-function summaries from the
logs) and :mod:`chia.trace.cli` (the ``chia`` script). Underscore modules are
private.
"""
