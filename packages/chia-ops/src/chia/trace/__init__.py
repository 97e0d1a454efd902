"""chia.trace: the chia profiler (distribution chia-ops).

Public modules: :mod:`chia.trace.profiler` (collect calls across the cluster)
and :mod:`chia.trace.export` (Chrome traces and per-function summaries from
the logs). The ``chia`` command line is :mod:`chia.cli`; ``chia.trace.cli``
is a deprecated alias of :mod:`chia.cli.main`. Underscore modules are private.
"""
