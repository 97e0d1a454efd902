"""The report's timeline: a lane per node and worker, a bar per call coloured by function.

Calls that overlap on one worker (a local call inside a task, threads) take
sub-rows. Calls narrower than a unit of the drawing (a pixel at the page's
width) share a bar with the others starting in the same unit: it takes the
colour of the function that ran longest in it, the mark of its worst state
(failed, cancelled, unfinished), and says how many calls it holds; touching
bars that look the same join. So a profile of many thousands of calls draws
at most a bar per pixel and row, and the page stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from chia.trace._report.draw import attributes, duration, short_name, text
from chia.trace.export import CallRecord, ProfileData

WIDTH = 1000.0
"""Drawing units across the whole run (the page scales them to its width; zoom narrows the view)."""

ROW_HEIGHT = 11
LANE_GAP = 5
MAX_ROWS = 4
"""Sub-rows per lane: calls overlapping beyond this many share the last one."""

LABEL_WIDTH = 290
MIN_WIDTH = 0.6
"""Narrowest bar drawn (drawing units), so the shortest calls stay visible."""

MERGE_BELOW = 1.0
"""Calls narrower than this (drawing units) merge with touching neighbours of the same kind."""


@dataclass(slots=True)
class _Lane:
    label: str
    calls: list[CallRecord] = field(default_factory=list)


_WORST_FIRST = ("failed", "cancelled", "unfinished", "ok")


@dataclass(slots=True)
class _Bar:
    x0: float
    x1: float
    calls: list[CallRecord]
    binned: bool
    _look: tuple[str, str, str] | None = None

    def look(self) -> tuple[str, str, str]:
        """(function, mode, status) drawn: the longest-running function and mode, the worst status.

        Joining two bars that look the same keeps that look (the longest-running
        function of each is the longest-running of both), so it is kept once computed.
        """
        if self._look is None:
            self._look = self._compute_look()
        return self._look

    def _compute_look(self) -> tuple[str, str, str]:
        if len(self.calls) == 1:
            call = self.calls[0]
            return call.function, call.mode, call.status
        weight: dict[tuple[str, str], float] = {}
        for call in self.calls:
            key = (call.function, call.mode)
            weight[key] = weight.get(key, 0.0) + (call.duration or 0.0) + 1e-9
        function, mode = max(weight, key=weight.__getitem__)
        statuses = {call.status for call in self.calls}
        return function, mode, next(status for status in _WORST_FIRST if status in statuses)


@dataclass(frozen=True, slots=True)
class Timeline:
    """The drawn timeline: its label column, its plot and how many bars and calls it shows."""

    labels_svg: str
    plot_svg: str
    height: int
    bars: int
    calls: int


def _lanes(data: ProfileData, origin: float, end: float) -> list[_Lane]:
    """One lane per (node, worker) that ran calls, head node first, drivers first; unfinished calls last."""
    by_worker: dict[tuple[str | None, str | None], _Lane] = {}
    node_names: dict[str | None, str] = {}
    unfinished = _Lane("unfinished (never reported)")
    for head in sorted(data.head_nodes):
        node_names[head] = f"node {head[:8]} (head)"
    for call in data.calls:
        if call.started is None or call.finished is None:
            unfinished.calls.append(call)
            continue
        key = (call.node, call.worker)
        lane = by_worker.get(key)
        if lane is None:
            node = node_names.setdefault(call.node, f"node {(call.node or '?')[:8]}")
            role = "driver" if call.worker in data.drivers else f"worker {(call.worker or '?')[:6]}"
            pid = f" · pid {call.pid}" if call.pid is not None else ""
            lane = by_worker[key] = _Lane(f"{node} · {role}{pid}")
        lane.calls.append(call)
    node_order = {node: index for index, node in enumerate(node_names)}
    lanes = [
        by_worker[key]
        for key in sorted(
            by_worker,
            key=lambda key: (node_order[key[0]], key[1] not in data.drivers, by_worker[key].calls[0].started or 0.0),
        )
    ]
    if unfinished.calls:
        lanes.append(unfinished)
    return lanes


def _span(call: CallRecord, origin: float, end: float) -> tuple[float, float]:
    if call.started is not None and call.finished is not None:
        return call.started, call.finished
    return (call.submitted if call.submitted is not None else origin), end


def _rows(calls: Sequence[CallRecord], origin: float, end: float) -> list[list[CallRecord]]:
    """Greedy interval partitioning into at most MAX_ROWS rows (calls in start order)."""
    rows: list[list[CallRecord]] = []
    ends: list[float] = []
    for call in sorted(calls, key=lambda call: _span(call, origin, end)[0]):
        start, finish = _span(call, origin, end)
        index = next((row for row, row_end in enumerate(ends) if row_end <= start), None)
        if index is None and len(rows) < MAX_ROWS:
            index = len(rows)
            rows.append([])
            ends.append(finish)
        elif index is None:
            index = min(range(len(ends)), key=ends.__getitem__)
        rows[index].append(call)
        ends[index] = max(ends[index], finish)
    return rows


def _bars(row: Sequence[CallRecord], origin: float, end: float, scale: float) -> list[_Bar]:
    """Bars of one row: a call each where wide enough, else a shared bar per unit; alike neighbours joined."""
    bars: list[_Bar] = []
    current: _Bar | None = None
    for call in row:
        start, finish = _span(call, origin, end)
        x0, x1 = (start - origin) * scale, (finish - origin) * scale
        if x1 - x0 >= MERGE_BELOW:
            current = None
            bars.append(_Bar(x0, x1, [call], binned=False))
        elif current is not None and x0 - current.x0 < MERGE_BELOW:
            current.x1 = max(current.x1, x1)
            current.calls.append(call)
        else:
            current = _Bar(x0, x1, [call], binned=True)
            bars.append(current)
    joined: list[_Bar] = []
    for bar in bars:
        last = joined[-1] if joined else None
        if (
            last is not None
            and last.binned
            and bar.binned
            and bar.x0 - last.x1 < MERGE_BELOW
            and last.look() == bar.look()
        ):
            last.x1 = max(last.x1, bar.x1)
            last.calls.extend(bar.calls)
        else:
            joined.append(bar)
    return joined


def _state(call: CallRecord) -> str:
    if call.status == "failed":
        return f"failed: {call.error}"
    if call.mode == "replayed":
        return "replayed" + (f" by {call.provider}" if call.provider else "")
    return {"cached": "real, written to the cache", "real": "real"}[call.mode] + (
        "" if call.status == "ok" else f", {call.status}"
    )


def _tip(call: CallRecord, origin: float) -> str:
    title = short_name(call.function) + (f" [{call.tag}]" if call.tag else "")
    lines = [title, f"{_state(call)}" + (f" ({call.error})" if call.status == "cancelled" else "")]
    if call.duration is not None:
        queued = f" · queued {duration(call.queue_time)}" if call.queue_time is not None else ""
        lines.append(f"ran {duration(call.duration)}{queued}")
        assert call.started is not None
        lines.append(f"started at +{call.started - origin:.3f} s")
    elif call.submitted is not None:
        lines.append(f"submitted at +{call.submitted - origin:.3f} s, never reported a finish")
    if call.args:
        lines.append(f"args: {call.args}")
    if call.deps:
        lines.append(f"fed by {len(call.deps)} call(s)")
    lines.append(call.function)
    return "\n".join(lines)


def _group_tip(bar: _Bar, scale: float) -> str:
    calls = bar.calls
    counts: dict[str, int] = {}
    for call in calls:
        name = short_name(call.function) + ("" if call.mode == "real" else f" ({call.mode})")
        counts[name] = counts.get(name, 0) + 1
    lines = [f"{len(calls)} calls from +{bar.x0 / scale:.3f} s to +{bar.x1 / scale:.3f} s (zoom in to part them)"]
    lines += [f"{count} x {name}" for name, count in sorted(counts.items(), key=lambda item: -item[1])[:6]]
    troubles = [call.status for call in calls if call.status != "ok"]
    if troubles:
        lines.append(", ".join(f"{troubles.count(status)} {status}" for status in _WORST_FIRST if status in troubles))
    durations = sorted(call.duration for call in calls if call.duration is not None)
    if durations:
        lines.append(f"p50 {duration(durations[len(durations) // 2])} · total {duration(sum(durations))}")
    return "\n".join(lines)


def draw_timeline(data: ProfileData, colours: Mapping[str, str], origin: float, end: float) -> Timeline:
    """The timeline of ``data`` between ``origin`` and ``end`` (Unix seconds)."""
    span = max(end - origin, 1e-6)
    scale = WIDTH / span
    labels: list[str] = []
    shapes: list[str] = []
    y = 0
    bar_count = 0
    for index, lane in enumerate(_lanes(data, origin, end)):
        rows = _rows(lane.calls, origin, end)
        height = len(rows) * ROW_HEIGHT + LANE_GAP
        stripe = "lane odd" if index % 2 else "lane"
        shapes.append(f'<rect class="{stripe}" x="0" y="{y}" width="{WIDTH:g}" height="{height}"/>')
        labels.append(
            f'<text class="lane-label" x="4" y="{y + height / 2 + 4:.1f}" data-tip="{text(lane.label)}">'
            f"{text(lane.label)}</text>"
        )
        for row_index, row in enumerate(rows):
            top = y + LANE_GAP / 2 + row_index * ROW_HEIGHT
            for bar in _bars(row, origin, end, scale):
                function, mode, status = bar.look()
                tip = _tip(bar.calls[0], origin) if len(bar.calls) == 1 else _group_tip(bar, scale)
                shapes.append(
                    "<rect "
                    + attributes(
                        (
                            ("class", f"bar {mode} {status}"),
                            ("x", f"{bar.x0:.3f}"),
                            ("y", f"{top:.1f}"),
                            ("width", f"{max(bar.x1 - bar.x0, MIN_WIDTH):.3f}"),
                            ("height", ROW_HEIGHT - 2),
                            ("fill", colours[function]),
                            ("data-calls", len(bar.calls)),
                            ("data-function", function),
                            ("data-tip", tip),
                        )
                    )
                    + "/>"
                )
                bar_count += 1
        y += height
    height = max(y, ROW_HEIGHT)
    labels_svg = f'<svg class="lane-labels" width="{LABEL_WIDTH}" height="{height}">' + "".join(labels) + "</svg>"
    plot_svg = (
        f'<svg id="timeline-plot" class="timeline-plot" viewBox="0 0 {WIDTH:g} {height}" '
        f'preserveAspectRatio="none" height="{height}" data-width="{WIDTH:g}" data-span="{span:.6f}">'
        + "".join(shapes)
        + "</svg>"
    )
    return Timeline(labels_svg, plot_svg, height, bar_count, len(data.calls))
