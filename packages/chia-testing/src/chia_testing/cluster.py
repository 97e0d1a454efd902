"""Multi-node local Ray clusters on loopback for tests, and the pytest fixture factory over them.

A test package describes the cluster it needs as a ``ClusterShape`` (named
nodes with their CPUs, custom resources and labels; the first node is the
head) and gets a fixture from ``cluster_fixture``. One cluster runs in the
process at a time: asking for another shape stops the running one and starts
the new one (``ray.cluster_utils.Cluster`` costs seconds per node, so a shape
is kept until something else is needed). Every node binds 127.0.0.1 and the
driver connects by the cluster's explicit address, never ``"auto"``: a
colleague's cluster on the same machine is never joined, and a process that
calls ``ray.init(address="local")`` still starts its own.

    TWO_NODES = ClusterShape(
        "two nodes",
        {"head": {"num_cpus": 2, "resources": {"head": 1}}, "node_b": {"num_cpus": 1, "resources": {"node_b": 1}}},
    )
    cluster = cluster_fixture(TWO_NODES)  # in conftest.py: a session fixture named ``cluster``
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import pytest
import ray
from ray.cluster_utils import Cluster

from chia_testing._ports import LOOPBACK, free_port
from chia_testing._startup import with_startup_retries
from chia_testing.plugin import CLUSTER_SHAPE_ATTRIBUTE

#: Seconds to wait for every node to register with the GCS (Ray's default of 30 is short on a busy 2-core machine).
NODES_REGISTER_TIMEOUT = 120.0

_MANAGED_KEYS = ("include_dashboard", "dashboard_port")

FixtureScope = Literal["session", "package", "module", "function"]


@dataclass(frozen=True, slots=True)
class ClusterShape:
    """What a test cluster looks like.

    Attributes:
        name: shown in fixture docs and failures.
        nodes: node name -> keyword arguments of ``Cluster.add_node`` (``num_cpus``,
            ``resources``, ``labels``, ``object_store_memory``, ``_system_config``...);
            the first node is the head. ``node_ip_address`` defaults to 127.0.0.1.
        dashboard: start the head's dashboard (Ray's state API needs it) on a free loopback port.
        init_options: extra ``ray.init`` keywords for the test process's driver (``namespace``,
            ``log_to_driver``...); the address is always the cluster's own.
        node_env: node name -> environment variables its raylet (and so its workers) starts
            with, on top of the test process's environment (e.g. a node that plays a tunneled one).
    """

    name: str
    nodes: Mapping[str, Mapping[str, Any]]
    dashboard: bool = False
    init_options: Mapping[str, Any] = field(default_factory=dict)
    node_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError(f"ClusterShape {self.name!r}: nodes is empty; name at least the head node")
        for node, options in self.nodes.items():
            managed = sorted(set(options) & set(_MANAGED_KEYS))
            if managed:
                raise ValueError(
                    f"ClusterShape {self.name!r}: node {node!r} sets {managed}; use dashboard=True instead"
                )
            address = options.get("node_ip_address", LOOPBACK)
            if not str(address).startswith("127."):
                raise ValueError(
                    f"ClusterShape {self.name!r}: node {node!r} has node_ip_address {address!r}; "
                    "test clusters stay on loopback (127.0.0.0/8)"
                )
        unknown = sorted(set(self.node_env) - set(self.nodes))
        if unknown:
            raise ValueError(f"ClusterShape {self.name!r}: node_env names {unknown}, which are not in nodes")
        if "address" in self.init_options:
            raise ValueError(f"ClusterShape {self.name!r}: init_options may not set 'address' (it is the cluster's)")

    def describe(self) -> str:
        """One line: the nodes and what each has."""
        parts = []
        for node, options in self.nodes.items():
            extras = {key: value for key, value in options.items() if key != "node_ip_address"}
            parts.append(f"{node} {extras}" if extras else node)
        return f"{self.name}: " + ", ".join(parts) + (" (dashboard)" if self.dashboard else "")


@dataclass(frozen=True, slots=True)
class LoopbackCluster:
    """A running test cluster, the test process connected to it as a driver.

    Attributes:
        shape: what was asked for.
        address: the GCS address (``127.0.0.1:port``), for subprocess drivers.
        node_ids: node name (as in the shape) -> Ray node id (hex).
        cluster: the ``ray.cluster_utils.Cluster`` itself (its node handles, e.g. to signal a raylet).
    """

    shape: ClusterShape
    address: str
    node_ids: Mapping[str, str]
    cluster: Cluster

    @property
    def running(self) -> bool:
        """True while this is the process's current cluster (a newer shape or a stop ends it)."""
        return _clusters.current is self


