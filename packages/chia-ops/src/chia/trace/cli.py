"""The ``chia`` command line: run loop scripts and steer a running cluster.

Stable. Owns the click commands; each reaches Ray through
:mod:`chia.trace._cluster` and imports the distribution it drives
(chia-placement for ``kv``, chia-bypass-cache for ``cache``/``bypass``,
chia-dispatch's PID registry for ``cancel``) only when run, so chia-ops
depends on none of them. Failures print one clear line and exit non-zero
(1 for errors, 2 for usage)::

    chia run loop.py --iterations 3 --profile /tmp/prof
    chia profile summary /tmp/prof
    chia profile report /tmp/prof -o report.html
    chia status
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import ray

from chia.trace import compare, export, profiler, report
from chia.trace._cluster import available_resources, cluster_resources, connected, find_named_actor, ray_nodes, require
from chia.trace._run import CacheSize, RunOptions, parse_cache_size
from chia.trace._run import run as run_script

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])

_RAY_TIMEOUT_S = 60.0


def _progress(message: str) -> None:
    click.echo(f"chia: {message}", err=True)


def _address_option(fn: F) -> F:
    decorated: F = click.option(
        "--address",
        envvar="RAY_ADDRESS",
        default=None,
        metavar="HOST:PORT",
        help="Ray cluster to connect to (default: $RAY_ADDRESS, else the latest cluster started on this machine).",
    )(fn)
    return decorated


def _emit_json(document: Any, output: str) -> None:
    text = json.dumps(document, indent=None if output != "-" else 2)
    if output == "-":
        click.echo(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
        _progress(f"wrote {output}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chia-ops", prog_name="chia")
def cli() -> None:
    """Run chia loop scripts and steer a running chia cluster."""


# --- chia run ----------------------------------------------------------------------


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@_address_option
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
) -> None:
    """Run SCRIPT [ARGS]... as __main__ with Ray, bypass, cache and profiling set up.

    Without --address (or $RAY_ADDRESS) an embedded local Ray instance is
    started for the run and stopped after it. Options go before SCRIPT;
    everything after SCRIPT is passed to it. Exits with the script's code.
    The script finds Ray initialized (call ray.init() only when
    not ray.is_initialized()).
    """
    if (cache_dir is None) != (cache_size is None):
        raise click.UsageError("--cache-dir and --cache-size go together")
    size: CacheSize | None = None
    if cache_size is not None:
        try:
            size = parse_cache_size(cache_size)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cache-size") from None
    options = RunOptions(script, args, address, bypass, cache_dir, size, profile_dir, num_cpus)
    try:
        code = run_script(options, _progress)
    except (ValueError, OSError, RuntimeError) as exc:
        raise click.ClickException(f"chia run {script}: {exc}") from exc
    ctx.exit(code)


# --- chia status ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as ``chia status`` reports it."""

    node_id: str
    address: str
    alive: bool
    head: bool
    resources: dict[str, float]


def _format_resources(total: dict[str, float], free: dict[str, float] | None = None) -> str:
    """``CPU 1/2, GPU 0/1`` (free/total), or just the totals; memory and node markers left out."""
    parts = []
    for name in sorted(total):
        if name.startswith("node:") or name in ("memory", "object_store_memory"):
            continue
        amount = f"{total[name]:g}" if free is None else f"{free.get(name, 0.0):g}/{total[name]:g}"
        parts.append(f"{name} {amount}")
    return ", ".join(parts) or "-"


