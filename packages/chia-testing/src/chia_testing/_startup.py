"""Starting a test cluster again when it misses one of Ray's fixed startup limits.

On a loaded 2-core machine a raylet can miss Ray's fixed 30 s to register,
and a dashboard's subprocess modules Ray's (raised here) time to start; both
cluster kinds of chia-testing (``chia_testing.cluster``, ``chia_testing.ray_start``)
start through :func:`with_startup_retries`. Importing this module does not import Ray.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TypeVar

# A loaded machine needs more than Ray's 30 s for a dashboard's subprocess modules to
# start; past it the head fails to start (seen in CI at load 30). Read by each dashboard
# process from the environment it starts with.
os.environ.setdefault("RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT", "180")

T = TypeVar("T")

STARTS = 3
"""A start that misses one of Ray's fixed startup limits is tried again, twice at most."""

STARTUP_TIMEOUTS = ("timed out during startup", "Timeout after", "failed to start")
"""What Ray says when a node or a dashboard module misses such a limit."""

logger = logging.getLogger(__name__)


def with_startup_retries(start: Callable[[], T], what: str) -> T:
    """``start()``, called again (at most :data:`STARTS` times in all) while it fails on a startup limit.

    ``start`` must tear down what it started before it raises. Any other
    failure, or the last one, propagates.
    """
    for attempt in range(1, STARTS + 1):
        try:
            return start()
        except Exception as error:  # Ray raises a bare Exception when a node misses its startup limit
            if attempt == STARTS or not any(text in str(error) for text in STARTUP_TIMEOUTS):
                raise
            logger.warning("%s: missed one of Ray's startup limits (a loaded machine); starting again", what)
    raise AssertionError("unreachable: the last attempt returns or raises")
