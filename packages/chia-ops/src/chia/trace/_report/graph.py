"""The report's dataflow graph: which function's results fed which, and the run's critical path.

Calls are grouped by function: a node per function (calls, total time), an
edge per producer -> consumer pair of functions whose ``ObjectRef`` was
passed as an argument (solid, with the number of such hand-overs) or which
dispatched the other from inside its body (dashed). The critical path is the
chain of calls, each fed by the one before, with the most run time in total;
its functions and hand-overs are highlighted. Layout: functions in columns by
the longest chain of hand-overs leading to them, in order of first start.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from chia.trace._report.draw import attributes, duration, short_name, text
from chia.trace.export import CallRecord, ProfileData

NODE_WIDTH, NODE_HEIGHT = 210, 58
COLUMN_GAP, ROW_GAP = 90, 26
MARGIN = 24


@dataclass(frozen=True, slots=True)
class CriticalPath:
    """The calls of the critical path, first to last, and their summed run time."""

    calls: tuple[CallRecord, ...]
    run_time: float

    def functions(self) -> set[str]:
        """The functions on the path."""
        return {call.function for call in self.calls}

    def hand_overs(self) -> set[tuple[str, str]]:
        """The (producer, consumer) function pairs along the path."""
        return {(a.function, b.function) for a, b in zip(self.calls, self.calls[1:], strict=False)}


def critical_path(data: ProfileData) -> CriticalPath:
    """The chain of dependent calls with the most run time (a single call when nothing fed anything)."""
    ran = sorted((call for call in data.calls if call.duration is not None), key=lambda call: call.started or 0.0)
    longest: dict[int, float] = {}
    previous: dict[int, int] = {}
    for call in ran:
        best_dep, best = None, 0.0
        for dep in call.deps:
            length = longest.get(dep)
            if length is not None and length > best:
                best_dep, best = dep, length
        longest[call.call_id] = best + (call.duration or 0.0)
        if best_dep is not None:
            previous[call.call_id] = best_dep
    if not longest:
        return CriticalPath((), 0.0)
    by_id = {call.call_id: call for call in ran}
    last = max(longest, key=longest.__getitem__)
    chain = [by_id[last]]
    while chain[-1].call_id in previous:
        chain.append(by_id[previous[chain[-1].call_id]])
    return CriticalPath(tuple(reversed(chain)), longest[last])


@dataclass(frozen=True, slots=True)
class Graph:
    """The drawn graph and the numbers the page says about it."""

    svg: str
    functions: int
    edges: int
    path: CriticalPath


def _edges(data: ProfileData) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """Hand-overs (producer, consumer) and dispatches (caller, callee) between functions, counted."""
    by_id = {call.call_id: call for call in data.calls}
    feeds: Counter[tuple[str, str]] = Counter()
    dispatches: Counter[tuple[str, str]] = Counter()
    for call in data.calls:
        for dep in dict.fromkeys(call.deps):
            producer = by_id.get(dep)
            if producer is not None:
                feeds[(producer.function, call.function)] += 1
        caller = by_id.get(call.caller) if call.caller is not None else None
        if caller is not None:
            dispatches[(caller.function, call.function)] += 1
    return feeds, dispatches


def _layout(functions: list[str], links: set[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Top-left corners: a column per longest chain of links (forward in first-start order), rows in a column."""
    order = {function: index for index, function in enumerate(functions)}
    incoming: dict[str, list[str]] = defaultdict(list)
    for source, target in links:
        if order[source] < order[target]:  # links back in time (and self links) do not push columns
            incoming[target].append(source)
    column: dict[str, int] = {}
    for function in functions:
        column[function] = max((column[source] + 1 for source in incoming[function]), default=0)
    columns: dict[int, list[str]] = defaultdict(list)
    rows: dict[str, float] = {}
    for function in functions:
        sources = [rows[source] for source in incoming[function] if source in rows]
        rows[function] = sum(sources) / len(sources) if sources else float(order[function])
        columns[column[function]].append(function)
    positions: dict[str, tuple[float, float]] = {}
    for index, members in columns.items():
        members.sort(key=lambda function: (rows[function], order[function]))
        for row, function in enumerate(members):
            positions[function] = (
                MARGIN + index * (NODE_WIDTH + COLUMN_GAP),
                MARGIN + row * (NODE_HEIGHT + ROW_GAP),
            )
    return positions


