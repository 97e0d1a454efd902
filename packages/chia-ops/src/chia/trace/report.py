"""A profiled run as one self-contained HTML page: timeline, dataflow, summary, metrics, facts.

Owns the public entry points of the report (drawing lives in the private
``chia.trace._report`` package). The page needs no network and no other
file: its drawings are SVG written in Python, its small script (tooltips,
zoom) and style are inline, and its Content-Security-Policy forbids loading
anything. Experimental.

It shows a timeline per node and worker (a bar per call coloured by
function; replayed, cached, failed, cancelled and unfinished calls marked;
hover for tag, arguments, queue and run time), the dataflow graph of the
run (a box per function, arrows for the ObjectRefs handed over, the critical
path highlighted), the per-function summary with real, cached and replayed
calls apart, the metrics logged with :func:`chia.trace.profiler.log_metric`, the run's
facts (when, where, versions, cluster size) and, given a baseline run, the
comparison of the two (:mod:`chia.trace.compare`).

Example::

    from chia.trace import profiler, report

    log = profiler.stop_collector()
    path = report.write_report(log, "report.html")  # or chia profile report LOG -o report.html
"""

from __future__ import annotations

from pathlib import Path

from chia.trace._report.page import render_page
from chia.trace.export import ProfileData, load_profile

__all__ = ["render_report", "write_report"]

ProfileSource = ProfileData | str | Path
"""A loaded profile, or a log file or directory to load (see :func:`chia.trace.export.load_profile`)."""


def _load(profile: ProfileSource) -> tuple[ProfileData, str | None]:
    if isinstance(profile, ProfileData):
        return profile, None
    return load_profile(profile), str(profile)


def render_report(profile: ProfileSource, *, baseline: ProfileSource | None = None, title: str | None = None) -> str:
    """The report of ``profile`` (and, given, the comparison with ``baseline``) as an HTML document. Experimental.

    ``profile`` and ``baseline`` are loaded profiles or paths of logs (or
    their directories). Raises what :func:`~chia.trace.export.load_profile`
    raises for a path without a readable log.
    """
    data, source = _load(profile)
    base = _load(baseline)[0] if baseline is not None else None
    sessions = ", ".join(data.sessions) or "no session"
    return render_page(data, baseline=base, title=title or f"chia profile · {sessions}", source=source)


def write_report(
    profile: ProfileSource, path: str | Path, *, baseline: ProfileSource | None = None, title: str | None = None
) -> Path:
    """Write the report of ``profile`` to ``path`` (parents created); returns the path. Experimental.

    See :func:`render_report`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(profile, baseline=baseline, title=title), encoding="utf-8")
    return target
