"""should_proxy's reachability analysis on synthetic cluster views (no cluster needed)."""

from __future__ import annotations

import pytest
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from chia.base._dispatch.proxy import _ClusterView, _decide, _is_tunneled, _Node


def node(node_id: str, *, head: bool = False, tunneled: bool = False, **resources: float) -> _Node:
    return _Node(node_id, head, tunneled, {}, {"CPU": 4.0, **resources})


# Node ids are 28-byte hex strings (NodeAffinitySchedulingStrategy checks).
HEAD = node("a0" * 28, head=True)
LAN_A = node("b1" * 28, lan=1)
LAN_B = node("b2" * 28, lan=1)
TUN = node("c1" * 28, tunneled=True, tun=1)
TUN_2 = node("c2" * 28, tunneled=True, tun=1)
NODES = {n.node_id: n for n in (HEAD, LAN_A, LAN_B, TUN, TUN_2)}


def view_from(source: _Node, nodes: dict[str, _Node] = NODES) -> _ClusterView:
    return _ClusterView(source, nodes, any(n.tunneled for n in nodes.values()), 0.0)


@pytest.mark.parametrize(
    ("source", "resources", "relays"),
    [
        (TUN, {"lan": 1}, True),  # tunneled -> LAN: no route
        (LAN_A, {"tun": 1}, True),  # LAN -> tunneled (local -> remote)
        (LAN_A, {"lan": 1}, False),  # LAN -> LAN: direct
        (TUN, {"tun": 1}, True),  # could land on the other tunneled node
        (HEAD, {"tun": 1}, False),  # the head never relays
        (HEAD, {"lan": 1}, False),
        (LAN_A, {}, True),  # could land on a tunneled node
        (TUN, {"CPU": 64}, True),  # nowhere to land today: cannot be proven reachable
    ],
)
def test_relays_unless_every_candidate_node_is_provably_reachable(
    source: _Node, resources: dict[str, float], relays: bool
) -> None:
    assert _decide(view_from(source), {"resources": resources, "num_cpus": 0}) is relays


def test_pinning_to_a_node_narrows_the_candidates() -> None:
    pinned_head = {"scheduling_strategy": NodeAffinitySchedulingStrategy(HEAD.node_id, soft=False)}
    pinned_self = {"scheduling_strategy": NodeAffinitySchedulingStrategy(TUN.node_id, soft=False)}
    pinned_lan = {"scheduling_strategy": NodeAffinitySchedulingStrategy(LAN_B.node_id, soft=False)}
    soft_head = {"scheduling_strategy": NodeAffinitySchedulingStrategy(HEAD.node_id, soft=True)}
    assert _decide(view_from(TUN), pinned_head) is False
    assert _decide(view_from(TUN), pinned_self) is False
    assert _decide(view_from(TUN), pinned_lan) is True
    assert _decide(view_from(TUN), soft_head) is True  # soft: may land anywhere


def test_a_cluster_without_tunneled_nodes_never_relays() -> None:
    plain = {n.node_id: n for n in (HEAD, LAN_A, LAN_B)}
    assert _decide(view_from(LAN_A, plain), {"num_cpus": 64}) is False


def test_label_selectors_filter_candidates() -> None:
    labelled = {
        **NODES,
        LAN_A.node_id: _Node(LAN_A.node_id, False, False, {"zone": "x"}, {"CPU": 4.0}),
    }
    assert _decide(view_from(LAN_B, labelled), {"label_selector": {"zone": "x"}}) is False
    assert _decide(view_from(LAN_B, labelled), {"label_selector": {"zone": "!x"}}) is True  # operators: conservative


@pytest.mark.parametrize(
    ("entry", "tunneled"),
    [
        ({"Labels": {"chia/tunneled": "true"}, "Resources": {}}, True),
        ({"Labels": {"chia/tunneled": "1"}, "Resources": {}}, True),
        ({"Labels": {"chia/tunneled": "false"}, "Resources": {}}, False),
        ({"Labels": {}, "Resources": {"chia_tunneled": 1.0}}, True),
        ({"Labels": {}, "Resources": {"CPU": 1.0}}, False),
    ],
)
def test_node_markers(entry: dict[str, dict[str, object]], tunneled: bool) -> None:
    assert _is_tunneled(entry) is tunneled