def _edge_path(source: tuple[float, float], target: tuple[float, float], same: bool) -> tuple[str, float, float]:
    """An SVG path between two boxes and where its label goes."""
    (sx, sy), (tx, ty) = source, target
    if same:  # a loop on the box's right side
        x, top, bottom = sx + NODE_WIDTH, sy + 14, sy + NODE_HEIGHT - 14
        return f"M{x},{top} C{x + 46},{top - 20} {x + 46},{bottom + 20} {x},{bottom}", x + 40, sy + NODE_HEIGHT / 2
    if tx > sx:  # forward: right side to left side
        x1, y1, x2, y2 = sx + NODE_WIDTH, sy + NODE_HEIGHT / 2, tx, ty + NODE_HEIGHT / 2
        bend = (x2 - x1) / 2
        return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}", (x1 + x2) / 2, (y1 + y2) / 2 - 4
    # same column or backwards: an arc below both boxes
    x1, y1, x2, y2 = sx + NODE_WIDTH / 2, sy + NODE_HEIGHT, tx + NODE_WIDTH / 2, ty + NODE_HEIGHT
    low = max(y1, y2) + 34
    return f"M{x1},{y1} C{x1},{low} {x2},{low} {x2},{y2}", (x1 + x2) / 2, low - 6


def draw_graph(data: ProfileData, colours: Mapping[str, str]) -> Graph:
    """The function-level dataflow graph of ``data``, critical path highlighted."""
    first_seen: dict[str, float] = {}
    calls_of: Counter[str] = Counter()
    time_of: dict[str, float] = defaultdict(float)
    for call in data.calls:
        calls_of[call.function] += 1
        time_of[call.function] += call.duration or 0.0
        stamp = call.started if call.started is not None else (call.submitted or 0.0)
        first_seen[call.function] = min(first_seen.get(call.function, stamp), stamp)
    functions = sorted(first_seen, key=lambda function: (first_seen[function], function))
    feeds, dispatches = _edges(data)
    positions = _layout(functions, set(feeds) | set(dispatches))
    path = critical_path(data)
    on_path, path_links = path.functions(), path.hand_overs()
    parts: list[str] = []
    for kind, counter in (("dispatch", dispatches), ("feed", feeds)):
        for (source, target), count in sorted(counter.items()):
            shape, label_x, label_y = _edge_path(positions[source], positions[target], source == target)
            critical = kind == "feed" and (source, target) in path_links
            what = "ObjectRefs handed over" if kind == "feed" else "calls dispatched"
            tip = f"{short_name(source)} -> {short_name(target)}: {count} {what}"
            parts.append(
                f'<g class="edge {kind}{" critical" if critical else ""}" data-tip="{text(tip)}">'
                f'<path d="{shape}" marker-end="url(#{"arrow-critical" if critical else "arrow"})"/>'
                f'<text x="{label_x:.1f}" y="{label_y:.1f}">{count}</text></g>'
            )
    for function in functions:
        x, y = positions[function]
        critical = function in on_path
        calls = f"{calls_of[function]} call" + ("" if calls_of[function] == 1 else "s")
        tip = f"{function}\n{calls} · {duration(time_of[function])} run time in total"
        parts.append(
            "<g "
            + attributes(
                (
                    ("class", "fn critical" if critical else "fn"),
                    ("data-function", function),
                    ("data-calls", calls_of[function]),
                    ("data-tip", tip),
                )
            )
            + ">"
            f'<rect class="box" x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<rect x="{x}" y="{y}" width="8" height="{NODE_HEIGHT}" rx="3" fill="{colours[function]}"/>'
            f'<text class="name" x="{x + 16}" y="{y + 22}">{text(short_name(function)[:28])}</text>'
            f'<text x="{x + 16}" y="{y + 42}">{calls} · {text(duration(time_of[function]))}</text>'
            "</g>"
        )
    width = max((x for x, _ in positions.values()), default=0) + NODE_WIDTH + MARGIN + 50
    height = max((y for _, y in positions.values()), default=0) + NODE_HEIGHT + MARGIN + 40
    defs = (
        "<defs>"
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker>'
        '<marker id="arrow-critical" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" class="arrowhead critical"/></marker>'
        "</defs>"
    )
    svg = (
        f'<svg id="graph" class="graph" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">{defs}{"".join(parts)}</svg>'
    )
    return Graph(svg, len(functions), len(feeds) + len(dispatches), path)