@cli.command()
@_address_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead of text.")
def status(address: str | None, as_json: bool) -> None:
    """Nodes, resources (free/total) and the named actors running (chia's and others)."""
    with connected(address):
        nodes = [
            NodeStatus(
                node["NodeID"],
                str(node.get("NodeManagerAddress")),
                bool(node.get("Alive")),
                "node:__internal_head__" in node.get("Resources", {}),
                dict(node.get("Resources", {})),
            )
            for node in ray_nodes()
        ]
        total = cluster_resources()
        free = available_resources()
        actors = sorted(
            ray.util.list_named_actors(all_namespaces=True), key=lambda entry: (entry["namespace"], entry["name"])
        )
        collector_info = None
        collector = profiler.get_collector() or _collector_anywhere()
        if collector is not None:
            collector_info = ray.get(collector.info.remote(), timeout=_RAY_TIMEOUT_S)
    document = {
        "nodes": [asdict(node) for node in nodes],
        "resources": {"total": total, "available": free},
        "actors": actors,
        "profile_collector": collector_info,
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    alive = [node for node in nodes if node.alive]
    click.echo(f"{len(alive)} node(s) alive, {len(nodes) - len(alive)} dead")
    for node in alive:
        role = " (head)" if node.head else ""
        click.echo(f"  {node.node_id[:12]} {node.address}{role}: {_format_resources(node.resources)}")
    click.echo(f"resources (free/total): {_format_resources(total, free)}")
    click.echo(f"named actors: {len(actors)}")
    for entry in actors:
        click.echo(f"  {entry['name']}  (namespace {entry['namespace']})")
    if collector_info is not None:
        click.echo(f"profile collector: {collector_info['records']} rows -> {collector_info['log_path']}")


def _collector_anywhere() -> Any:
    names = [e for e in ray.util.list_named_actors(all_namespaces=True) if e["name"] == profiler.COLLECTOR_NAME]
    if len(names) != 1:
        return None
    return ray.get_actor(profiler.COLLECTOR_NAME, namespace=names[0]["namespace"])


# --- chia profile ---------------------------------------------------------------------


@cli.group()
def profile() -> None:
    """Export and summarize chia profiles (from a log directory or the live collector)."""


def _profile_document(source: Path | None, fmt: str, address: str | None, namespace: str | None) -> Any:
    if source is not None:
        try:
            data = export.load_profile(source)
        except (FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        _progress(f"read {len(data.calls)} calls and {len(data.events)} events from {source}")
        return export.render(data, fmt)
    with connected(address):
        collector = find_named_actor(profiler.COLLECTOR_NAME, namespace, "profile collector")
        _progress("asking the running collector for its profile")
        return ray.get(collector.export.remote(fmt), timeout=_RAY_TIMEOUT_S)


_source_argument = click.argument("source", required=False, type=click.Path(exists=True, path_type=Path))
_namespace_option = click.option("--namespace", help="Ray namespace of the live collector (default: search all).")


@profile.command("export")
@_source_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(export.FORMATS),
    default="chrome",
    show_default=True,
    help="chrome: trace-event JSON for Perfetto / chrome://tracing; json: calls, events, summary.",
)
@click.option("-o", "--output", default="-", show_default=True, help="Output file ('-' for stdout).")
@_address_option
@_namespace_option
def profile_export(source: Path | None, fmt: str, output: str, address: str | None, namespace: str | None) -> None:
    """Export SOURCE (a profile log or its directory), or the live collector's profile."""
    _emit_json(_profile_document(source, fmt, address, namespace), output)


@profile.command("summary")
@_source_argument
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_address_option
@_namespace_option
def profile_summary(source: Path | None, as_json: bool, address: str | None, namespace: str | None) -> None:
    """Per-function and mode table: calls, total, p50, p95, queue time, failures (times in ms, as in --json)."""
    rows = _profile_document(source, "json", address, namespace)["summary"]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    summaries = [export.FunctionSummary.from_json(row) for row in rows]
    click.echo(export.format_summary(summaries) if summaries else "no calls recorded")


def _load(source: Path) -> export.ProfileData:
    try:
        data = export.load_profile(source)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    _progress(f"read {len(data.calls)} calls from {source}")
    return data


_log_argument = click.Path(exists=True, path_type=Path)


@profile.command("report")
@click.argument("source", type=_log_argument)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default="chia-report.html",
    show_default=True,
    help="HTML file to write.",
)
@click.option("--baseline", type=_log_argument, help="A run (log or directory) to compare with.")
@click.option("--title", help="The page's title (default: the session ids).")
def profile_report(source: Path, output: Path, baseline: Path | None, title: str | None) -> None:
    """Write a self-contained HTML report of SOURCE (a profile log or its directory); prints its path."""
    data = _load(source)
    base = _load(baseline) if baseline is not None else None
    click.echo(report.write_report(data, output, baseline=base, title=title))


