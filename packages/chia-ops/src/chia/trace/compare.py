"""Two profiled runs side by side: per function and mode, calls and p50/p95 of each and their ratio.

Owns the comparison ``chia profile compare A B`` prints and the HTML report
shows for a baseline. Real, cached and replayed calls are compared apart (a
replayed call is no faster version of a real one); durations are
milliseconds in the table and the JSON alike, and the names say so.

Example::

    from chia.trace import compare, export

    rows = compare.compare(export.load_profile("runs/monday"), export.load_profile("runs/tuesday"))
    print(compare.format_comparison(rows))  # ratios are B / A: below 1, B is faster
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chia.trace.export import MODES, CallStats, ProfileData, _ms, format_table, summarize

__all__ = ["COMPARISON_COLUMNS", "FunctionComparison", "compare", "comparison_document", "format_comparison"]

COMPARISON_COLUMNS = (
    "function",
    "mode",
    "calls A",
    "calls B",
    "p50 A ms",
    "p50 B ms",
    "p50 B/A",
    "p95 A ms",
    "p95 B ms",
    "p95 B/A",
)
"""Columns of :func:`format_comparison`'s table."""


def _ratio(a: float | None, b: float | None) -> float | None:
    """B over A; 1.0 when both are zero (calls shorter than the log's time resolution), None when undefined."""
    if a is None or b is None:
        return None
    if a <= 0:
        return 1.0 if b <= 0 else None
    return b / a


@dataclass(frozen=True, slots=True)
class FunctionComparison:
    """One function's calls of one mode in run A and in run B. Experimental.

    ``a`` and ``b`` hold the calls' statistics (durations in seconds);
    ratios are B over A, None where a side has no calls.
    """

    function: str
    mode: str
    a: CallStats
    b: CallStats

    @property
    def p50_ratio(self) -> float | None:
        """B's median run time over A's."""
        return _ratio(self.a.p50, self.b.p50)

    @property
    def p95_ratio(self) -> float | None:
        """B's 95th-percentile run time over A's."""
        return _ratio(self.a.p95, self.b.p95)

    def to_json(self) -> dict[str, Any]:
        """The row as JSON, durations in milliseconds (``p50_a_ms``...), ratios rounded to 4 digits."""
        p50_ratio, p95_ratio = self.p50_ratio, self.p95_ratio
        return {
            "function": self.function,
            "mode": self.mode,
            "calls_a": self.a.count,
            "calls_b": self.b.count,
            "p50_a_ms": _ms(self.a.p50),
            "p50_b_ms": _ms(self.b.p50),
            "p50_ratio": None if p50_ratio is None else round(p50_ratio, 4),
            "p95_a_ms": _ms(self.a.p95),
            "p95_b_ms": _ms(self.b.p95),
            "p95_ratio": None if p95_ratio is None else round(p95_ratio, 4),
        }


def compare(a: ProfileData, b: ProfileData) -> list[FunctionComparison]:
    """Per function and mode, run A against run B; the slowest function (in either run) first. Experimental.

    A row for every mode (``real``, ``cached``, ``replayed``) in which the
    function ran in at least one of the runs.
    """
    summaries_a = {row.function: row for row in summarize(a)}
    summaries_b = {row.function: row for row in summarize(b)}
    functions = sorted(
        summaries_a.keys() | summaries_b.keys(),
        key=lambda name: (
            -max(
                summaries_a[name].total if name in summaries_a else 0.0,
                summaries_b[name].total if name in summaries_b else 0.0,
            ),
            name,
        ),
    )
    rows = []
    for function in functions:
        modes_a = summaries_a[function].by_mode() if function in summaries_a else {}
        modes_b = summaries_b[function].by_mode() if function in summaries_b else {}
        for mode in MODES:
            stats_a, stats_b = modes_a.get(mode, CallStats()), modes_b.get(mode, CallStats())
            if stats_a.count or stats_b.count:
                rows.append(FunctionComparison(function, mode, stats_a, stats_b))
    return rows


def _cell(value: float | None, scale: float = 1e3, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def format_comparison(rows: list[FunctionComparison]) -> str:
    """The comparison as an aligned text table, times in ms (see :data:`COMPARISON_COLUMNS`). Experimental."""
    return format_table(
        COMPARISON_COLUMNS,
        (
            (
                row.function,
                row.mode,
                str(row.a.count),
                str(row.b.count),
                _cell(row.a.p50),
                _cell(row.b.p50),
                _cell(row.p50_ratio, 1.0),
                _cell(row.a.p95),
                _cell(row.b.p95),
                _cell(row.p95_ratio, 1.0),
            )
            for row in rows
        ),
    )


def comparison_document(rows: list[FunctionComparison]) -> list[dict[str, Any]]:
    """The comparison as JSON objects (see :meth:`FunctionComparison.to_json`). Experimental."""
    return [row.to_json() for row in rows]
