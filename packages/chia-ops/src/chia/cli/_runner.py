"""``chia run``: run a loop script with Ray, bypass, cache and profiling set up.

Owns the lifecycle around one script run: connect to (or embed) Ray, set up
what the options ask for, run the script as ``__main__`` in this process so
the setup applies to its dispatches, then tear down in reverse order and
write the profile next to its log. What a run starts it stops: the cache
actor of ``--cache-dir`` lives in a Ray namespace named after the directory
(:func:`cache_namespace`), is stopped when the script ends, and a cache left
running there (by a run that was killed) is taken over by the next run of the
same directory, which says so and leaves it running.
"""

from __future__ import annotations

import hashlib
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
from typing import Any

import click
import ray

from chia.cli._cluster import init_quietly, probe, resolve, route_ray_messages_to_stderr
from chia.cli._extras import BYPASS, CACHE, needs
from chia.trace import export, profiler, report

logger = logging.getLogger(__name__)

_SIZE = re.compile(r"^\s*(?P<size>\d+(?:\.\d+)?)\s*(?P<units>[A-Za-z]*)\s*$")
TRACE_FILE = "chia-trace.json"
SUMMARY_FILE = "chia-summary.txt"
REPORT_FILE = "chia-report.html"

Teardown = Callable[[], None]
SetupStep = Callable[[], Teardown | None]
"""Sets one thing up once Ray runs; returns how to undo it at the end of the run, if the run must."""


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
    working_dir: Path | None = None
    py_modules: tuple[Path, ...] = ()
    strict: bool = False
    """YAML keys naming no ChiaFunction raise (``Bypass(strict=True)``, ``start_cache(strict=True)``)."""

    def runtime_env(self) -> dict[str, Any] | None:
        """The job's Ray runtime_env that ships the loop's code to workers (None: nothing to ship)."""
        runtime_env: dict[str, Any] = {}
        if self.working_dir is not None:
            runtime_env["working_dir"] = str(self.working_dir)
        if self.py_modules:
            runtime_env["py_modules"] = [str(path) for path in self.py_modules]
        return runtime_env or None


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


def cache_namespace(cache_dir: Path) -> str:
    """The Ray namespace of ``chia run``'s cache actor for ``cache_dir``: one per directory, the same every run."""
    digest = hashlib.sha256(str(cache_dir.expanduser().resolve()).encode()).hexdigest()
    return f"chia-cache-{digest[:12]}"


def _setup_steps(options: RunOptions, progress: Callable[[str], None]) -> list[SetupStep]:
    """What to set up once Ray runs: bypass, then the cache.

    Checked now, before Ray starts: the distribution each needs is installed
    (else the one-line error naming the extra) and the bypass file is valid.
    """
    steps: list[SetupStep] = []
    bypass_path = str(options.bypass) if options.bypass is not None else None
    if bypass_path is not None:
        with needs(BYPASS, "chia run --bypass"):
            from chia.base.bypass import Bypass, validate_config
        validate_config(bypass_path)

        def activate_bypass() -> None:
            Bypass(yaml_path=bypass_path, strict=options.strict)
            progress(f"bypass configured from {bypass_path}")
            return None  # the bypass lives in this process and ends with it

        steps.append(activate_bypass)
    cache_dir, size = options.cache_dir, options.cache_size
    if cache_dir is not None and size is not None:
        with needs(CACHE, "chia run --cache-dir"):
            from chia.base.cache import get_active_cache, start_cache, stop_cache

        def start_head_cache() -> Teardown | None:
            namespace = cache_namespace(cache_dir)
            left_running = get_active_cache(namespace) is not None
            try:
                start_cache(
                    size=size.size,
                    cache_dir_path=str(cache_dir),
                    units=size.units,
                    yaml_path=bypass_path,
                    namespace=namespace,
                    strict=options.strict,
                )
            except BlockingIOError as exc:  # a cache actor chia run did not start holds the directory
                raise RuntimeError(
                    f"{exc}; stop that cache actor first: `chia cache stop` (--namespace NAME when several run)"
                ) from exc
            if left_running:
                progress(
                    f"cache at {cache_dir}: using the cache actor already running for this directory (Ray namespace "
                    f"{namespace}, left by an earlier or concurrent run); it stays running after this run "
                    f"(`chia cache stop --namespace {namespace}` stops it)"
                )
                return None
            progress(f"cache at {cache_dir} ({size.size:g} {size.units}), Ray namespace {namespace}")

            def stop_head_cache() -> None:
                stop_cache(namespace=namespace)
                progress(f"stopped the cache actor; {cache_dir} keeps its entries for the next run")

            return stop_head_cache

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
    runtime_env = options.runtime_env()
    if ray.is_initialized() and runtime_env is not None:
        raise ValueError(
            "--working-dir and --py-module need chia run to connect to Ray, but Ray is already initialized"
        )
    if not ray.is_initialized():
        route_ray_messages_to_stderr()
        if runtime_env is not None:
            progress(f"shipping to the workers: {runtime_env}")
        if options.address:
            target = resolve(options.address)
            probe(target.address)
            progress(f"connecting to Ray at {target.address}")
            init_quietly(target.address, log_to_driver=True, runtime_env=runtime_env)
            setup = f"connected this process to the Ray cluster at {target.address}"
        else:
            progress("starting an embedded local Ray instance")
            setup = "started an embedded local Ray instance for this process"
            ray.init(
                address="local",
                num_cpus=options.num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                runtime_env=runtime_env,
            )
            started_ray = True
    profiling = False
    code = 1
    teardowns: list[Teardown] = []
    try:
        for step in set_up:
            teardown = step()
            if teardown is not None:
                teardowns.append(teardown)
        if options.profile_dir is not None:
            profiler.start_collector(log_dir=options.profile_dir.resolve())  # the collector runs elsewhere
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
            try:
                _tear_down(teardowns)
            finally:
                if started_ray:
                    progress("stopping the embedded Ray instance")
                    ray.shutdown()
    return code


def _tear_down(teardowns: list[Teardown]) -> None:
    """Undo the setup steps, last first; each runs even when an earlier one raised (the first error is raised)."""
    if teardowns:
        last = teardowns.pop()
        try:
            last()
        finally:
            _tear_down(teardowns)


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
