"""``chia profile``: export, summarize, report and compare profiles, from a log or from the live collector.

Stable. Owns the ``profile`` command group. Each sub-command reads its
profile through :func:`_profile_document` (a log file or directory offline,
else the running collector, found in any namespace or the one given) and
renders it with :mod:`chia.trace.export`; a new sub-command adds itself with
``@profile.command(...)`` and reuses the ``SOURCE`` argument and the
``--namespace``/``--address`` options below.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import ray

from chia.cli._cluster import RAY_TIMEOUT_S, address_option, connected, find_named_actor, progress
from chia.trace import compare, export, profiler, report

__all__ = ["profile"]


@click.group()
def profile() -> None:
    """Export and summarize chia profiles (from a log directory or the live collector)."""


def _profile_document(source: Path | None, fmt: str, address: str | None, namespace: str | None) -> Any:
    """The profile rendered as ``fmt`` (one of :data:`chia.trace.export.FORMATS`), from ``source`` or the collector."""
    if source is not None:
        try:
            data = export.load_profile(source)
        except (FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        progress(f"read {len(data.calls)} calls and {len(data.events)} events from {source}")
        return export.render(data, fmt)
    with connected(address):
        collector = find_named_actor(profiler.COLLECTOR_NAME, namespace, "profile collector")
        progress("asking the running collector for its profile")
        return ray.get(collector.export.remote(fmt), timeout=RAY_TIMEOUT_S)


def _emit_json(document: Any, output: str) -> None:
    text = json.dumps(document, indent=None if output != "-" else 2)
    if output == "-":
        click.echo(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
        progress(f"wrote {output}")


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
@address_option
@_namespace_option
def profile_export(source: Path | None, fmt: str, output: str, address: str | None, namespace: str | None) -> None:
    """Export SOURCE (a profile log or its directory), or the live collector's profile."""
    _emit_json(_profile_document(source, fmt, address, namespace), output)


@profile.command("summary")
@_source_argument
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@address_option
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
    progress(f"read {len(data.calls)} calls from {source}")
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
