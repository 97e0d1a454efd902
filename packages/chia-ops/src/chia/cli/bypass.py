"""``chia bypass``: bypass configuration tools (chia-bypass-cache, the ``[bypass]`` extra).

Stable. Owns the ``bypass`` command group: ``validate`` checks a bypass/cache
YAML file with chia-bypass-cache's own parser, without a cluster.
"""

from __future__ import annotations

from pathlib import Path

import click

from chia.cli._exit import CliError, ExitCode
from chia.cli._extras import BYPASS, needs

__all__ = ["bypass"]


@click.group()
def bypass() -> None:
    """Bypass configuration tools (needs chia-bypass-cache)."""


@bypass.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def bypass_validate(file: Path) -> None:
    """Check a bypass/cache YAML FILE without a cluster."""
    with needs(BYPASS, "chia bypass"):
        from chia.base.bypass import validate_config
    if not file.exists():
        raise CliError(f"bypass config {str(file)!r} does not exist", ExitCode.NOT_FOUND)
    try:
        validate_config(str(file))
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    click.echo(f"{file}: valid")
