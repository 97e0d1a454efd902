"""The dispatch proxy: the head-pinned relay actor and the per-process routing decision.

Owns :class:`DispatchProxy`, the cluster view and reachability rules behind
``should_proxy``, and ``route``, the per-process relay state ``chia_remote``
reads on every dispatch. Users import the public names (and read how the
proxy works) from :mod:`chia.base.dispatch_proxy`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.experimental import internal_kv
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from chia.base._dispatch import job_actors
from chia.base._dispatch.registry import chia_cancel

logger = logging.getLogger(__name__)

TUNNELED_LABEL = "chia/tunneled"  # documented in chia.base.dispatch_proxy
TUNNELED_RESOURCE = "chia_tunneled"  # documented in chia.base.dispatch_proxy
TUNNEL_ENV = ("CHIA_TOOL_RELAY_HOST", "CHIA_TOOL_ADVERTISE_HOST")  # the reference's marking, in the raylet's env
_ENV_KV_PREFIX = "chia_env_tunneled/"  # GCS internal KV: node id -> b"1" / b"0", once per node
_ENV_KV_NAMESPACE = "chia"
_PROBE_TIMEOUT = 10.0

_VIEW_REFRESH = 30.0
_MAX_DECISIONS = 4096
_MAX_CONCURRENCY = 100_000
_TRUE_VALUES = frozenset({"true", "1", "yes"})


# --- the proxy actor -----------------------------------------------------------------


class DispatchProxy:
    """Relays task submissions for workers that cannot reach the target node. Experimental.

    One per job, detached, pinned to the head node (``num_cpus=0``, async,
    concurrency not capped at a small number). :meth:`relay` submits the
    task (so the proxy owns it), awaits its value and returns it: the caller
    receives an ordinary ObjectRef whose value lives on the head. Removes
    itself when its job ends. :meth:`stats` exposes counters.
    """

    def __init__(self, job_hex: str) -> None:
        self._job_hex = job_hex
        self._relayed = 0
        self._failed = 0
        self._inner: dict[str, Any] = {}  # relay task id -> inner ref, while in flight
        self._watcher: asyncio.Task[None] | None = None

    async def relay(self, remote_function: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Submit ``remote_function.remote(*args, **kwargs)`` from here and return its value."""
        return await self._own(lambda: remote_function.remote(*args, **kwargs))

    async def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Any:
        """Dispatch ``fn(*args, **kwargs)`` from the head with Ray ``options``; return its value.

        ``fn`` is a ``@ChiaFunction`` (dispatched with ``chia_remote``), a Ray
        remote function, or a plain function (exported on each call). The
        proxy owns the task, so :func:`chia_cancel` of the ``submit`` call's
        ref cancels it, and the value comes back through the head.
        """
        call_kwargs = dict(kwargs or {})
        layered = dict(options or {})
        if hasattr(fn, "chia_remote"):
            handle: Any = fn.options(**layered) if layered else fn  # type: ignore[attr-defined]
            return await self._own(lambda: handle.chia_remote(*args, **call_kwargs))
        if isinstance(fn, ray.remote_function.RemoteFunction):
            with_options: Callable[..., Any] = fn.options  # typed from Ray 2.60 on, untyped before
            remote: Any = with_options(**layered) if layered else fn
        elif callable(fn):
            remote = ray.remote(**layered)(fn) if layered else ray.remote(fn)
        else:
            raise TypeError(
                f"DispatchProxy.submit needs a ChiaFunction, a Ray remote function or a callable, got {fn!r}"
            )
        return await self._own(lambda: remote.remote(*args, **call_kwargs))

    async def _own(self, start: Callable[[], Any]) -> Any:
        """Start the inner task with ``start()``, await its value and keep it cancellable meanwhile."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(
                job_actors.run_when_job_ends(self._job_hex, self._on_job_end)
            )
        self._relayed += 1
        outer = ray.get_runtime_context().get_task_id() or ""
        inner = start()
        self._inner[outer] = inner
        try:
            return await inner
        except asyncio.CancelledError:
            ray.cancel(inner)
            raise
        except Exception:
            self._failed += 1
            raise
        finally:
            self._inner.pop(outer, None)

    async def cancel(self, relay_task_id: str, force: bool, grace: float) -> bool:
        """``chia_cancel`` the task relayed by the relay call ``relay_task_id``; False if unknown."""
        inner = self._inner.get(relay_task_id)
        if inner is None:
            return False
        await asyncio.to_thread(chia_cancel, inner, force, grace=grace)
        return True

    async def stats(self) -> dict[str, int]:
        """Counters: ``relayed`` (calls received), ``in_flight``, ``failed`` (inner task raised)."""
        return {"relayed": self._relayed, "in_flight": len(self._inner), "failed": self._failed}

    async def _on_job_end(self) -> None:
        job_actors.exit_current_actor()


_ProxyActor = ray.remote(DispatchProxy)


# --- reachability ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    node_id: str
    is_head: bool
    tunneled: bool
    labels: Mapping[str, str]
    resources: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class _ClusterView:
    """What this process knows of the cluster, refreshed every ``_VIEW_REFRESH`` seconds."""

    self_node: _Node | None
    nodes: Mapping[str, _Node]
    any_tunneled: bool
    taken_at: float


def _is_tunneled(node: Mapping[str, Any]) -> bool:
    label = str(node.get("Labels", {}).get(TUNNELED_LABEL, "")).lower()
    return label in _TRUE_VALUES or node.get("Resources", {}).get(TUNNELED_RESOURCE, 0) > 0


def env_tunneled() -> bool:
    """Whether this process runs on a node tunneled the reference's way (both ``TUNNEL_ENV`` set).

    Ray workers inherit their raylet's environment, so this reads the node's marking.
    """
    return all(os.environ.get(name) for name in TUNNEL_ENV)


@ray.remote(num_cpus=0)
def _probe_env() -> bool:
    return env_tunneled()


@ray.remote(num_cpus=0)
def _probe_nodes(node_ids: list[str]) -> dict[str, bool]:
    """Runs on the head (which reaches every node): each node's env marking, recorded in the GCS KV."""
    refs = {
        node_id: _probe_env.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()
        for node_id in node_ids
    }
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=_PROBE_TIMEOUT)
    answered = set(ready)
    marks: dict[str, bool] = {}
    for node_id, ref in refs.items():
        if ref in answered:
            marks[node_id] = bool(ray.get(ref))
            internal_kv._internal_kv_put(
                _ENV_KV_PREFIX + node_id, b"1" if marks[node_id] else b"0", namespace=_ENV_KV_NAMESPACE
            )
        else:
            ray.cancel(ref)
    return marks


