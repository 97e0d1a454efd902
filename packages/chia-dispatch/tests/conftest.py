"""Fixtures for chia-dispatch tests: one local Ray cluster on loopback for the whole package.

Starting a Ray node costs seconds of CPU, so the package's tests share one
cluster that has every node they need, started once:

- ``head``: 2 CPUs, custom resource ``head``, the dashboard (Ray's state API,
  behind chia_wait's stuck-task detection); its GCS never declares a raylet
  dead while the wedged-raylet test holds one stopped;
- ``node_b``: 1 CPU, a LAN node (custom resources ``node_b`` and ``lan``);
- ``tun``: 1 CPU, resource ``tun``, labelled tunneled (``chia/tunneled``);
- ``envtun``: 1 CPU, resource ``envtun``, its raylet started with the tunnel
  variables (``TUNNEL_VALUES``), so it is recognised as tunneled from its
  environment alone.

The shared support (``wait_until``, the ``tagged`` fixture, test modules
shipped to workers by value) comes from chia-testing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chia.base._dispatch import tags
from chia_testing.cluster import ClusterShape, cluster_fixture

#: The environment of a node reached through a tunnel (chia.base.dispatch_proxy.TUNNEL_ENV).
TUNNEL_VALUES = {"CHIA_TOOL_RELAY_HOST": "127.0.0.1", "CHIA_TOOL_ADVERTISE_HOST": "127.0.0.1"}

DISPATCH_NODES = ClusterShape(
    "chia-dispatch: head, LAN node_b, labelled tunneled node tun, env-marked tunneled node envtun",
    {
        # The GCS must not declare a SIGSTOPped raylet dead during the wedged-raylet test.
        "head": {"num_cpus": 2, "resources": {"head": 1}, "_system_config": {"health_check_failure_threshold": 1000}},
        "node_b": {"num_cpus": 1, "resources": {"node_b": 1, "lan": 1}},
        "tun": {"num_cpus": 1, "resources": {"tun": 1}, "labels": {"chia/tunneled": "true"}},
        "envtun": {"num_cpus": 1, "resources": {"envtun": 1}},
    },
    dashboard=True,
    node_env={"envtun": TUNNEL_VALUES},
)

cluster = cluster_fixture(DISPATCH_NODES)


@pytest.fixture
def name_limit(monkeypatch: pytest.MonkeyPatch) -> Callable[[int | None], None]:
    """Give this process a fresh namer with the limit given (None: no limit), as CHIA_TAGGED_TASK_NAMES would."""

    def set_limit(limit: int | None) -> None:
        monkeypatch.setattr(tags, "_namer", tags.TaskNamer(limit))

    return set_limit
