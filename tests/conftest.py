"""Cross-package tests: one real two-node local Ray cluster (loopback only), from chia-testing.

The head has 2 CPUs and the custom resource ``head``; a second node has
2 CPUs and ``node_b``. Tests that need no cluster never start it.
"""

from __future__ import annotations

from chia_testing.cluster import ClusterShape, cluster_fixture

cluster = cluster_fixture(
    ClusterShape(
        "cross-package two nodes",
        {
            "head": {"num_cpus": 2, "resources": {"head": 1}},
            "node_b": {"num_cpus": 2, "resources": {"node_b": 1}},
        },
        init_options={"namespace": "chia_cross_tests"},
    )
)
