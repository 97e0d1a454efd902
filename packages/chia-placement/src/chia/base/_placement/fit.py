"""Resource arithmetic for pinning: what a task demands and whether a bundle holds it.

Private to chia-placement. Mirrors how Ray turns task options into a resource
request (a task without ``num_cpus`` asks for one CPU), so a member that cannot
run in its pinned bundle is caught before Ray would leave it pending forever.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["bundle_shape", "format_resources", "missing_from_bundle", "task_demand"]

_DEFAULT_TASK_CPUS = 1.0
# Ray's own tolerance when it subtracts fractional resources.
_EPSILON = 1e-9


def task_demand(options: Mapping[str, Any]) -> dict[str, float]:
    """The resources a task submitted with ``options`` asks Ray for (zero amounts dropped)."""
    demand: dict[str, float] = {name: float(amount) for name, amount in (options.get("resources") or {}).items()}
    num_cpus = options.get("num_cpus")
    demand["CPU"] = _DEFAULT_TASK_CPUS if num_cpus is None else float(num_cpus)
    for option, resource in (("num_gpus", "GPU"), ("memory", "memory"), ("object_store_memory", "object_store_memory")):
        if options.get(option) is not None:
            demand[resource] = float(options[option])
    if options.get("accelerator_type") is not None:
        demand[f"accelerator_type:{options['accelerator_type']}"] = 0.001
    return {name: amount for name, amount in demand.items() if amount > 0}


def missing_from_bundle(demand: Mapping[str, float], bundle: Mapping[str, float]) -> dict[str, float]:
    """The resources of ``demand`` that ``bundle`` lacks, with how much is missing (empty: it fits)."""
    return {
        name: amount - bundle.get(name, 0.0)
        for name, amount in demand.items()
        if amount > bundle.get(name, 0.0) + _EPSILON
    }


def bundle_shape(bundle: object, *, where: str) -> dict[str, float]:
    """Validate a bundle given by a user: a non-empty mapping of resource name to amount >= 0, not all 0.

    ``where`` names the argument in the error message.
    """
    if not isinstance(bundle, Mapping) or not bundle:
        raise ValueError(
            f"{where} must be a non-empty mapping of resource name to amount, e.g. {{'CPU': 1}}; got {bundle!r}"
        )
    shape: dict[str, float] = {}
    for name, amount in bundle.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where} has resource name {name!r}; resource names must be non-empty strings")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount < 0:
            raise ValueError(f"{where} asks for {amount!r} of resource {name!r}; amounts must be finite numbers >= 0")
        shape[name] = float(amount)
    if not any(shape.values()):
        raise ValueError(f"{where} reserves nothing ({bundle!r}); at least one resource must be > 0")
    return shape


def format_resources(resources: Mapping[str, float]) -> str:
    """``{'CPU': 2, 'memory': 1073741824}``: whole amounts without a trailing ``.0``."""
    shown = {name: int(amount) if float(amount).is_integer() else amount for name, amount in sorted(resources.items())}
    return repr(shown)
