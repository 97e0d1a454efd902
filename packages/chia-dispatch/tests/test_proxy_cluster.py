"""The dispatch proxy on a local cluster whose node ``tun`` is labelled tunneled (``chia/tunneled=true``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
import ray
from ray.exceptions import TaskCancelledError

from chia.base._dispatch import job_actors
from chia.base._dispatch import proxy as proxy_core  # a module: tasks of this file pickle their globals by value
from chia.base.ChiaFunction import ChiaFunction, chia_cancel, get
from chia.base.dispatch_proxy import should_proxy
from chia.base.pid_registry import task_tags
from chia_testing import tagged_pids, wait_until

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=0)
def add_one(x: int) -> int:
    return x + 1


@ChiaFunction(num_cpus=0)
def fail(message: str) -> None:
    raise KeyError(message)


@ChiaFunction(num_cpus=0, num_returns=2)
def pair(x: int) -> tuple[int, int]:
    return x, -x


@ChiaFunction(num_cpus=0)
def nested_add_one(target: str, x: int) -> tuple[int, bool]:
    """From this worker, dispatch ``add_one`` to node ``target``; report whether it was relayed."""
    options: dict[str, Any] = {"num_cpus": 0, "resources": {target: 0.01}}
    return get(add_one.options(**options).chia_remote(x)), should_proxy(options)


@ChiaFunction(num_cpus=0)
def nested_failure(target: str) -> str:
    try:
        get(fail.options(resources={target: 0.01}).chia_remote("boom"))
    except KeyError as error:  # the user's exception type survives the relay, as with direct dispatch
        return "KeyError boom" if "boom" in str(error) else f"KeyError without the message: {error}"
    return "no error"


@ChiaFunction(num_cpus=0)
def nested_pairs(target: str) -> tuple[list[list[int]], bool]:
    dispatch: Any = pair.options(resources={target: 0.01}).chia_remote  # num_returns=2: a list of refs
    values = [get(dispatch(x)) for x in (1, 2, 3)]
    return values, proxy_core.route._warned_num_returns


@ChiaFunction(num_cpus=0)
def own_task_id() -> str | None:
    return ray.get_runtime_context().get_task_id()


@ChiaFunction(num_cpus=0)
def nested_tagged(target: str, tag: str) -> tuple[str | None, bool]:
    """From this worker, dispatch a call tagged ``tag`` to ``target``; its task id, and whether it was relayed."""
    options: dict[str, Any] = {"num_cpus": 0, "resources": {target: 0.01}}
    return get(own_task_id.options(**options, _chia_tag=tag).chia_remote()), should_proxy(options)


@ChiaFunction(num_cpus=0)
def hold_tree(tag: str) -> str:
    subprocess.run(["bash", "-c", f"(exec -a {tag}-child sleep 300) & wait"], start_new_session=True)
    return "finished"


@ChiaFunction(num_cpus=0)
def nested_cancel(target: str, tag: str) -> str:
    """Relay a subprocess-holding task, wait for its child, chia_cancel it from here."""
    ref = hold_tree.options(resources={target: 0.01}).chia_remote(tag)
    wait_until(lambda: tagged_pids(tag), message=f"the relayed task's child {tag}")
    chia_cancel(ref, grace=5.0)
    try:
        get(ref)
    except TaskCancelledError:
        return "cancelled"
    return "not cancelled"


def relayed_count() -> int:
    proxy = job_actors.lookup(job_actors.proxy_name(ray.get_runtime_context().get_job_id()))
    if proxy is None:
        return 0
    stats: dict[str, int] = ray.get(proxy.stats.remote())
    return stats["relayed"]


@pytest.mark.ray_compat
@pytest.mark.parametrize(
    ("source", "target", "relayed"),
    [
        ("tun", "lan", True),  # tunneled worker -> LAN node
        ("lan", "tun", True),  # LAN worker -> tunneled node
        ("lan", "head", False),  # the head is reachable from everywhere
        ("tun", "head", False),
        ("head", "tun", False),  # the head never relays
        ("head", "lan", False),
    ],
)
def test_nested_dispatch_is_relayed_exactly_when_the_target_is_unreachable(
    source: str, target: str, relayed: bool
) -> None:
    before = relayed_count()
    value, decided = get(nested_add_one.options(resources={source: 0.01}).chia_remote(target, 41))
    assert value == 42
    assert decided is relayed
    assert relayed_count() - before == (1 if relayed else 0)


@pytest.mark.parametrize(("source", "target", "relayed"), [("tun", "lan", True), ("lan", "head", False)])
def test_tags_left_out_of_task_names_reach_the_registry_from_where_the_task_was_submitted(
    source: str, target: str, relayed: bool
) -> None:
    tag = f"nested-{source}-{target}"
    runtime_env = {"env_vars": {"CHIA_TAGGED_TASK_NAMES": "0"}}  # the nested caller never tags a task name
    outer = nested_tagged.options(resources={source: 0.01}, runtime_env=runtime_env)
    task_id, was_relayed = get(outer.chia_remote(target, tag))
    assert task_id is not None and was_relayed is relayed
    # Relayed, the proxy submitted the task: the tag went to the registry from there.
    wait_until(lambda: task_tags([task_id]) == {task_id: tag}, message=f"the registry to hold the tag {tag}")


def test_the_driver_never_relays() -> None:
    before = relayed_count()
    assert should_proxy({"resources": {"tun": 0.01}}) is False
    assert get(add_one.options(resources={"tun": 0.01}).chia_remote(1)) == 2
    assert relayed_count() == before


def test_the_proxy_is_pinned_to_the_head_and_counts(cluster: Any) -> None:
    get(nested_add_one.options(resources={"tun": 0.01}).chia_remote("lan", 1))
    proxy = job_actors.lookup(job_actors.proxy_name(ray.get_runtime_context().get_job_id()))
    assert proxy is not None
    info = ray._private.state.actors(actor_id=proxy._actor_id.hex())
    assert info["Address"]["NodeID"] == cluster.node_ids["head"]
    stats = ray.get(proxy.stats.remote())
    assert stats["relayed"] >= 1 and stats["in_flight"] == 0


def test_errors_of_relayed_tasks_reach_the_caller_with_their_type() -> None:
    assert get(nested_failure.options(resources={"tun": 0.01}).chia_remote("lan")) == "KeyError boom"


def test_num_returns_above_one_falls_back_to_direct_dispatch_with_one_warning() -> None:
    before = relayed_count()
    values, warned = get(nested_pairs.options(resources={"tun": 0.01}).chia_remote("lan"))
    assert values == [[1, -1], [2, -2], [3, -3]]
    assert warned is True
    assert relayed_count() == before


@pytest.mark.ray_compat
def test_chia_cancel_reaches_a_relayed_task_and_its_subprocesses(tagged: Any) -> None:
    tag = tagged.new_tag("chia-proxy-cancel")
    assert get(nested_cancel.options(resources={"tun": 0.01}).chia_remote("lan", tag)) == "cancelled"
    assert tagged.pids(tag) == []


DRIVER = textwrap.dedent(
    """
    import os, sys
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    from chia.base.ChiaFunction import ChiaFunction, get

    @ChiaFunction(num_cpus=0)
    def add_one(x):
        return x + 1

    @ChiaFunction(num_cpus=0, resources={"tun": 0.01})
    def relay_from_tunneled(x):
        return get(add_one.options(resources={"lan": 0.01}).chia_remote(x))

    ray.init(address=sys.argv[1])
    assert get(relay_from_tunneled.chia_remote(1)) == 2
    print(ray.get_runtime_context().get_job_id(), flush=True)
    """
)


@pytest.mark.ray_compat
def test_one_proxy_per_job_removed_when_the_job_ends(cluster: Any) -> None:
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, cluster.cluster.address],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    name = job_actors.proxy_name(driver.stdout.strip().splitlines()[-1])
    wait_until(
        lambda: name not in {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)},
        message=f"{name} removing itself after its job ended",
    )
