"""The report's metric plots: one small line plot per ``log_metric`` name.

A metric is drawn over its steps when every point of it has one, else over
seconds since the start of the run. Long series are thinned to the lowest and
highest value per pixel column, so the shape survives and the page stays small.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from chia.trace._report.draw import number, text
from chia.trace.export import MetricPoint

PLOT_WIDTH, PLOT_HEIGHT = 320, 120
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 10, 22, 22


def _thinned(points: list[tuple[float, float]], columns: int) -> list[tuple[float, float]]:
    """At most two points (lowest and highest value) per column of the x range, in x order."""
    if len(points) <= 2 * columns:
        return points
    low_x, high_x = points[0][0], points[-1][0]
    width = (high_x - low_x) / columns or 1.0
    buckets: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for point in points:
        buckets[min(int((point[0] - low_x) / width), columns - 1)].append(point)
    thinned: list[tuple[float, float]] = []
    for index in sorted(buckets):
        bucket = buckets[index]
        low, high = min(bucket, key=lambda p: p[1]), max(bucket, key=lambda p: p[1])
        thinned.extend(sorted({low, high}))
    return thinned


def _plot(name: str, points: Sequence[MetricPoint], origin: float) -> str:
    by_step = all(point.step is not None for point in points)
    series = sorted(
        ((float(point.step) if by_step and point.step is not None else point.ts - origin), point.value)
        for point in points
    )
    series = _thinned(series, PLOT_WIDTH - _LEFT - _RIGHT)
    xs, ys = [x for x, _ in series], [y for _, y in series]
    x_low, x_high, y_low, y_high = min(xs), max(xs), min(ys), max(ys)
    x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0
    inner_w, inner_h = PLOT_WIDTH - _LEFT - _RIGHT, PLOT_HEIGHT - _TOP - _BOTTOM

    coords = [(_LEFT + (x - x_low) / x_span * inner_w, _TOP + (1 - (y - y_low) / y_span) * inner_h) for x, y in series]
    line = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
    dots = "".join(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.2"/>' for cx, cy in coords) if len(coords) <= 60 else ""
    x_label = "step" if by_step else "s"
    last = max(points, key=lambda point: point.step or 0).value if by_step else points[-1].value
    tip = f"{name}: {len(points)} points, last {number(last)}, min {number(y_low)}, max {number(y_high)}"
    return (
        f'<svg class="metric" data-metric="{text(name)}" data-points="{len(points)}" width="{PLOT_WIDTH}" '
        f'height="{PLOT_HEIGHT}" viewBox="0 0 {PLOT_WIDTH} {PLOT_HEIGHT}" data-tip="{text(tip)}">'
        f'<text class="title" x="{_LEFT}" y="14">{text(name)} <tspan class="last">last {number(last)}</tspan></text>'
        f'<rect class="frame" x="{_LEFT}" y="{_TOP}" width="{inner_w}" height="{inner_h}"/>'
        f'<text class="tick" x="{_LEFT - 4}" y="{_TOP + 8}" text-anchor="end">{number(y_high)}</text>'
        f'<text class="tick" x="{_LEFT - 4}" y="{_TOP + inner_h}" text-anchor="end">{number(y_low)}</text>'
        f'<text class="tick" x="{_LEFT}" y="{PLOT_HEIGHT - 6}">{number(x_low)}</text>'
        f'<text class="tick" x="{PLOT_WIDTH - _RIGHT}" y="{PLOT_HEIGHT - 6}" text-anchor="end">'
        f"{number(x_high)} {x_label}</text>"
        f'<polyline points="{line}"/>{dots}</svg>'
    )


def draw_metrics(points: Sequence[MetricPoint], origin: float) -> list[str]:
    """One plot per metric name, in order of the name's first point."""
    by_name: dict[str, list[MetricPoint]] = defaultdict(list)
    for point in points:
        by_name[point.name].append(point)
    return [_plot(name, series, origin) for name, series in by_name.items()]
