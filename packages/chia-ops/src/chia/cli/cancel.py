"""``chia cancel``: kill the subprocess trees of running ChiaFunction tasks.

Stable. Owns the ``cancel`` command: ``--all`` is chia-dispatch's
:func:`chia.base.pid_registry.kill_all_tracked` over every job (the command
is a Ray job of its own). It kills: on a cluster found rather than named (no
--address, no RAY_ADDRESS) it asks first, unless --yes.
"""

from __future__ import annotations

import click

from chia.base.pid_registry import kill_all_tracked
from chia.cli._cluster import address_option, connected, progress, yes_option

__all__ = ["cancel"]


@click.command()
@click.option("--all", "cancel_all", is_flag=True, help="Kill every subprocess tracked by the PID registry.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0, max=3600),
    default=25.0,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL.",
)
@yes_option
@address_option
def cancel(cancel_all: bool, grace: float, yes: bool, address: str | None) -> None:
    """Kill the subprocess trees of running ChiaFunction tasks, in every job (the registry's kill_all)."""
    if not cancel_all:
        raise click.UsageError("say what to cancel: --all (every tracked subprocess)")
    with connected(address, "kill every tracked subprocess", yes):
        progress(f"terminating tracked subprocesses (SIGKILL after {grace:g}s)")
        count = kill_all_tracked(grace, all_jobs=True)  # this CLI is a job of its own
    click.echo(f"signalled {count} tracked process(es)")