def _env_marks(node_ids: list[str], self_id: str) -> dict[str, bool]:
    """Each node's env marking: this node's from the environment, others from the KV, probing the unknown.

    A node whose marking cannot be learnt (its probe did not answer) counts
    as tunneled: relaying through the head is always safe.
    """
    marks = {self_id: env_tunneled()}
    for key in internal_kv._internal_kv_list(_ENV_KV_PREFIX, namespace=_ENV_KV_NAMESPACE):
        node_id = key.decode()[len(_ENV_KV_PREFIX) :]
        if node_id in node_ids and node_id != self_id:
            marks[node_id] = internal_kv._internal_kv_get(key, namespace=_ENV_KV_NAMESPACE) == b"1"
    unknown = [node_id for node_id in node_ids if node_id not in marks]
    if unknown:
        head = NodeAffinitySchedulingStrategy(job_actors.head_node_id(), soft=False)
        try:
            probed: dict[str, bool] = ray.get(
                _probe_nodes.options(scheduling_strategy=head).remote(unknown), timeout=2 * _PROBE_TIMEOUT
            )
            marks.update(probed)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            logger.warning(
                "dispatch proxy: could not learn which nodes are tunneled (%s); treating them as tunneled", exc
            )
        marks.update((node_id, True) for node_id in unknown if node_id not in marks)
    return marks


