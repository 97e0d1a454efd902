"""``chia run``: run a loop script with Ray, bypass, cache and profiling set up.

Stable. Owns the ``run`` command: it parses and checks the options, then
hands them to the private lifecycle in :mod:`chia.cli._runner`. ``--bypass``
needs chia-bypass-cache (the ``[bypass]`` extra), ``--cache-dir`` too (the
``[cache]`` extra).
"""

from __future__ import annotations

from pathlib import Path

import click

from chia.cli._cluster import address_option, progress
from chia.cli._runner import CacheSize, RunOptions, parse_cache_size
from chia.cli._runner import run as run_script

__all__ = ["run"]


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@address_option
@click.option("--bypass", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Bypass/cache YAML.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="Output cache directory (head).")
@click.option("--cache-size", metavar="SIZE", help="Cache budget, e.g. 4GB (required with --cache-dir).")
@click.option(
    "--profile",
    "profile_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Profile the run: log, Chrome trace and summary go to this directory.",
)
@click.option("--num-cpus", type=click.IntRange(min=1), help="CPUs of the embedded Ray instance (default: all).")
@click.option(
    "--working-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Ship this directory to every worker, as their working directory (Ray runtime_env working_dir).",
)
@click.option(
    "--py-module",
    "py_modules",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Ship this package directory or module file to every worker (Ray runtime_env py_modules); repeatable.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="A --bypass YAML key naming no @ChiaFunction of the script is an error (UnknownFunctionError), not a warning.",
)
@click.pass_context
def run(
    ctx: click.Context,
    script: Path,
    args: tuple[str, ...],
    address: str | None,
    bypass: Path | None,
    cache_dir: Path | None,
    cache_size: str | None,
    profile_dir: Path | None,
    num_cpus: int | None,
    working_dir: Path | None,
    py_modules: tuple[Path, ...],
    strict: bool,
) -> None:
    """Run SCRIPT [ARGS]... as __main__ with Ray, bypass, cache and profiling set up.

    Without --address (or $RAY_ADDRESS) an embedded local Ray instance is
    started for the run and stopped after it. Options go before SCRIPT;
    everything after SCRIPT is passed to it. Exits with the script's code.
    The script finds Ray initialized (call ray.init() only when
    not ray.is_initialized()); --working-dir and --py-module ship its code
    to workers on other machines. Bypass and cache keys that name no
    @ChiaFunction are reported at the script's first chia_remote: a warning,
    or with --strict an error raised there.
    """
    if strict and bypass is None:
        raise click.UsageError("--strict applies to the --bypass YAML: give --bypass too")
    if (cache_dir is None) != (cache_size is None):
        raise click.UsageError("--cache-dir and --cache-size go together")
    size: CacheSize | None = None
    if cache_size is not None:
        try:
            size = parse_cache_size(cache_size)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cache-size") from None
    options = RunOptions(
        script, args, address, bypass, cache_dir, size, profile_dir, num_cpus, working_dir, py_modules, strict
    )
    try:
        code = run_script(options, progress)
    except (ValueError, OSError, RuntimeError) as exc:
        raise click.ClickException(f"chia run {script}: {exc}") from exc
    ctx.exit(code)
