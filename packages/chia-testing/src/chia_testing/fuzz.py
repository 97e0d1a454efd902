"""The settings of the generated-input (hypothesis) tests: the same cases every run, no deadline.

A fuzz test of chia checks that generated configurations and command lines
either work or fail with the documented error. It must be reproducible in CI
and must never turn a slow, loaded machine into a failure, so the cases are
derandomized, nothing is stored between runs, and no per-case deadline is set.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

__all__ = ["fuzz_settings"]


def fuzz_settings(max_examples: int) -> settings:
    """``@fuzz_settings(400)``: ``max_examples`` derandomized cases, no deadline, no example database.

    The health checks that only measure speed (a loaded machine) or object
    to function-scoped fixtures (used read-only here) are off.
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
    )
