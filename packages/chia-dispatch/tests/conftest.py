"""Fixtures for chia-dispatch tests: the two local Ray cluster shapes they run on (loopback).

``ray.init`` costs seconds, so a cluster is kept between tests; the two
fixtures are function-scoped because tests of one file alternate shapes, and
the running cluster is swapped only when the next test asks for the other.
The shared support (``wait_until``, the ``tagged`` fixture, test modules
shipped to workers by value) comes from chia-testing.
"""

from __future__ import annotations

from chia_testing.cluster import ClusterShape, cluster_fixture

TWO_NODES = ClusterShape(
    "chia-dispatch two nodes",
    {
        "head": {"num_cpus": 2, "resources": {"head": 1}},
        "node_b": {"num_cpus": 1, "resources": {"node_b": 1}},
    },
)

# Fixtures of test_cancel_*, test_wait_* and test_proxy_* (issue 3).
TUNNELED_NODES = ClusterShape(
    "chia-dispatch tunneled",
    {
        # The GCS must not declare a SIGSTOPped raylet dead during the wedged-raylet test.
        "head": {"num_cpus": 2, "resources": {"head": 1}, "_system_config": {"health_check_failure_threshold": 1000}},
        "lan": {"num_cpus": 1, "resources": {"lan": 1}},
        "tun": {"num_cpus": 1, "resources": {"tun": 1}, "labels": {"chia/tunneled": "true"}},
    },
    dashboard=True,  # Ray's state API, behind chia_wait's stuck-task detection
)

two_node_cluster = cluster_fixture(TWO_NODES, scope="function")
tunneled_cluster = cluster_fixture(TUNNELED_NODES, scope="function")
