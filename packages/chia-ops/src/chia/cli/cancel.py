"""``chia cancel``: kill the subprocess trees of running ChiaFunction tasks, all of them or those selected.

Stable. Owns the ``cancel`` command. ``--all`` is chia-dispatch's
:func:`chia.base.pid_registry.kill_all_tracked` over every job (the command
is a Ray job of its own); on a cluster found rather than named (no
--address, no RAY_ADDRESS) it asks first, unless --yes. ``--tag``,
``--function``, ``--task`` (and ``--state``) select unfinished tasks as
``chia status`` lists them, show them with the processes that will be killed,
ask (unless --yes), then apply ``chia_cancel``'s tree kill to them
(:func:`chia.base.pid_registry.cancel_tasks`); nothing selected is
:attr:`ExitCode.NOT_FOUND`.
"""

from __future__ import annotations

import click

from chia.base.pid_registry import cancel_tasks, kill_all_tracked
from chia.cli._cluster import Target, address_option, connected, progress, session_name, yes_option
from chia.cli._exit import CliError, ExitCode
from chia.cli._tasks import TaskRow, filter_options, format_table, list_unfinished, select

__all__ = ["cancel"]


@click.command()
@click.option("--all", "cancel_all", is_flag=True, help="Kill every subprocess tracked by the PID registry.")
@filter_options
@click.option(
    "--grace",
    type=click.FloatRange(min=0, max=3600),
    default=25.0,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL.",
)
@yes_option
@address_option
def cancel(
    cancel_all: bool,
    tags: tuple[str, ...],
    functions: tuple[str, ...],
    states: tuple[str, ...],
    task_ids: tuple[str, ...],
    grace: float,
    yes: bool,
    address: str | None,
) -> None:
    """Kill the subprocess trees of running ChiaFunction tasks: every job's (--all) or the tasks selected.

    Selected tasks (--tag PATTERN, --function NAME, --task ID, --state STATE;
    filters of one kind match any of their values, of different kinds all
    must match) are shown with the processes that will be killed, and the
    command asks before it kills unless --yes. Each task gets chia_cancel's
    kill: SIGTERM to its whole tree, SIGKILL after --grace seconds; a task
    blocked on its subprocess then ends with Ray's TaskCancelledError. A task
    that started no subprocess keeps running (only its own driver can cancel
    it with chia_cancel); a subprocess it starts later is killed.
    """
    selecting = bool(tags or functions or task_ids or states)
    if cancel_all and selecting:
        raise click.UsageError("--all kills every tracked subprocess: give it alone, or select tasks without it")
    if cancel_all:
        with connected(address, "kill every tracked subprocess", yes):
            progress(f"terminating tracked subprocesses (SIGKILL after {grace:g}s)")
            count = kill_all_tracked(grace, all_jobs=True)  # this CLI is a job of its own
        click.echo(f"signalled {count} tracked process(es)")
        return
    if not selecting:
        raise click.UsageError(
            "say what to cancel: --tag PATTERN, --function NAME, --task ID, --state STATE, "
            "or --all (every tracked subprocess)"
        )
    with connected(address) as target:
        listing = list_unfinished(target.address)
        chosen = select(listing.tasks, tags=tags, functions=functions, states=states, task_ids=task_ids)
        if not chosen:
            raise CliError(
                f"no unfinished task matches {_describe(tags, functions, states, task_ids)} "
                f"({len(listing.tasks)} unfinished task(s) on the cluster; `chia status` lists them)",
                ExitCode.NOT_FOUND,
            )
        _show(chosen, task_ids)
        if not yes:
            _confirm(target, chosen)
        progress(f"killing the subprocess trees of {len(chosen)} task(s) (SIGKILL after {grace:g}s)")
        count = cancel_tasks([task.task_id for task in chosen], grace)
    click.echo(f"cancelled {len(chosen)} task(s): signalled {count} process(es)")


def _describe(tags: tuple[str, ...], functions: tuple[str, ...], states: tuple[str, ...], ids: tuple[str, ...]) -> str:
    parts = [
        f"--{flag} {value!r}"
        for flag, values in (("tag", tags), ("function", functions), ("state", states), ("task", ids))
        for value in values
    ]
    return " ".join(parts)


def _show(chosen: list[TaskRow], task_ids: tuple[str, ...]) -> None:
    """What will be killed, on stdout, before anything is."""
    processes = sum(len(task.processes) for task in chosen)
    click.echo(f"{len(chosen)} task(s) selected, {processes} process(es) to kill:")
    for line in format_table(chosen):
        click.echo(f"  {line}")
    idle = sum(not task.processes for task in chosen)
    if idle:
        click.echo(
            f"{idle} of them run no tracked subprocess: they keep running (Ray cancels a task only from its own "
            "driver: chia_cancel), and what they start from now on is killed"
        )
    missing = sorted(set(task_ids) - {task.task_id for task in chosen})
    if missing:
        progress(f"not unfinished (or unknown), left alone: {', '.join(missing)}")


def _confirm(target: Target, chosen: list[TaskRow]) -> None:
    found = " (found on this machine, not named)" if target.detected else ""
    question = (
        f"cancel these {len(chosen)} task(s) on the cluster at {target.address}{found}, session {session_name()}?"
    )
    try:
        accepted = click.confirm(question, err=True)
    except click.Abort:
        accepted = False
    if not accepted:
        raise CliError("did not cancel: not confirmed (pass --yes to cancel without asking)", ExitCode.ERROR)
