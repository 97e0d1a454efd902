"""The optional distributions behind chia-ops' extras, and the error naming the extra to install.

Owns which extra brings which distribution (``chia-ops[cache]`` and
``chia-ops[bypass]``: chia-bypass-cache; ``chia-ops[kv]``: chia-placement;
``chia-ops[tools]``: chia-tools) and
:func:`needs`, which turns the import of a missing one into a one-line error.
The commands import the distributions themselves, typed, inside ``with needs(...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import click


@dataclass(frozen=True, slots=True)
class Extra:
    """An extra of chia-ops: the distribution it installs and the public modules a command imports from it."""

    name: str
    distribution: str
    modules: tuple[str, ...]

    def missing(self, command: str) -> str:
        """The one line telling the user of ``command`` what to install (from this repository, not PyPI)."""
        return (
            f"{command} needs {self.distribution}: install chia-ops with its [{self.name}] extra "
            f"from this repository (pip install './packages/chia-ops[{self.name}]')"
        )


CACHE = Extra("cache", "chia-bypass-cache", ("chia.base.cache",))
BYPASS = Extra("bypass", "chia-bypass-cache", ("chia.base.bypass",))
KV = Extra("kv", "chia-placement", ("chia.base.chia_kv_store",))
TOOLS = Extra("tools", "chia-tools", ("chia.base.tools", "chia.base.tools.serve"))


@contextmanager
def needs(extra: Extra, command: str) -> Iterator[None]:
    """Run the block (imports from ``extra``'s distribution); exit with :meth:`Extra.missing` if they fail.

    Only an import of one of ``extra.modules`` (absent, or without the name
    asked for) is reported this way; any other ImportError is a fault of an
    installed distribution and propagates as it is.
    """
    try:
        yield
    except ImportError as exc:
        if exc.name not in extra.modules:
            raise
        raise click.ClickException(extra.missing(command)) from exc
