"""Mirror of the profile's metrics as TensorBoard scalars (the ``chia-ops[tensorboard]`` extra).

Owns the optional TensorBoard event writer the collector feeds with every
``log_metric`` row it receives. ``tensorboardX`` (small, no TensorFlow) is
imported only when a mirror is asked for; without it the error names the
extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EXTRA = "chia-ops[tensorboard]"


def require_tensorboard() -> Any:
    """The ``tensorboardX`` module, or ImportError naming the extra that installs it."""
    try:
        return importlib.import_module("tensorboardX")
    except ImportError as exc:
        raise ImportError(
            f"mirroring metrics to TensorBoard needs tensorboardX: pip install '{EXTRA}' (or tensorboardX)"
        ) from exc


class MetricMirror:
    """Writes metric rows as TensorBoard scalars into ``directory``.

    A metric logged without a step gets the number of points of that name
    mirrored before it (TensorBoard needs one); wall times are the rows' own.
    """

    def __init__(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        self._writer = require_tensorboard().SummaryWriter(logdir=str(directory))
        self._counts: dict[str, int] = {}

    def write(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Mirror ``(METRIC, name, ts, value, step, call_id)`` wire rows."""
        for _, name, ts, value, step, _call in rows:
            seen = self._counts.get(name, 0)
            self._counts[name] = seen + 1
            self._writer.add_scalar(name, value, global_step=seen if step is None else step, walltime=ts)

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()
