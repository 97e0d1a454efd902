"""Small drawing helpers of the report: escaping, colours, numbers and durations as text."""

from __future__ import annotations

import html
from collections.abc import Iterable

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#86bcb6",
)
"""Function colours (Tableau 10, reordered): distinct for the first ten functions, then hues by golden angle."""


def colour(index: int) -> str:
    """The colour of the ``index``-th function."""
    if index < len(PALETTE):
        return PALETTE[index]
    return f"hsl({(index * 137.508) % 360:.0f}, 55%, 55%)"


def text(value: object) -> str:
    """``value`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def short_name(function: str) -> str:
    """``module.Class.method`` -> ``Class.method``; ``module.fn`` -> ``fn``."""
    parts = function.split(".")
    if len(parts) >= 3 and parts[-2][:1].isupper():
        return ".".join(parts[-2:])
    return parts[-1]


def duration(seconds: float | None) -> str:
    """A duration for people: ``412 us``, ``12.3 ms``, ``4.21 s``, ``3 min 12 s``."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes:.0f} min {rest:.0f} s"


def number(value: float) -> str:
    """A metric value in at most 6 significant digits."""
    return f"{value:.6g}"


def attributes(pairs: Iterable[tuple[str, object]]) -> str:
    """``name="value"`` pairs, escaped, skipping None."""
    return " ".join(f'{name}="{text(value)}"' for name, value in pairs if value is not None)
