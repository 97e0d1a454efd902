"""Deprecated alias of :mod:`chia.cli.main`, where the ``chia`` command line moved.

Deprecated: kept because the 0.1 documentation showed
``from chia.trace.cli import cli``; import ``cli`` and ``main`` from
:mod:`chia.cli.main` instead. The commands live in :mod:`chia.cli`.
"""

from __future__ import annotations

from chia.cli.main import cli, main

__all__ = ["cli", "main"]
