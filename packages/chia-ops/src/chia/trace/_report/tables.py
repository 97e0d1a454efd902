"""The report's tables: the run's facts, the per-function summary and the comparison with a baseline."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence

from chia.trace._report.draw import duration, short_name, text
from chia.trace.compare import FunctionComparison
from chia.trace.export import MODES, CallStats, FunctionSummary, ProfileData

_STATS_COLUMNS = (("calls", "calls"), ("p50", "p50 ms"), ("p95", "p95 ms"), ("queue_p50", "queue p50 ms"))


def _when(ts: float) -> str:
    moment = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def _resources(resources: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {amount:g}" for name, amount in sorted(resources.items())) or "-"


def facts_table(data: ProfileData, origin: float, end: float, source: str | None) -> str:
    """The run's facts as a definition list: when, where, versions, cluster size, what was recorded."""
    facts = data.facts
    items: list[tuple[str, str]] = []
    if facts:
        items.append(("started", _when(min(fact.started for fact in facts))))
    items.append(("duration", duration(end - origin) if data.calls or data.metrics else "-"))
    hosts = sorted({fact.host for fact in facts if fact.host})
    items.append(("host", ", ".join(hosts) or "-"))
    items.append(("head node", ", ".join(sorted(head[:12] for head in data.head_nodes)) or "-"))
    versions: dict[str, str] = {}
    for fact in facts:
        versions.update(fact.versions)
    items.append(("chia", ", ".join(f"{name} {version}" for name, version in sorted(versions.items())) or "-"))
    items.append(("Ray", ", ".join(sorted({fact.ray_version for fact in facts if fact.ray_version})) or "-"))
    sized = [fact for fact in facts if fact.nodes is not None]
    if sized:
        fact = sized[0]
        items.append(("cluster", f"{fact.nodes} node(s): {_resources(fact.resources)}"))
    else:
        items.append(("cluster", "-"))
    unfinished = sum(call.duration is None for call in data.calls)
    recorded = f"{len(data.calls)} calls" + (f" ({unfinished} unfinished)" if unfinished else "")
    recorded += f", {len(data.events)} events, {len(data.metrics)} metric points"
    if data.dropped:
        recorded += f", {data.dropped} rows dropped (buffers full)"
    items.append(("recorded", recorded))
    items.append(("sessions", ", ".join(data.sessions) or "-"))
    if source:
        items.append(("log", source))
    body = "".join(f'<dt>{text(name)}</dt><dd data-fact="{text(name)}">{text(value)}</dd>' for name, value in items)
    return f'<dl class="facts">{body}</dl>'


def _ms_cell(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _stats_cells(mode: str, stats: CallStats) -> str:
    cells = []
    for key, _label in _STATS_COLUMNS:
        value = stats.count if key == "calls" else getattr(stats, key)
        shown = (str(value) if value else "-") if key == "calls" else _ms_cell(value)
        cells.append(f'<td class="num {mode}" data-col="{mode}.{key}">{shown}</td>')
    return "".join(cells)


def summary_table(rows: Sequence[FunctionSummary], colours: Mapping[str, str]) -> str:
    """Per function: real, cached and replayed calls in column groups, then failures, cancels, unfinished."""
    group_header = "".join(f'<th colspan="{len(_STATS_COLUMNS)}" class="group {mode}">{mode}</th>' for mode in MODES)
    column_header = "".join(f'<th class="num {mode}">{label}</th>' for mode in MODES for _key, label in _STATS_COLUMNS)
    totals = ("failed", "cancelled", "unfinished", "total ms", "nodes")
    lines = [
        '<table id="summary" class="summary"><thead>'
        f'<tr><th rowspan="2">function</th>{group_header}'
        + "".join(f'<th rowspan="2" class="num">{name}</th>' for name in totals)
        + f"</tr><tr>{column_header}</tr></thead><tbody>"
    ]
    for row in rows:
        modes = row.by_mode()
        failed = sum(stats.failed for stats in modes.values())
        lines.append(
            f'<tr data-function="{text(row.function)}">'
            f'<td class="fn" data-tip="{text(row.function)}"><span class="swatch" '
            f'style="background:{colours[row.function]}"></span>{text(short_name(row.function))}</td>'
            + "".join(_stats_cells(mode, modes[mode]) for mode in MODES)
            + f'<td class="num" data-col="failed">{failed}</td>'
            f'<td class="num" data-col="cancelled">{row.cancelled}</td>'
            f'<td class="num" data-col="unfinished">{row.unfinished}</td>'
            f'<td class="num" data-col="total_ms">{row.total * 1e3:.1f}</td>'
            f'<td class="num" data-col="nodes">{len(row.nodes)}</td></tr>'
        )
    lines.append("</tbody></table>")
    return "".join(lines)


def _ratio_cell(ratio: float | None, column: str) -> str:
    if ratio is None:
        return f'<td class="num" data-col="{column}">-</td>'
    trend = "slower" if ratio > 1.1 else ("faster" if ratio < 1 / 1.1 else "same")
    return f'<td class="num ratio {trend}" data-col="{column}">{ratio:.2f}</td>'


def comparison_table(rows: Sequence[FunctionComparison]) -> str:
    """The baseline (A) against this run (B), per function and mode; ratios B/A."""
    header = "".join(
        f'<th class="num">{name}</th>'
        for name in ("calls A", "calls B", "p50 A ms", "p50 B ms", "p50 B/A", "p95 A ms", "p95 B ms", "p95 B/A")
    )
    lines = [
        f'<table id="comparison" class="summary"><thead><tr><th>function</th><th>mode</th>{header}</tr></thead><tbody>'
    ]
    for row in rows:
        lines.append(
            f'<tr data-function="{text(row.function)}" data-mode="{row.mode}">'
            f'<td class="fn" data-tip="{text(row.function)}">{text(short_name(row.function))}</td><td>{row.mode}</td>'
            f'<td class="num" data-col="calls_a">{row.a.count}</td><td class="num" data-col="calls_b">{row.b.count}</td>'
            f'<td class="num">{_ms_cell(row.a.p50)}</td><td class="num">{_ms_cell(row.b.p50)}</td>'
            + _ratio_cell(row.p50_ratio, "p50_ratio")
            + f'<td class="num">{_ms_cell(row.a.p95)}</td><td class="num">{_ms_cell(row.b.p95)}</td>'
            + _ratio_cell(row.p95_ratio, "p95_ratio")
            + "</tr>"
        )
    lines.append("</tbody></table>")
    return "".join(lines)