class _Clusters:
    """At most one test cluster per process, kept until another shape is asked for."""

    def __init__(self) -> None:
        self.current: LoopbackCluster | None = None

    def ensure(self, shape: ClusterShape) -> LoopbackCluster:
        current = self.current
        if current is not None and current.shape == shape:
            if not ray.is_initialized():  # a test shut its driver down: reconnect
                ray.init(address=current.address, **shape.init_options)
            return current
        self.stop()
        if ray.is_initialized():  # a connection this module did not make, e.g. ray.init(address="local")
            ray.shutdown()
        self.current = with_startup_retries(lambda: _start(shape), shape.name)
        return self.current

    def stop(self) -> None:
        current, self.current = self.current, None
        if ray.is_initialized():
            ray.shutdown()
        if current is not None:
            current.cluster.shutdown()  # type: ignore[no-untyped-call]


_clusters = _Clusters()


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` set in this process's environment for the block (a raylet inherits it when started)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start(shape: ClusterShape) -> LoopbackCluster:
    names = list(shape.nodes)
    head_args: dict[str, Any] = {"node_ip_address": LOOPBACK, "include_dashboard": shape.dashboard}
    head_args.update(shape.nodes[names[0]])
    if shape.dashboard:  # never the default port: another Ray on this machine may hold it
        head_args["dashboard_port"] = free_port()
    with _environment(shape.node_env.get(names[0], {})):
        cluster = Cluster(initialize_head=True, head_node_args=head_args)
    try:
        assert cluster.head_node is not None
        node_ids = {names[0]: cluster.head_node.node_id}
        for name in names[1:]:
            with _environment(shape.node_env.get(name, {})):
                node_ids[name] = cluster.add_node(**{"node_ip_address": LOOPBACK, **shape.nodes[name]}).node_id
        cluster.wait_for_nodes(timeout=NODES_REGISTER_TIMEOUT)
        address: str = cluster.address
        ray.init(address=address, **shape.init_options)
    except BaseException:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
        raise
    return LoopbackCluster(shape, address, MappingProxyType(node_ids), cluster)


def ensure_cluster(shape: ClusterShape) -> LoopbackCluster:
    """The running cluster of ``shape``, started (and any other test cluster stopped) if needed.

    The test process is connected to it as a Ray driver when this returns. A
    start whose node misses Ray's fixed 30 s to register (a loaded machine) is
    tried again, up to three starts in all; any other failure propagates.
    """
    return _clusters.ensure(shape)


def current_cluster() -> LoopbackCluster | None:
    """The process's running test cluster, if any."""
    return _clusters.current


def stop_cluster() -> None:
    """Disconnect the driver and stop the running test cluster (no-op when none runs)."""
    _clusters.stop()


def cluster_fixture(shape: ClusterShape, *, scope: FixtureScope = "session") -> Any:
    """A pytest fixture returning ``ensure_cluster(shape)``; assign it to the fixture's name in a conftest.

    ``scope="session"`` (the default) suits a package whose tests all use one
    shape. A package whose tests alternate between shapes gives each fixture
    ``scope="function"``: the cluster is still kept between tests, and swapped
    only when the next test asks for the other shape. The chia_testing plugin
    stops the cluster after the last test of a directory, so the next
    directory's tests start from no Ray connection; a session-scoped value used
    after that fails its test with a message saying so.

    Returns:
        the fixture function (its type is pytest's own, not part of this API).
    """

    def fixture() -> LoopbackCluster:
        return ensure_cluster(shape)

    fixture.__doc__ = f"A running loopback Ray cluster, the test process connected: {shape.describe()}."
    setattr(fixture, CLUSTER_SHAPE_ATTRIBUTE, shape)  # the plugin runs modules of one shape together
    decorate: Callable[[Callable[[], LoopbackCluster]], Any] = pytest.fixture(scope=scope)
    return decorate(fixture)
