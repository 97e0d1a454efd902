"""The loopback cluster: named nodes with their resources and labels, one cluster per process, the fixture factory."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
import ray

from chia_testing import tagged_pids
from chia_testing.cluster import ClusterShape, LoopbackCluster, cluster_fixture, current_cluster, ensure_cluster

SHAPE = ClusterShape(
    "chia-testing two nodes",
    {
        "head": {"num_cpus": 1, "resources": {"head": 1}},
        "node_b": {"num_cpus": 1, "resources": {"node_b": 1}, "labels": {"chia/role": "b"}},
    },
    init_options={"namespace": "chia-testing-tests"},
)

cluster = cluster_fixture(SHAPE)


@ray.remote(num_cpus=0)
def where_and_tagged(tag: str) -> tuple[str, list[int]]:
    """Runs on a worker: this module travels by value, chia_testing is imported there by name."""
    return ray.get_runtime_context().get_node_id(), tagged_pids(tag)


def test_nodes_are_named_with_their_resources_labels_and_loopback_addresses(cluster: LoopbackCluster) -> None:
    list_nodes: Callable[[], list[dict[str, Any]]] = ray.nodes
    nodes = {node["NodeID"]: node for node in list_nodes() if node["Alive"]}
    assert set(nodes) == set(cluster.node_ids.values())
    head, node_b = nodes[cluster.node_ids["head"]], nodes[cluster.node_ids["node_b"]]
    assert head["Resources"]["head"] == 1 and "node_b" not in head["Resources"]
    assert node_b["Resources"]["node_b"] == 1 and node_b["Labels"]["chia/role"] == "b"
    assert {node["NodeManagerAddress"] for node in nodes.values()} == {"127.0.0.1"}
    assert cluster.address.startswith("127.0.0.1:")
    assert ray.get_runtime_context().namespace == "chia-testing-tests"


def test_a_task_of_a_test_module_runs_on_the_named_node(cluster: LoopbackCluster) -> None:
    node, pids = ray.get(where_and_tagged.options(resources={"node_b": 0.01}).remote("chia-testing-no-such-tag"))
    assert (node, pids) == (cluster.node_ids["node_b"], [])


@ray.remote(num_cpus=0)
def metrics_setting() -> str | None:
    return os.environ.get("RAY_enable_metrics_collection")  # noqa: SIM112 - Ray reads RAY_<config name>, case-sensitive


def test_workers_of_test_clusters_export_no_ray_metrics(cluster: LoopbackCluster) -> None:
    # Ray 2.55's metrics exporter thread can crash a worker; the tests read no Ray metric.
    assert ray.get(metrics_setting.options(resources={"node_b": 0.01}).remote()) == "0"


def test_the_same_shape_is_the_same_running_cluster(cluster: LoopbackCluster) -> None:
    assert ensure_cluster(SHAPE) is cluster is current_cluster()
    assert cluster.running


def test_node_env_naming_no_node_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"node_env names \['tunnel'\], which are not in nodes"):
        ClusterShape("bad", {"head": {}}, node_env={"tunnel": {"X": "1"}})


@pytest.mark.parametrize(
    ("nodes", "options", "error"),
    [
        ({}, {}, "nodes is empty"),
        ({"head": {"include_dashboard": True}}, {}, r"sets \['include_dashboard'\]; use dashboard=True"),
        ({"head": {"node_ip_address": "10.0.0.2"}}, {}, "node_ip_address '10.0.0.2'.*loopback"),
        ({"head": {}}, {"address": "auto"}, "may not set 'address'"),
    ],
)
def test_a_bad_shape_is_rejected_naming_the_node_and_key(
    nodes: dict[str, dict[str, Any]], options: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        ClusterShape("bad", nodes, init_options=options)


PLUGIN_RUN = {
    "a/conftest.py": """
        from chia_testing.cluster import ClusterShape, cluster_fixture

        cluster = cluster_fixture(ClusterShape("shape a", {"head": {"num_cpus": 1, "resources": {"a": 1}}}))
    """,
    "a/test_a.py": """
        import ray

        def test_a(cluster):
            assert ray.is_initialized() and cluster.running
            assert "a" in ray.cluster_resources()
    """,
    "b/test_b.py": """
        import ray

        def test_b():
            assert not ray.is_initialized()  # directory a's cluster was stopped after its last test
    """,
}


def test_the_plugin_stops_the_cluster_between_directories_and_fails_a_stale_session_value(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(**{path: textwrap.dedent(text) for path, text in PLUGIN_RUN.items()})
    pytester.makepyfile(**{"a/test_a_again.py": "def test_a_again(cluster):\n    pass\n"})
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "a/test_a.py", "b/test_b.py", "a/test_a_again.py", timeout=600
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'cluster' holds the cluster 'shape a', stopped since it was set up*"])


ORDER_RUN = {
    "d/conftest.py": """
        from chia_testing.cluster import ClusterShape, cluster_fixture

        on_x = cluster_fixture(ClusterShape("x", {"head": {"num_cpus": 1}}), scope="function")
        on_y = cluster_fixture(ClusterShape("y", {"head": {"num_cpus": 2}}), scope="function")
    """,
    "d/test_1_x.py": "def test_x1(on_x): pass\ndef test_x1_again(on_x): pass\n",
    "d/test_2_y.py": "def test_y(on_y): pass\n",
    "d/test_3_plain.py": "def test_plain(): pass\n",
    "d/test_4_x.py": "import pytest\npytestmark = pytest.mark.usefixtures('on_x')\ndef test_x4(): pass\n",
    "e/test_5_y.py": "def test_y5(on_y): pass\n",
}


def test_modules_of_one_cluster_shape_run_together_within_their_directory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{path: textwrap.dedent(text) for path, text in ORDER_RUN.items()})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", "-q", "d", "e")
    listed = [line.split("::")[1] for line in result.stdout.lines if "::" in line]
    assert listed == ["test_plain", "test_x1", "test_x1_again", "test_x4", "test_y", "test_y5"]
