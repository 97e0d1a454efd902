"""Head-relayed task dispatch for workers on reverse-tunneled nodes.

Ray's ownership model makes the submitting worker the owner of a task: the
owner negotiates worker leases directly with the target raylet and serves the
result object's data. On a reverse-tunneled worker that breaks for any task
whose demands place it on a LAN node: chia's tunnels are hub-and-spoke
(tunneled worker <-> head only), LAN raylet/worker ports are random and may be
firewalled from the tunneled machine, so the owner's lease RPC gets "no route
to host" and the task sits in PENDING_NODE_ASSIGNMENT forever even when
capacity is free.

The fix: when ``chia_remote`` is called on a worker that cannot directly
reach the task's target node — a tunneled worker dispatching to a LAN node,
OR a LAN worker dispatching to a tunneled node — the dispatch is relayed
through a :class:`DispatchProxy` actor pinned to the head node. The proxy,
not the originating worker, owns the inner task, so every RPC leg rides a
link that already exists; the head is the only node with a path to every
spoke. :func:`should_proxy` decides per dispatch and fail-safe: it relays
unless it can prove every node the task could land on is directly reachable.

How nodes are marked: a node is *tunneled* when it carries the Ray node label
``chia/tunneled=true`` (``ray start --labels='{"chia/tunneled": "true"}'``),
a positive custom resource ``chia_tunneled`` (``ray start
--resources='{"chia_tunneled": 1}'``), or, the reference's way, when its
raylet runs with both ``CHIA_TOOL_RELAY_HOST`` and ``CHIA_TOOL_ADVERTISE_HOST``
set in its environment (``TUNNEL_ENV``). A worker reads its own node's
environment; the other nodes' are probed once per node from the head (which
reaches every node) and kept in the GCS key-value store, so a later process
reads them in one call. A node whose probe does not answer counts as tunneled. Unmarked nodes are LAN nodes: they reach each other and the head
directly, so on a cluster without marked nodes nothing is ever relayed and
the check costs nothing measurable. Drivers and the head never relay.

Costs and limits:

* The head relays the data: args and results each cross the network twice.
* ``num_returns > 1`` is not supported: it falls back to direct dispatch
  with one warning per process (which may hang if the task lands on an
  unreachable node).
* ObjectRefs passed as top-level arguments are resolved by the proxy (their
  values travel through the head). Refs nested inside containers reach the
  inner task as refs owned by the originating worker; if that worker is
  tunneled, the LAN executor cannot reach the owner and the task hangs. Pass
  values, not nested refs, into dispatches from tunneled workers.
* The proxy inherits the creating job's runtime_env, so it is per job
  (``chia_dispatch_proxy_<job id>`` in namespace ``chia``), detached, idles
  at ``num_cpus=0`` and removes itself when its job ends.
"""

from __future__ import annotations

# Defined in chia-dispatch's private core, where ChiaFunction reads the
# per-process routing state on every dispatch.
from chia.base._dispatch import proxy
from chia.base._dispatch.proxy import DispatchProxy, get_dispatch_proxy, should_proxy

__all__ = ["TUNNELED_LABEL", "TUNNELED_RESOURCE", "TUNNEL_ENV", "DispatchProxy", "get_dispatch_proxy", "should_proxy"]

TUNNELED_LABEL = proxy.TUNNELED_LABEL
"""Node label marking a reverse-tunneled node (value ``true``, ``1`` or ``yes``)."""

TUNNELED_RESOURCE = proxy.TUNNELED_RESOURCE
"""Custom resource marking a reverse-tunneled node (any positive amount)."""

TUNNEL_ENV = proxy.TUNNEL_ENV
"""Environment variables that, both set in a node's raylet environment, mark it tunneled (the reference's way)."""
