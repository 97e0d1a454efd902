"""``chia run``: run a loop script with Ray, bypass, cache and profiling set up.

Owns the lifecycle around one script run: connect to (or embed) Ray, set up
what the options ask for, run the script as ``__main__`` in this process so
the setup applies to its dispatches, then tear down in reverse order and
write the profile next to its log.
"""

from __future__ import annotations

import json
import logging
import math
import re
import runpy
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import ray

from chia.cli._cluster import init_quietly, probe, resolve
from chia.cli._extras import BYPASS, CACHE, needs
from chia.trace import export, profiler, report

logger = logging.getLogger(__name__)

_SIZE = re.compile(r"^\s*(?P<size>\d+(?:\.\d+)?)\s*(?P<units>[A-Za-z]*)\s*$")
TRACE_FILE = "chia-trace.json"
SUMMARY_FILE = "chia-summary.txt"
REPORT_FILE = "chia-report.html"
REPORT_FILE = "chia-report.html"


@dataclass(frozen=True, slots=True)
class CacheSize:
    """A cache budget as the cache takes it: a number and its units (``"GB"``)."""

    size: float
    units: str


CACHE_UNITS = ("B", "KB", "MB", "GB", "TB")
"""The units chia.base.cache.start_cache takes (checked here, before chia run connects to Ray)."""


def parse_cache_size(text: str) -> CacheSize:
    """``"4GB"``, ``"512 MB"``, ``"1000"`` (bytes) -> CacheSize; ValueError naming the text otherwise."""
    match = _SIZE.match(text)
    if match is None or not 0 < float(match["size"]) < math.inf:
        raise ValueError(f"cache size {text!r} is not a positive number with optional units, e.g. 4GB or 512MB")
    units = match["units"].upper() or "B"
    if units not in CACHE_UNITS:
        raise ValueError(
            f"cache size {text!r} has unknown units {match['units']!r}; valid units: {', '.join(CACHE_UNITS)}"
        )
    return CacheSize(float(match["size"]), units)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``chia run`` was asked to do."""

    script: Path
    args: tuple[str, ...]
    address: str | None
    bypass: Path | None
    cache_dir: Path | None
    cache_size: CacheSize | None
    profile_dir: Path | None
    num_cpus: int | None
    strict: bool = False
    """YAML keys naming no ChiaFunction raise (``Bypass(strict=True)``, ``start_cache(strict=True)``)."""


def _run_script(script: Path, args: tuple[str, ...], setup: str) -> int:
    """Run ``script`` as ``__main__`` with ``args``; returns its exit code.

    ``setup`` says what ``chia run`` did to Ray before, for the hint shown when
    the script calls ``ray.init()`` a second time.
    """
    saved_argv = sys.argv
    sys.argv = [str(script), *args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        click.echo(str(exc.code), err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("chia run: interrupted", err=True)
        return 130
    except Exception as exc:
        traceback.print_exc()
        if isinstance(exc, RuntimeError) and "ray.init twice" in str(exc):
            click.echo(
                f"chia run: {script} called ray.init(), but chia run already {setup} (with the cluster, "
                "bypass, cache and profiler its options ask for); in the script, call ray.init() only "
                "`if not ray.is_initialized()`",
                err=True,
            )
        return 1
    finally:
        sys.argv = saved_argv
    return 0


def _write_profile(log_path: str, directory: Path, progress: Callable[[str], None]) -> None:
    data = export.load_profile(log_path)
    trace_path = directory / TRACE_FILE
    trace_path.write_text(json.dumps(export.chrome_trace(data)), encoding="utf-8")
    summary = export.format_summary(export.summarize(data))
    (directory / SUMMARY_FILE).write_text(summary + "\n", encoding="utf-8")
    report_path = report.write_report(data, directory / REPORT_FILE)
    progress(
        f"profile: {len(data.calls)} calls; trace {trace_path} (open in https://ui.perfetto.dev); report {report_path}"
    )
    click.echo(summary, err=True)


def _setup_steps(options: RunOptions, progress: Callable[[str], None]) -> list[Callable[[], None]]:
    """What to set up once Ray runs: bypass, then the cache.

    Checked now, before Ray starts: the distribution each needs is installed
    (else the one-line error naming the extra) and the bypass file is valid.
    """
    steps: list[Callable[[], None]] = []
    bypass_path = str(options.bypass) if options.bypass is not None else None
    if bypass_path is not None:
        with needs(BYPASS, "chia run --bypass"):
            from chia.base.bypass import Bypass, validate_config
        validate_config(bypass_path)

        def activate_bypass() -> None:
            Bypass(yaml_path=bypass_path, strict=options.strict)
            progress(f"bypass configured from {bypass_path}")

        steps.append(activate_bypass)
    cache_dir, size = options.cache_dir, options.cache_size
    if cache_dir is not None and size is not None:
        with needs(CACHE, "chia run --cache-dir"):
            from chia.base.cache import start_cache

        def start_head_cache() -> None:
            start_cache(
                size=size.size,
                cache_dir_path=str(cache_dir),
                units=size.units,
                yaml_path=bypass_path,
                strict=options.strict,
            )
            progress(f"cache at {cache_dir} ({size.size:g} {size.units})")

        steps.append(start_head_cache)
    return steps


def run(options: RunOptions, progress: Callable[[str], None]) -> int:
    """Set up, run the script, tear down; returns the script's exit code."""
    script_dir = str(options.script.resolve().parent)
    if script_dir not in sys.path:
        sys.path.insert(0, script_dir)  # as `python SCRIPT` does; Ray ships the driver's path to workers
    set_up = _setup_steps(options, progress)
    started_ray = False
    setup = "found this process connected to Ray"
    if not ray.is_initialized():
        if options.address:
            target = resolve(options.address)
            probe(target.address)
            progress(f"connecting to Ray at {target.address}")
            init_quietly(target.address, log_to_driver=True)
            setup = f"connected this process to the Ray cluster at {target.address}"
        else:
            progress("starting an embedded local Ray instance")
            setup = "started an embedded local Ray instance for this process"
            ray.init(address="local", num_cpus=options.num_cpus, include_dashboard=False, logging_level=logging.WARNING)
            started_ray = True
    profiling = False
    code = 1
    try:
        for step in set_up:
            step()
        if options.profile_dir is not None:
            profiler.start_collector(log_dir=options.profile_dir)
            profiling = True
            progress(f"profiling to {options.profile_dir}")
        progress(f"running {options.script}")
        code = _run_script(options.script, options.args, setup)
        progress(f"{options.script} exited with code {code}")
    finally:
        try:
            if profiling and not _finish_profile(options, progress):
                code = code or 1
        finally:
            if started_ray:
                progress("stopping the embedded Ray instance")
                ray.shutdown()
    return code


def _finish_profile(options: RunOptions, progress: Callable[[str], None]) -> bool:
    """Stop the collector and write the trace and summary; False (reported) when that fails."""
    progress("collecting the last profile events")
    try:
        log_path = profiler.stop_collector()
        if log_path is not None and options.profile_dir is not None:
            _write_profile(log_path, options.profile_dir, progress)
    except Exception as exc:  # the script's outcome must not be lost to a profiling failure
        logger.debug("profile finalization failed", exc_info=True)
        click.echo(
            f"chia run: could not finish the profile in {options.profile_dir}: {type(exc).__name__}: {exc}", err=True
        )
        return False
    return True
