"""The report page: the sections put together, with the inline style and script.

Everything the page needs is in the one file: the drawings are SVG written
here, the style and the script (tooltips, timeline zoom and pan, its time
axis) are inline, and a Content-Security-Policy forbids the page to load
anything at all, so it opens offline and leaks nothing.
"""

from __future__ import annotations

import datetime
import importlib.metadata

from chia.trace._report.draw import colour, duration, short_name, text
from chia.trace._report.graph import draw_graph
from chia.trace._report.metrics import draw_metrics
from chia.trace._report.tables import comparison_table, facts_table, summary_table
from chia.trace._report.timeline import draw_timeline
from chia.trace.compare import compare
from chia.trace.export import ProfileData, summarize

STYLE = """
:root { --ink: #1d2430; --muted: #5d6675; --line: #d8dde5; --bg: #ffffff; --band: #f4f6f9; --accent: #d9480f; }
* { box-sizing: border-box; }
body { margin: 0; padding: 18px 24px 40px; font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
       "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: var(--bg); }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 26px 0 8px; }
p.note { color: var(--muted); margin: 4px 0 10px; max-width: 1000px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 10px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; font-variant-numeric: tabular-nums; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin: 6px 0; color: var(--muted); }
.legend span { display: inline-flex; align-items: center; gap: 5px; }
.legend svg { vertical-align: middle; }
.controls button { font: inherit; margin-right: 6px; padding: 2px 9px; border: 1px solid var(--line);
                   background: var(--band); border-radius: 4px; cursor: pointer; }
.timeline { display: flex; border: 1px solid var(--line); border-radius: 4px; }
.lane-labels { flex: none; border-right: 1px solid var(--line); }
.lane-label { font-size: 11px; fill: var(--ink); }
.plot-column { flex: 1; min-width: 0; }
.timeline-plot { display: block; width: 100%; cursor: grab; }
#timeline-axis { display: block; width: 100%; height: 22px; border-top: 1px solid var(--line); }
#timeline-axis text { font-size: 10px; fill: var(--muted); } #timeline-axis line { stroke: var(--line); }
.lane { fill: #ffffff; } .lane.odd { fill: var(--band); }
.bar { vector-effect: non-scaling-stroke; stroke-width: 0; }
.bar.replayed { fill-opacity: 0.38; }
.bar.cached { stroke: #1d2430; stroke-width: 1; stroke-dasharray: 1 2; }
.bar.failed { stroke: #b00020; stroke-width: 2; }
.bar.cancelled { stroke: #1d2430; stroke-width: 1.5; stroke-dasharray: 4 2; }
.bar.unfinished { fill: url(#unfinished) !important; stroke: #7a828f; stroke-width: 1; }
.graph-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 4px; }
.graph text { font-size: 12px; fill: var(--ink); } .graph text.name { font-weight: 600; }
.graph .box { fill: #ffffff; stroke: #9aa3b0; } .graph .fn.critical .box { stroke: var(--accent); stroke-width: 2.5; }
.graph .edge path { fill: none; stroke: #8d96a3; stroke-width: 1.4; }
.graph .edge.dispatch path { stroke-dasharray: 5 4; }
.graph .edge.critical path { stroke: var(--accent); stroke-width: 2.6; }
.graph .edge text { font-size: 11px; fill: var(--muted); text-anchor: middle; }
.graph .arrowhead { fill: #8d96a3; } .graph .arrowhead.critical { fill: var(--accent); }
table.summary { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.summary th, table.summary td { padding: 3px 8px; border-bottom: 1px solid var(--line); text-align: left; }
table.summary th { font-weight: 600; color: var(--muted); font-size: 12px; white-space: nowrap; }
table.summary .num { text-align: right; } table.summary th.group { text-align: center; border-bottom: 2px solid var(--line); }
table.summary td.cached, table.summary th.cached { background: #f7f7fb; }
table.summary td.fn { white-space: nowrap; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.ratio.slower { color: #b00020; font-weight: 600; } .ratio.faster { color: #2b8a3e; font-weight: 600; }
.metrics { display: flex; flex-wrap: wrap; gap: 14px; }
.metric { border: 1px solid var(--line); border-radius: 4px; }
.metric .title { font-size: 12px; font-weight: 600; fill: var(--ink); } .metric .last { font-weight: 400; fill: var(--muted); }
.metric .tick { font-size: 10px; fill: var(--muted); } .metric .frame { fill: none; stroke: var(--line); }
.metric polyline { fill: none; stroke: #4e79a7; stroke-width: 1.6; } .metric circle { fill: #4e79a7; }
#tip { position: fixed; z-index: 10; pointer-events: none; max-width: 460px; padding: 6px 9px; border-radius: 4px;
       background: rgba(29, 36, 48, 0.94); color: #fff; font-size: 12px; white-space: pre-wrap; }
footer { margin-top: 30px; color: var(--muted); font-size: 12px; }
"""