def _take_view() -> _ClusterView:
    self_id = ray.get_runtime_context().get_node_id()
    alive = job_actors.alive_nodes()
    self_is_head = any(node["NodeID"] == self_id and job_actors.is_head(node) for node in alive)
    # The head never relays: it needs no node's environment.
    env = {} if self_is_head else _env_marks([node["NodeID"] for node in alive], self_id)
    nodes = {
        node["NodeID"]: _Node(
            node_id=node["NodeID"],
            is_head=job_actors.is_head(node),
            tunneled=_is_tunneled(node) or env.get(node["NodeID"], False),
            labels=dict(node.get("Labels", {})),
            resources=dict(node.get("Resources", {})),
        )
        for node in alive
    }
    return _ClusterView(nodes.get(self_id), nodes, any(n.tunneled for n in nodes.values()), time.monotonic())


def _reachable(source: _Node, target: _Node) -> bool:
    """Hub and spoke: the head reaches and is reached by every node; LAN nodes reach each other."""
    if source.node_id == target.node_id or source.is_head or target.is_head:
        return True
    return not source.tunneled and not target.tunneled


def _demand(opts: Mapping[str, Any]) -> dict[str, float]:
    demand = {name: float(amount) for name, amount in (opts.get("resources") or {}).items()}
    cpus = opts.get("num_cpus")
    demand["CPU"] = 1.0 if cpus is None else float(cpus)
    if opts.get("num_gpus"):
        demand["GPU"] = float(opts["num_gpus"])
    if opts.get("memory"):
        demand["memory"] = float(opts["memory"])
    return {name: amount for name, amount in demand.items() if amount > 0}


def _candidates(view: _ClusterView, opts: Mapping[str, Any]) -> list[_Node]:
    """Every node the task could land on, as far as this view tells."""
    strategy = opts.get("scheduling_strategy")
    if isinstance(strategy, NodeAffinitySchedulingStrategy) and not strategy.soft:
        node = view.nodes.get(strategy.node_id)
        return [] if node is None else [node]
    if isinstance(strategy, PlacementGroupSchedulingStrategy) and strategy.placement_group is not None:
        table = ray.util.placement_group_table(strategy.placement_group)
        bundles: Mapping[int, str] = table.get("bundles_to_node_id", {})
        index = strategy.placement_group_bundle_index
        node_ids = set(bundles.values()) if index is None or index < 0 else {bundles.get(index, "")}
        return [view.nodes[n] for n in node_ids if n in view.nodes]
    demand = _demand(opts)
    selector: Mapping[str, str] = opts.get("label_selector") or {}
    return [
        node
        for node in view.nodes.values()
        if all(node.resources.get(name, 0.0) >= amount for name, amount in demand.items())
        and all(_label_matches(node.labels.get(key), wanted) for key, wanted in selector.items())
    ]


def _label_matches(value: str | None, wanted: str) -> bool:
    """Plain equality selectors filter nodes; operators (``!x``, ``in(...)``) keep every node (conservative)."""
    if wanted.startswith("!") or "(" in wanted:
        return True
    return value == wanted


def _decide(view: _ClusterView, opts: Mapping[str, Any]) -> bool:
    source = view.self_node
    if source is None or source.is_head or not view.any_tunneled:
        return False
    candidates = _candidates(view, opts)
    # No candidate: it cannot be proven reachable (a node may join later), so relay.
    return not candidates or not all(_reachable(source, node) for node in candidates)


def _fingerprint(opts: Mapping[str, Any]) -> tuple[Any, ...]:
    strategy = opts.get("scheduling_strategy")
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        placement: Any = ("node", strategy.node_id, strategy.soft)
    elif isinstance(strategy, PlacementGroupSchedulingStrategy) and strategy.placement_group is not None:
        placement = ("pg", strategy.placement_group.id.hex(), strategy.placement_group_bundle_index)
    else:
        placement = None
    return (
        opts.get("num_cpus"),
        opts.get("num_gpus"),
        opts.get("memory"),
        tuple(sorted((opts.get("resources") or {}).items())),
        tuple(sorted((opts.get("label_selector") or {}).items())),
        placement,
    )