@profile.command("compare")
@click.argument("a", type=_log_argument)
@click.argument("b", type=_log_argument)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON (times in ms, as in the table).")
def profile_compare(a: Path, b: Path, as_json: bool) -> None:
    """Per function and mode: calls, p50 and p95 of run A and run B, and B/A (logs or directories)."""
    rows = compare.compare(_load(a), _load(b))
    if as_json:
        click.echo(json.dumps(compare.comparison_document(rows), indent=2))
        return
    click.echo(compare.format_comparison(rows) if rows else "no calls recorded in either run")


# --- chia bypass -------------------------------------------------------------------------


@cli.group()
def bypass() -> None:
    """Bypass configuration tools (needs chia-bypass-cache)."""


@bypass.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def bypass_validate(file: Path) -> None:
    """Check a bypass/cache YAML FILE without a cluster."""
    module = require("chia.base.bypass", ("validate_config",), "chia-bypass-cache", "bypass validate")
    if not file.exists():
        raise click.ClickException(f"bypass config {str(file)!r} does not exist")
    try:
        module.validate_config(str(file))
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{file}: valid")


# --- chia kv -------------------------------------------------------------------------------


@cli.group()
def kv() -> None:
    """Read and adjust a live KV store actor (needs chia-placement).

    VALUEs are parsed as Python or JSON literals (4, 0.5, true, None,
    [1, 2]) and kept as text otherwise. Exit codes: 1 store error (no such
    store, key not set, version conflict), 3 no reachable cluster.
    """


def _kv_options(fn: F) -> F:
    fn = click.option("--namespace", required=True, help="Ray namespace of the KV store actor.")(fn)
    fn = click.option("--name", required=True, help="Name of the KV store actor.")(fn)
    return _address_option(fn)


def _kv_main(ctx: click.Context, name: str, namespace: str, address: str | None, action: list[str]) -> None:
    """Run the KV store's own operator CLI (one implementation of the semantics and exit codes)."""
    module = require("chia.base.chia_kv_store", ("attach_kv_store", "main"), "chia-placement", "kv")
    argv = ["--name", name, "--namespace", namespace, *action]
    if address:
        argv += ["--address", address]
    ctx.exit(module.main(argv))


@kv.command("get")
@click.argument("key")
@_kv_options
@click.pass_context
def kv_get(ctx: click.Context, key: str, name: str, namespace: str, address: str | None) -> None:
    """Print KEY's value (exit 1 when KEY is not set)."""
    _kv_main(ctx, name, namespace, address, ["--get", key])


@kv.command("set")
@click.argument("key")
@click.argument("value")
@click.option(
    "--if-version",
    type=click.IntRange(min=0),
    metavar="N",
    help="Apply only if KEY is still at version N (0: only if unset); see `chia kv list`.",
)
@_kv_options
@click.pass_context
def kv_set(
    ctx: click.Context, key: str, value: str, if_version: int | None, name: str, namespace: str, address: str | None
) -> None:
    """Set KEY to VALUE and print its new version."""
    action = ["--set", key, value] + (["--if-version", str(if_version)] if if_version is not None else [])
    _kv_main(ctx, name, namespace, address, action)


@kv.command("list")
@_kv_options
@click.pass_context
def kv_list(ctx: click.Context, name: str, namespace: str, address: str | None) -> None:
    """Print every key with its value and version."""
    _kv_main(ctx, name, namespace, address, ["--list"])


@kv.command("delete")
@click.argument("key")
@_kv_options
@click.pass_context
def kv_delete(ctx: click.Context, key: str, name: str, namespace: str, address: str | None) -> None:
    """Remove KEY (exit 1 when it was not set)."""
    _kv_main(ctx, name, namespace, address, ["--delete", key])


# --- chia cache ----------------------------------------------------------------------------


@cli.group()
def cache() -> None:
    """Inspect and trim the head-node output cache (needs chia-bypass-cache)."""


def _cache_options(fn: F) -> F:
    fn = click.option("--namespace", help="Ray namespace the cache was started in (default: search all).")(fn)
    return _address_option(fn)