SCRIPT = """
(function () {
  "use strict";
  var tip = document.getElementById("tip");
  document.addEventListener("mouseover", function (event) {
    var target = event.target.closest ? event.target.closest("[data-tip]") : null;
    if (!target) { tip.hidden = true; return; }
    tip.textContent = target.getAttribute("data-tip");
    tip.hidden = false;
  });
  document.addEventListener("mousemove", function (event) {
    if (tip.hidden) { return; }
    var x = event.clientX + 14, y = event.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth - 8) { x = event.clientX - tip.offsetWidth - 14; }
    if (y + tip.offsetHeight > window.innerHeight - 8) { y = event.clientY - tip.offsetHeight - 14; }
    tip.style.left = x + "px"; tip.style.top = y + "px";
  });

  var plot = document.getElementById("timeline-plot");
  var axis = document.getElementById("timeline-axis");
  if (!plot || !axis) { return; }
  var width = parseFloat(plot.getAttribute("data-width")), span = parseFloat(plot.getAttribute("data-span"));
  var height = plot.viewBox.baseVal.height, start = 0, end = width;
  var svgNS = "http://www.w3.org/2000/svg";

  function label(seconds, step) {
    if (step >= 1) { return seconds.toFixed(step >= 10 ? 0 : 1) + " s"; }
    if (step >= 0.001) { return (seconds * 1e3).toFixed(step >= 0.01 ? 0 : 1) + " ms"; }
    return (seconds * 1e6).toFixed(0) + " us";
  }
  function drawAxis() {
    while (axis.firstChild) { axis.removeChild(axis.firstChild); }
    var pixels = axis.getBoundingClientRect().width || 800;
    var from = start / width * span, to = end / width * span;
    var raw = (to - from) / Math.max(2, pixels / 110), power = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 5, 10].map(function (m) { return m * power; }).filter(function (s) { return s >= raw; })[0];
    for (var t = Math.ceil(from / step) * step; t <= to; t += step) {
      var x = (t - from) / (to - from) * pixels;
      var tick = document.createElementNS(svgNS, "line");
      tick.setAttribute("x1", x); tick.setAttribute("x2", x); tick.setAttribute("y1", 0); tick.setAttribute("y2", 5);
      axis.appendChild(tick);
      var text = document.createElementNS(svgNS, "text");
      text.setAttribute("x", x + 2); text.setAttribute("y", 16); text.textContent = label(t, step);
      axis.appendChild(text);
    }
  }
  function show(from, to) {
    var size = Math.max(width / 20000, Math.min(width, to - from));
    start = Math.max(0, Math.min(width - size, from)); end = start + size;
    plot.setAttribute("viewBox", start + " 0 " + size + " " + height);
    drawAxis();
  }
  function zoom(factor, fraction) {
    var at = start + fraction * (end - start), size = (end - start) * factor;
    show(at - fraction * size, at - fraction * size + size);
  }
  plot.addEventListener("wheel", function (event) {
    event.preventDefault();
    var box = plot.getBoundingClientRect();
    zoom(event.deltaY < 0 ? 0.8 : 1.25, (event.clientX - box.left) / box.width);
  }, { passive: false });
  var dragging = null;
  plot.addEventListener("mousedown", function (event) { dragging = { x: event.clientX, start: start, end: end }; });
  window.addEventListener("mouseup", function () { dragging = null; });
  window.addEventListener("mousemove", function (event) {
    if (!dragging) { return; }
    var box = plot.getBoundingClientRect(), shift = (event.clientX - dragging.x) / box.width * (dragging.end - dragging.start);
    show(dragging.start - shift, dragging.end - shift);
  });
  plot.addEventListener("dblclick", function () { show(0, width); });
  document.getElementById("zoom-in").addEventListener("click", function () { zoom(0.5, 0.5); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoom(2, 0.5); });
  document.getElementById("zoom-reset").addEventListener("click", function () { show(0, width); });
  window.addEventListener("resize", drawAxis);
  drawAxis();
})();
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"

_LEGEND_STATES = (
    ("real", "bar real ok", "ran for real"),
    ("cached", "bar cached ok", "real, result written to the cache"),
    ("replayed", "bar replayed ok", "replayed by a bypass provider"),
    ("failed", "bar real failed", "raised"),
    ("cancelled", "bar real cancelled", "cancelled"),
    ("unfinished", "bar real unfinished", "never reported a finish (lost, killed, stuck)"),
)


def _legend(colours: dict[str, str], functions: list[str]) -> str:
    swatches = "".join(
        f'<span data-tip="{text(function)}"><svg width="14" height="10"><rect width="14" height="10" '
        f'fill="{colours[function]}"/></svg>{text(short_name(function))}</span>'
        for function in functions[:24]
    )
    if len(functions) > 24:
        swatches += f"<span>and {len(functions) - 24} more</span>"
    states = "".join(
        f'<span data-state="{name}"><svg width="22" height="12"><rect class="{classes}" x="1" y="1" width="20" '
        f'height="10" fill="#9aa3b0"/></svg>{text(what)}</span>'
        for name, classes, what in _LEGEND_STATES
    )
    return f'<div class="legend">{swatches}</div><div class="legend">{states}</div>'


def _bounds(data: ProfileData) -> tuple[float, float]:
    stamps = [
        stamp for call in data.calls for stamp in (call.submitted, call.started, call.finished) if stamp is not None
    ]
    stamps += [event.ts for event in data.events] + [point.ts for point in data.metrics]
    if not stamps:
        started = min((fact.started for fact in data.facts), default=0.0)
        return started, started
    return min(stamps), max(stamps)


def _version() -> str:
    try:
        return importlib.metadata.version("chia-ops")
    except importlib.metadata.PackageNotFoundError:
        return "(source)"


def render_page(data: ProfileData, *, baseline: ProfileData | None, title: str, source: str | None) -> str:
    """The whole report as one HTML document."""
    origin, end = _bounds(data)
    rows = summarize(data)
    functions = [row.function for row in rows]
    colours = {function: colour(index) for index, function in enumerate(functions)}
    timeline = draw_timeline(data, colours, origin, end)
    graph = draw_graph(data, colours)
    path = graph.path
    if path.calls:
        chain = " → ".join(short_name(call.function) for call in path.calls[:12])
        chain += " → …" if len(path.calls) > 12 else ""
        path_note = (
            f"Critical path (highlighted): {len(path.calls)} call(s), {duration(path.run_time)} of run time "
            f"in a run of {duration(end - origin)}: {chain}."
        )
    else:
        path_note = "No call ran."
    merged = timeline.bars < timeline.calls
    timeline_note = (
        f"{timeline.calls} calls in {timeline.bars} bars"
        + (
            " (calls narrower than a pixel that touch others of their kind share a bar; zoom in to part them)"
            if merged
            else ""
        )
        + ". Scroll to zoom, drag to pan, double-click to reset; hover a bar for its call."
    )
    sections = [
        f"<h1>{text(title)}</h1>",
        facts_table(data, origin, end, source),
        "<h2>Timeline</h2>",
        f'<p class="note">{text(timeline_note)}</p>',
        _legend(colours, functions),
        '<div class="controls"><button id="zoom-in" type="button">zoom in</button>'
        '<button id="zoom-out" type="button">zoom out</button>'
        '<button id="zoom-reset" type="button">reset</button></div>',
        '<svg width="0" height="0" style="position:absolute"><defs><pattern id="unfinished" width="6" height="6" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#e4e7ec"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#9aa3b0" stroke-width="3"/></pattern></defs></svg>',
        f'<div id="timeline" class="timeline">{timeline.labels_svg}<div class="plot-column">{timeline.plot_svg}'
        '<svg id="timeline-axis"></svg></div></div>',
        "<h2>Dataflow</h2>",
        '<p class="note">A box per function; a solid arrow where a call\'s result (its ObjectRef) was passed to '
        "a call of the next, with how many times; a dashed arrow where one dispatched the other from its body. "
        f"{text(path_note)}</p>",
        f'<div class="graph-wrap">{graph.svg}</div>',
        "<h2>Per function</h2>",
        '<p class="note">Real, cached (real, result written to the cache) and replayed (bypassed) calls apart; '
        "percentiles are nearest-rank over the calls that finished; queue time is submit to start.</p>",
        summary_table(rows, colours),
    ]
    if baseline is not None:
        sections += [
            "<h2>Against the baseline</h2>",
            '<p class="note">A is the baseline, B this run; a ratio below 1 means this run was faster.</p>',
            comparison_table(compare(baseline, data)),
        ]
    plots = draw_metrics(data.metrics, origin)
    sections += [
        "<h2>Metrics</h2>",
        f'<div id="metrics" class="metrics">{"".join(plots)}</div>'
        if plots
        else '<p class="note">No metrics: record some with chia.trace.log_metric(name, value, step).</p>',
    ]
    generated = datetime.datetime.now(tz=datetime.UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    sections.append(
        f"<footer>Generated {text(generated)} by chia-ops {text(_version())} (chia.trace.report). "
        "Self-contained: opens offline.</footer>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(sections)
        + f'<div id="tip" hidden></div><script>{SCRIPT}</script></body></html>\n'
    )