class _Route:
    """Per-process relay state, read by ``chia_remote`` on every dispatch.

    ``maybe`` turns False for good once this process is known never to relay
    (a driver, or a worker on the head), so dispatch pays one attribute read.
    """

    def __init__(self) -> None:
        self.maybe = True
        self._lock = threading.Lock()
        self._view: _ClusterView | None = None
        self._decisions: dict[tuple[Any, ...], bool] = {}
        self._proxy: tuple[str, Any] | None = None  # (GCS address, handle)
        self._warned_num_returns = False

    def view(self) -> _ClusterView | None:
        view = self._view
        if view is not None and time.monotonic() - view.taken_at < _VIEW_REFRESH:
            return view
        if ray._private.worker.global_worker.mode != ray.WORKER_MODE:
            self.maybe = False  # a driver (before or after ray.init): never relays
            return None
        with self._lock:
            view = _take_view()
            if view.self_node is not None and view.self_node.is_head:
                self.maybe = False
            self._view, self._decisions = view, {}
        return view

    def should_relay(self, opts: Mapping[str, Any]) -> bool:
        view = self.view()
        if view is None or not view.any_tunneled:
            return False
        key = _fingerprint(opts)
        decision = self._decisions.get(key)
        if decision is None:
            decision = _decide(view, opts)
            if len(self._decisions) >= _MAX_DECISIONS:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def relay(self, remote: Any, opts: Mapping[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Submit through the job's proxy when needed; None means "submit directly"."""
        if not self.should_relay(opts):
            return None
        num_returns = opts.get("num_returns", 1)
        if num_returns is not None and num_returns != 1:
            if not self._warned_num_returns:
                self._warned_num_returns = True
                logger.warning(
                    "dispatch proxy: num_returns=%r cannot be relayed; dispatching directly, "
                    "which may hang if the task lands on a node this worker cannot reach",
                    num_returns,
                )
            return None
        return self.proxy().relay.remote(remote, *args, **kwargs)

    def proxy(self) -> Any:
        """The job's DispatchProxy actor handle (created, pinned to the head, on first use)."""
        address = ray.get_runtime_context().gcs_address
        if self._proxy is None or self._proxy[0] != address:
            job_hex = job_actors.current_job_hex()
            handle = job_actors.get_or_create(
                _ProxyActor, job_actors.proxy_name(job_hex), job_hex, max_concurrency=_MAX_CONCURRENCY
            )
            self._proxy = (address, handle)
        return self._proxy[1]


route = _Route()


def get_dispatch_proxy() -> Any:
    """The handle of this job's :class:`DispatchProxy` actor, created on first use. Experimental.

    Detached, pinned to the head, named ``chia_dispatch_proxy_<job id>`` in
    namespace ``chia``; it removes itself when the job ends. Works from the
    driver and from workers::

        value = ray.get(get_dispatch_proxy().submit.remote(simulate, ("c8",), {"cores": 8}))
    """
    return route.proxy()


def should_proxy(opts: dict[str, Any] | None = None) -> bool:
    """True when this dispatch must be relayed through the head DispatchProxy. Experimental.

    Relays iff the task (scheduled with Ray options ``opts``) could land on
    a node the current worker cannot reach directly: a tunneled worker
    reaches only the head and itself, a LAN worker reaches every unmarked
    node and the head. That both enables LAN-origin dispatches to tunneled
    nodes and lets provably direct dispatches skip the relay. The head and
    drivers never relay; neither does anything on a cluster without nodes
    marked tunneled (see the module docs for the markers: a node label, a
    custom resource, or the reference's ``CHIA_TOOL_RELAY_HOST`` and
    ``CHIA_TOOL_ADVERTISE_HOST`` in the environment of the node's raylet).
    """
    return route.should_relay(opts or {})
