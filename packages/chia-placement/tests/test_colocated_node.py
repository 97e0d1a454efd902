"""ColocatedNode on a real multi-node cluster: where members land, and what happens to placement groups."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pytest
import ray
from ray.util.placement_group import PlacementGroup, placement_group_table
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from chia.base.ChiaFunction import ChiaFunction, get
from chia.base.colocated import ColocatedNode, PinnedChiaFn
from chia_testing import wait_until

DISPATCHES = 20
_cloudpickle_dumps: Callable[[object], bytes] = ray.cloudpickle.dumps


def _node_id() -> str:
    node_id: str = ray.get_runtime_context().get_node_id()
    return node_id


@ChiaFunction(num_cpus=0.5)
def checkout(revision: int) -> str:
    return _node_id()


@ChiaFunction(num_cpus=2)
def heavy_build(revision: int) -> str:
    return _node_id()


class SimulatorNode(ColocatedNode):
    _MEMBER_FNS = ("checkout", "simulate")
    _DEFAULT_BUNDLE: ClassVar[Mapping[str, float]] = {"CPU": 1}

    checkout = checkout

    def __init__(self, label: str, **placement: Any) -> None:
        self.label = label
        super().__init__(**placement)

    @ChiaFunction(num_cpus=0.5)
    def simulate(self, step: int) -> tuple[str, str]:
        return self.label, _node_id()


class BuildNode(ColocatedNode):
    _MEMBER_FNS = ("checkout", "heavy_build")
    checkout = checkout
    heavy_build = heavy_build


def _pg_state(pg: PlacementGroup) -> str:
    state: str = placement_group_table(pg)["state"]
    return state


def _bundle_node(pg: PlacementGroup, index: int = 0) -> str:
    node_id: str = placement_group_table(pg)["bundles_to_node_id"][index]
    return node_id


def _pinned_node(node: ColocatedNode) -> str:
    assert node.placement_group is not None
    return _bundle_node(node.placement_group)


def _live_pg_ids() -> set[str]:
    return {pg_id for pg_id, info in placement_group_table().items() if info["state"] != "REMOVED"}


@pytest.mark.ray_compat
def test_every_dispatch_of_every_member_lands_on_the_bundle_node(cluster: Any) -> None:
    with SimulatorNode("sim-1") as node:
        assert node.owns_placement_group and node.placement_group is not None
        checkouts = get([node.checkout.chia_remote(i) for i in range(DISPATCHES)])
        simulations = get([node.simulate.chia_remote(node, i) for i in range(DISPATCHES)])
        tagged = get([node.checkout.options(_chia_tag=f"it{i}").chia_remote(i) for i in range(DISPATCHES)])
        bundle_node = _pinned_node(node)

    assert set(checkouts) == {bundle_node}
    assert set(tagged) == {bundle_node}
    assert set(simulations) == {("sim-1", bundle_node)}


def test_the_class_attribute_stays_unpinned(cluster: Any) -> None:
    with SimulatorNode("sim-2", reserve_bundle={"CPU": 1, "node_b": 0.1}) as node:
        assert isinstance(node.checkout, PinnedChiaFn)
        assert SimulatorNode.checkout is checkout
        assert "scheduling_strategy" not in SimulatorNode.checkout.chia_options
        pinned = get([node.checkout.chia_remote(i) for i in range(DISPATCHES)])
        on_a = SimulatorNode.checkout.options(resources={"node_a": 0.01})
        elsewhere = get([on_a.chia_remote(i) for i in range(DISPATCHES)])
        other = SimulatorNode("sim-3")
        try:
            assert other.checkout is not node.checkout
            assert other.placement_group != node.placement_group
        finally:
            other.close()

    assert set(pinned) == {cluster.node_ids["node_b"]}
    assert set(elsewhere) == {cluster.node_ids["node_a"]}


@pytest.mark.ray_compat
def test_members_follow_a_given_placement_group_which_the_node_never_removes(cluster: Any) -> None:
    pg = ray.util.placement_group([{"CPU": 1, "node_a": 0.5}, {"CPU": 1, "node_b": 0.5}], strategy="SPREAD")
    ray.get(pg.ready())
    try:
        node = SimulatorNode("given", placement_group=pg, bundle_index=1)
        assert node.placement_group == pg and not node.owns_placement_group
        assert set(get([node.checkout.chia_remote(i) for i in range(DISPATCHES)])) == {cluster.node_ids["node_b"]}
        node.close()
        node.close()
        assert _pg_state(pg) == "CREATED"
        with SimulatorNode("given-again", placement_group=pg, bundle_index=0) as again:
            assert set(get([again.checkout.chia_remote(i) for i in range(DISPATCHES)])) == {cluster.node_ids["node_a"]}
        assert _pg_state(pg) == "CREATED"
    finally:
        ray.util.remove_placement_group(pg)


def test_bundle_index_minus_one_uses_any_bundle_of_a_given_placement_group(cluster: Any, caplog: Any) -> None:
    # Issue 13 point 15: Ray's "any bundle" index is accepted, as in chialoops.
    pg = ray.util.placement_group([{"CPU": 1, "node_a": 0.5}, {"CPU": 1, "node_b": 0.5}], strategy="SPREAD")
    ray.get(pg.ready())
    try:
        with caplog.at_level(logging.WARNING, logger="chia.base.colocated"):
            node = BuildNode(placement_group=pg, bundle_index=-1)
        assert "BuildNode.heavy_build demands {'CPU': 2}, which does not fit any bundle" in caplog.text
        strategy = node.task_options["scheduling_strategy"]
        assert strategy.placement_group == pg and strategy.placement_group_bundle_index == -1
        landed = set(get([node.checkout.chia_remote(i) for i in range(DISPATCHES)]))
        assert landed <= {cluster.node_ids["node_a"], cluster.node_ids["node_b"]} and landed
        with pytest.raises(ValueError, match="does not fit any bundle"):
            node.heavy_build.chia_remote(1)
        assert node.heavy_build.options(num_cpus=1).chia_remote_blocking(1) in {
            cluster.node_ids["node_a"],
            cluster.node_ids["node_b"],
        }
    finally:
        ray.util.remove_placement_group(pg)


def test_closing_a_node_given_a_placement_group_leaves_it_working(cluster: Any) -> None:
    # Issue 13 point 15: close() only releases what the node reserved; a given group keeps pinning.
    pg = ray.util.placement_group([{"CPU": 1, "node_b": 0.5}])
    ray.get(pg.ready())
    try:
        node = SimulatorNode("given", placement_group=pg)
        node.close()
        strategy = node.task_options["scheduling_strategy"]
        assert node.placement_group == pg and strategy.placement_group == pg
        assert strategy.placement_group_bundle_index == 0
        assert set(get([node.checkout.chia_remote(i) for i in range(DISPATCHES)])) == {cluster.node_ids["node_b"]}
        assert _pg_state(pg) == "CREATED"
        unpinned = SimulatorNode("unpinned", require_colocated=False)
        unpinned.close()
        assert unpinned.task_options == {} and unpinned.checkout.chia_remote_blocking(1) in {
            cluster.node_ids["node_a"],
            cluster.node_ids["node_b"],
        }
    finally:
        ray.util.remove_placement_group(pg)


def test_a_self_reserved_placement_group_is_released_on_close_and_the_node_stops_pinning(cluster: Any) -> None:
    node = SimulatorNode("closing", reserve_bundle={"CPU": 1, "node_b": 0.1})
    pg = node.placement_group
    assert pg is not None and _bundle_node(pg) == cluster.node_ids["node_b"]
    assert node.checkout.chia_remote_blocking(1) == cluster.node_ids["node_b"]

    node.close()
    node.close()

    wait_until(lambda: _pg_state(pg) == "REMOVED", message="the reserved placement group to be removed")
    assert node.placement_group is None and not node.owns_placement_group
    with pytest.raises(RuntimeError, match=r"SimulatorNode\.checkout: the node was closed"):
        node.checkout.chia_remote(1)
    with pytest.raises(RuntimeError, match="SimulatorNode was closed"):
        _ = node.task_options
    assert node.simulate(7) == ("closing", _node_id())  # local calls still work, binding self


@pytest.mark.ray_compat
def test_waiting_for_an_impossible_bundle_times_out_without_leaking(cluster: Any) -> None:
    before = _live_pg_ids()
    with pytest.raises(TimeoutError, match=r"SimulatorNode.*'no_such_accelerator': 1.*pg_ready_timeout_s=1"):
        SimulatorNode("impossible", reserve_bundle={"CPU": 1, "no_such_accelerator": 1}, pg_ready_timeout_s=1)
    wait_until(lambda: _live_pg_ids() == before, message="no placement group left behind by the timed-out node")


def test_a_failing_subclass_init_releases_the_reservation(cluster: Any) -> None:
    class CheckoutFailsNode(SimulatorNode):
        def __init__(self) -> None:
            super().__init__("doomed")
            self.reserved = self.placement_group
            raise OSError("checkout failed")

    before = _live_pg_ids()
    with pytest.raises(OSError, match="checkout failed"):
        CheckoutFailsNode()
    wait_until(lambda: _live_pg_ids() == before, message="the failed node's placement group to be removed")


def test_a_member_that_does_not_fit_warns_at_construction_and_raises_at_dispatch(
    cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="chia.base.colocated"):
        node = BuildNode()
    try:
        warnings = [record.getMessage() for record in caplog.records if record.name == "chia.base.colocated"]
        assert len(warnings) == 1
        assert "BuildNode.heavy_build demands {'CPU': 2}" in warnings[0]
        assert "bundle 0 {'CPU': 1}" in warnings[0]

        with pytest.raises(ValueError, match=r"BuildNode\.heavy_build demands \{'CPU': 2\}.*bundle 0 \{'CPU': 1\}"):
            node.heavy_build.chia_remote(1)
        with pytest.raises(ValueError, match=r"BuildNode\.checkout demands \{'CPU': 4\}"):
            node.checkout.options(num_cpus=4).chia_remote(1)

        bundle_node = _pinned_node(node)
        assert node.heavy_build.options(num_cpus=1).chia_remote_blocking(1) == bundle_node
        assert node.checkout.chia_remote_blocking(1) == bundle_node
        assert BuildNode.heavy_build.chia_remote_blocking(1) in {cluster.node_ids["node_a"], cluster.node_ids["node_b"]}
    finally:
        node.close()


@pytest.mark.ray_compat
def test_task_options_co_locate_an_actor_with_the_members(cluster: Any) -> None:
    @ray.remote(num_cpus=0)
    class Probe:
        def node(self) -> str:
            return _node_id()

    with SimulatorNode("tools", reserve_bundle={"CPU": 1, "node_a": 0.1}) as node:
        probe = Probe.options(**node.task_options).remote()  # type: ignore[attr-defined]
        assert ray.get(probe.node.remote()) == node.checkout.chia_remote_blocking(0) == cluster.node_ids["node_a"]
        ray.kill(probe)


def test_without_colocation_members_delegate_to_the_raw_functions(cluster: Any) -> None:
    node = SimulatorNode("free", require_colocated=False)
    assert node.placement_group is None and not node.owns_placement_group
    assert node.task_options == {}
    assert node.checkout.chia_options == checkout.chia_options
    landed = get([node.checkout.options(resources={"node_b": 0.01}).chia_remote(i) for i in range(5)])
    assert set(landed) == {cluster.node_ids["node_b"]}
    node.close()


def test_a_node_not_waiting_for_its_reservation_still_pins(cluster: Any) -> None:
    with SimulatorNode("lazy", wait_for_pg=False) as node:
        landed = get([node.checkout.chia_remote(i) for i in range(5)])
        assert set(landed) == {_pinned_node(node)}


def test_a_static_member_is_called_locally_without_the_node(cluster: Any) -> None:
    class StaticNode(ColocatedNode):
        _MEMBER_FNS = ("checkout",)
        checkout = staticmethod(checkout)

    with StaticNode() as node:
        pinned: Any = node.checkout
        assert pinned(5) == _node_id()
        assert pinned.chia_remote_blocking(5) == _pinned_node(node)


def test_a_pickled_copy_pins_like_the_original_but_never_owns(cluster: Any) -> None:
    with SimulatorNode("copied") as node:
        copy = pickle.loads(_cloudpickle_dumps(node))  # how Ray ships a node into a task
        assert copy.placement_group == node.placement_group
        assert not copy.owns_placement_group
        copy.close()
        assert node.placement_group is not None and _pg_state(node.placement_group) == "CREATED"
        assert copy.label == "copied"
        assert node.simulate.chia_remote_blocking(node, 1) == ("copied", _pinned_node(node))


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"pg_strategy": "TIGHT"}, ValueError, "pg_strategy must be one of PACK, SPREAD, STRICT_PACK, STRICT_SPREAD"),
        ({"bundle_index": 1}, ValueError, r"bundle_index must be 0 \(or -1\)"),
        ({"bundle_index": -2}, ValueError, "bundle_index must be an int >= 0, or -1 for any bundle"),
        ({"reserve_bundle": {"CPU": 0}}, ValueError, "reserves nothing"),
        ({"reserve_bundle": {"CPU": -1}}, ValueError, "asks for -1 of resource 'CPU'"),
        ({"reserve_bundle": {"CPU": 1}, "require_colocated": False}, ValueError, "reserve_bundle=.* only applies"),
        ({"pg_ready_timeout_s": 0}, ValueError, "pg_ready_timeout_s must be a number of seconds > 0"),
        ({"placement_group": "pg-1"}, TypeError, "placement_group must be a ray PlacementGroup"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_reserved(
    cluster: Any, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    before = _live_pg_ids()
    with pytest.raises(error, match=message):
        SimulatorNode("bad", **arguments)
    assert _live_pg_ids() == before


def test_a_given_bundle_index_out_of_range_names_the_valid_range(cluster: Any) -> None:
    pg = ray.util.placement_group([{"CPU": 0.1}])
    try:
        with pytest.raises(
            ValueError, match=r"bundle_index=3 is out of range.*has 1 bundle\(s\) \(valid: 0..0, or -1 for any bundle\)"
        ):
            SimulatorNode("out-of-range", placement_group=pg, bundle_index=3)
        assert _pg_state(pg) != "REMOVED"
    finally:
        ray.util.remove_placement_group(pg)


def _class_with(members: Any, **attributes: Any) -> type[ColocatedNode]:
    return type("BrokenNode", (ColocatedNode,), {"_MEMBER_FNS": members, **attributes})


@pytest.mark.parametrize(
    ("members", "attributes", "error", "message"),
    [
        ("checkout", {"checkout": checkout}, TypeError, r"BrokenNode._MEMBER_FNS must be a tuple of member names"),
        (("missing",), {}, AttributeError, r"BrokenNode._MEMBER_FNS names 'missing', but BrokenNode has no attribute"),
        (("plain",), {"plain": staticmethod(len)}, TypeError, r"BrokenNode.plain is not a @ChiaFunction member"),
    ],
)
def test_bad_member_declarations_name_the_class_and_member(
    cluster: Any, members: Any, attributes: dict[str, Any], error: type[Exception], message: str
) -> None:
    before = _live_pg_ids()
    with pytest.raises(error, match=message):
        _class_with(members, **attributes)()
    assert _live_pg_ids() == before


def test_pinned_fn_without_scheduling_options_is_the_raw_function(cluster: Any) -> None:
    pinned = PinnedChiaFn(checkout, {})
    assert pinned(3) == checkout(3)
    assert pinned.__wrapped__ is checkout.__wrapped__
    assert pinned.chia_options == checkout.chia_options
    landed = get([pinned.options(resources={"node_a": 0.01}).chia_remote(i) for i in range(3)])
    assert set(landed) == {cluster.node_ids["node_a"]}


def test_pinned_fn_layers_options_over_its_pinning_and_keeps_resource_demands(cluster: Any) -> None:
    pg = ray.util.placement_group([{"CPU": 1, "node_b": 0.5}])
    ray.get(pg.ready())
    try:
        pinned = PinnedChiaFn(checkout, {"scheduling_strategy": PlacementGroupSchedulingStrategy(pg, 0)})
        assert pinned.chia_options["num_cpus"] == 0.5
        assert pinned.chia_remote_blocking(1) == cluster.node_ids["node_b"]
        assert pinned.options(max_retries=0, _chia_tag="t").chia_remote_blocking(2) == cluster.node_ids["node_b"]
        unpinned = pinned.options(scheduling_strategy="DEFAULT", resources={"node_a": 0.01})
        assert unpinned.chia_remote_blocking(3) == cluster.node_ids["node_a"]
    finally:
        ray.util.remove_placement_group(pg)


def test_pinned_fn_accepts_resource_options_with_its_pinning(cluster: Any) -> None:
    # Issue 13 point 16: chialoops users pass num_cpus alongside the strategy.
    pg = ray.util.placement_group([{"CPU": 1, "node_b": 0.5}])
    ray.get(pg.ready())
    try:
        strategy = PlacementGroupSchedulingStrategy(pg, 0)
        pinned = PinnedChiaFn(heavy_build, {"scheduling_strategy": strategy, "num_cpus": 0.5})
        assert pinned.chia_options["num_cpus"] == 0.5 and heavy_build.chia_options["num_cpus"] == 2
        assert pinned.chia_remote_blocking(1) == cluster.node_ids["node_b"]  # 2 CPUs would not fit the 1-CPU bundle
    finally:
        ray.util.remove_placement_group(pg)


@pytest.mark.parametrize(
    ("fn", "options", "error", "message"),
    [
        (checkout, {"_chia_tag": "t"}, ValueError, "must not contain '_chia_tag'"),
        (checkout, {"scheduling_strategy": 42}, ValueError, "invalid Ray options"),
        (len, {}, TypeError, "PinnedChiaFn needs a @ChiaFunction"),
    ],
)
def test_pinned_fn_refuses_what_would_not_pin(
    cluster: Any, fn: Callable[..., Any], options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        PinnedChiaFn(fn, options)  # type: ignore[arg-type]