def _cache_module() -> Any:
    return require("chia.base.cache", ("get_active_cache",), "chia-bypass-cache", "cache")


def _cache_actor(module: Any, namespace: str | None) -> Any:
    if namespace is not None:
        handle = module.get_active_cache(namespace)
        if handle is None:
            raise click.ClickException(f"no cache actor is running in Ray namespace {namespace!r}")
        return handle
    namespaces = sorted({entry["namespace"] for entry in ray.util.list_named_actors(all_namespaces=True)})
    found = {ns: handle for ns in namespaces if (handle := module.get_active_cache(ns)) is not None}
    if not found:
        raise click.ClickException(
            "no cache actor is running in any Ray namespace; a driver starts one with start_cache()"
        )
    if len(found) > 1:
        raise click.ClickException(f"caches run in namespaces {sorted(found)}; choose one with --namespace")
    return next(iter(found.values()))


@cache.command("ls")
@_cache_options
def cache_ls(namespace: str | None, address: str | None) -> None:
    """List cached tags, least recently used first."""
    module = _cache_module()
    with connected(address):
        keys = ray.get(_cache_actor(module, namespace).keys.remote(), timeout=_RAY_TIMEOUT_S)
    for key in keys:
        click.echo(key)


@cache.command("stats")
@_cache_options
def cache_stats(namespace: str | None, address: str | None) -> None:
    """Entries, bytes, budget, hits, misses and evictions as JSON."""
    module = _cache_module()
    with connected(address):
        stats = ray.get(_cache_actor(module, namespace).stats.remote(), timeout=_RAY_TIMEOUT_S)
    click.echo(json.dumps(stats, indent=2, sort_keys=True))


@cache.command("evict")
@click.argument("tags", nargs=-1, required=True)
@_cache_options
def cache_evict(tags: tuple[str, ...], namespace: str | None, address: str | None) -> None:
    """Remove TAGS from the cache (memory and disk); exit 1 if one was not cached."""
    module = _cache_module()
    with connected(address):
        actor = _cache_actor(module, namespace)
        removed = ray.get([actor.evict.remote(tag) for tag in tags], timeout=_RAY_TIMEOUT_S)
    missing = [tag for tag, was_there in zip(tags, removed, strict=True) if not was_there]
    click.echo(f"evicted {len(tags) - len(missing)} of {len(tags)}")
    if missing:
        raise click.ClickException(f"not in the cache: {', '.join(missing)}")


@cache.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_cache_options
def cache_clear(yes: bool, namespace: str | None, address: str | None) -> None:
    """Delete every entry (memory and disk)."""
    module = _cache_module()
    with connected(address):
        actor = _cache_actor(module, namespace)
        if not yes:
            entries = ray.get(actor.stats.remote(), timeout=_RAY_TIMEOUT_S)["entries"]
            click.confirm(f"delete all {entries} cache entries?", abort=True)
        _progress("deleting cache entries")
        count = ray.get(actor.flush.remote(), timeout=_RAY_TIMEOUT_S)
    click.echo(f"deleted {count} entries")


# --- chia cancel ----------------------------------------------------------------------------


@cli.command()
@click.option("--all", "cancel_all", is_flag=True, help="Kill every subprocess tracked by the PID registry.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=25.0,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL.",
)
@_address_option
def cancel(cancel_all: bool, grace: float, address: str | None) -> None:
    """Kill the subprocess trees of running ChiaFunction tasks, in every job (the registry's kill_all)."""
    if not cancel_all:
        raise click.UsageError("say what to cancel: --all (every tracked subprocess)")
    module = require("chia.base.pid_registry", ("kill_all_tracked",), "chia-dispatch", "cancel")
    with connected(address):
        _progress(f"terminating tracked subprocesses (SIGKILL after {grace:g}s)")
        count = module.kill_all_tracked(grace, all_jobs=True)  # this CLI is a job of its own
    click.echo(f"signalled {count} tracked process(es)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chia`` script; returns the exit code. Stable."""
    try:
        result = cli.main(args=argv, prog_name="chia", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return result if isinstance(result, int) else 0
