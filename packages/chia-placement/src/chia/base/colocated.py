"""chia.base.colocated — placement-group plumbing for path-based node classes.

Owns :class:`PinnedChiaFn` (a ``@ChiaFunction`` whose ``chia_remote`` is
pre-pinned by scheduling options) and :class:`ColocatedNode` (a base class that
reserves or adopts a placement group and re-binds its ``@ChiaFunction``
members per instance so they all land on one worker). Any subsystem whose
artifacts live on a worker's filesystem (a simulator checkout, a build
directory) uses it to run every later step next to the first one.
"""

from __future__ import annotations

import functools
import logging
import math
import types
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, Self, TypeVar

import ray
from ray.util.placement_group import PlacementGroup, remove_placement_group
from ray.util.placement_group import placement_group as reserve_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from chia.base._placement.fit import (
    bundle_shape,
    format_resources,
    missing_from_bundle,
    task_demand,
)
from chia.base.ChiaFunction import ChiaOptions, ChiaWrapped, get

if TYPE_CHECKING:
    from ray import ObjectRef

__all__ = ["ColocatedNode", "PinnedChiaFn"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_TAG_OPTION = "_chia_tag"
# Ray's bundle index meaning "any bundle of the placement group".
_ANY_BUNDLE = -1
_PG_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
# With no pg_ready_timeout_s the wait is unbounded; it is cut into slices so a
# stuck reservation is reported instead of hanging silently.
_READY_REPORT_EVERY_S = 60.0


class _NodePin:
    """Shared by a node and its members: the bundles they may use and whether the node stopped pinning.

    ``bundles`` holds the one pinned bundle, or every bundle of the placement
    group for ``bundle_index=-1`` (Ray then picks any bundle with room).
    """

    __slots__ = ("bundle_index", "bundles", "closed", "owner")

    def __init__(self, owner: str, bundle_index: int) -> None:
        self.owner = owner
        self.bundles: list[dict[str, float]] | None = None
        self.bundle_index = bundle_index
        self.closed = False

    def misfit(self, member: str, options: Mapping[str, Any]) -> str | None:
        """Why ``member`` submitted with ``options`` cannot run in any allowed bundle, or None if it can."""
        if self.bundles is None:
            return None
        demand = task_demand(options)
        shortfalls = [missing_from_bundle(demand, bundle) for bundle in self.bundles]
        if not all(shortfalls):
            return None
        if len(self.bundles) == 1:
            where = f"bundle {self.bundle_index} {format_resources(self.bundles[0])}"
            short = f" (short of {format_resources(shortfalls[0])})"
        else:
            where = "any bundle " + ", ".join(format_resources(bundle) for bundle in self.bundles)
            short = ""
        return f"{self.owner}.{member} demands {format_resources(demand)}, which does not fit {where} of its node's placement group{short}"

    def check(self, member: str, misfit: str | None) -> None:
        if self.closed:
            raise RuntimeError(
                f"{self.owner}.{member}: the node was closed and no longer pins its members; "
                f"create a new {self.owner} or dispatch the class attribute {self.owner}.{member} unpinned"
            )
        if misfit is not None:
            raise ValueError(
                f"{misfit}; reserve a larger bundle (reserve_bundle=...) or dispatch the class attribute "
                f"{self.owner}.{member} unpinned"
            )


class _PinnedCall(Generic[P, R]):
    """A dispatch handle with the pinning (and any later overrides) applied: what ``.options()`` returns."""

    __slots__ = ("_fn", "_handle", "_member", "_misfit", "_options", "_overrides", "_pin")

    def __init__(self, fn: ChiaWrapped[P, R], overrides: Mapping[str, Any], pin: _NodePin | None, member: str) -> None:
        self._fn = fn
        self._overrides = dict(overrides)
        # All layers go to the function in one options() call rather than chaining
        # options() on handles, which chia-dispatch 0.1 handles do not support.
        self._handle: ChiaWrapped[P, R] | ChiaOptions[P, R] = fn.options(**overrides) if overrides else fn
        effective = {**fn.chia_options, **{key: value for key, value in overrides.items() if key != _TAG_OPTION}}
        self._options = types.MappingProxyType(effective)
        self._pin = pin
        self._member = member
        self._misfit = pin.misfit(member, effective) if pin is not None else None

    def chia_remote(self, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
        if self._pin is not None:
            self._pin.check(self._member, self._misfit)
        return self._handle.chia_remote(*args, **kwargs)

    remote = chia_remote

    def chia_remote_blocking(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return get(self.chia_remote(*args, **kwargs))

    def options(self, **overrides: Any) -> _PinnedCall[P, R]:
        return _PinnedCall(self._fn, {**self._overrides, **overrides}, self._pin, self._member)


class PinnedChiaFn(Generic[P, R]):
    """A ``@ChiaFunction`` whose ``chia_remote`` is pre-pinned by scheduling options. Stable.

    ``scheduling_opts`` are Ray options layered over the decorator's, usually
    just the ones that decide *where* the function runs
    (``scheduling_strategy=PlacementGroupSchedulingStrategy(...)``); any other
    Ray option is accepted as well (``{"scheduling_strategy": s, "num_cpus":
    0.5}``, as in chialoops) and applies to every pinned dispatch, while the
    decorator's own options stay as they were for unpinned calls.
    ``options(**overrides)`` layers further Ray options over the pinning. With no scheduling opts it delegates to the raw function, so the
    caller's own placement applies. Calling it runs the function locally,
    exactly as calling the raw function does::

        pinned = PinnedChiaFn(build, {"scheduling_strategy": strategy})
        ref = pinned.chia_remote("/work/sim")         # lands on the bundle
        ref = pinned.options(max_retries=0).chia_remote("/work/sim")
        pinned("/work/sim")                           # local call
    """

    __slots__ = ("_call", "_fn")

    def __init__(self, fn: ChiaWrapped[P, R], scheduling_opts: Mapping[str, Any]) -> None:
        if not _is_chia_function(fn):
            raise TypeError(
                f"PinnedChiaFn needs a @ChiaFunction()-decorated function, got {fn!r} ({type(fn).__name__})"
            )
        if not isinstance(scheduling_opts, Mapping):
            raise TypeError(f"PinnedChiaFn scheduling_opts must be a mapping of Ray options, got {scheduling_opts!r}")
        opts = dict(scheduling_opts)
        if _TAG_OPTION in opts:
            raise ValueError(f"PinnedChiaFn scheduling_opts must not contain {_TAG_OPTION!r}; tag each call instead")
        self._fn = fn
        self._call: _PinnedCall[P, R] = _PinnedCall(fn, opts, None, "")

    def _pin_to(self, pin: _NodePin, member: str) -> None:
        """Make dispatches check the node's bundle and open state (used by :class:`ColocatedNode`)."""
        self._call = _PinnedCall(self._fn, self._call._overrides, pin, member)

    @property
    def chia_options(self) -> Mapping[str, Any]:
        """The function's Ray options with the pinning applied (read-only)."""
        return self._call._options

    @property
    def __wrapped__(self) -> Callable[P, R]:
        return self._fn.__wrapped__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function locally, in this process (no pinning applies)."""
        return self._fn(*args, **kwargs)

    def chia_remote(self, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
        """Dispatch with the pinning applied; returns the ``ObjectRef`` of the result."""
        return self._call.chia_remote(*args, **kwargs)

    def chia_remote_blocking(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Dispatch with the pinning applied and wait for the result."""
        return get(self._call.chia_remote(*args, **kwargs))

    def options(self, **overrides: Any) -> ChiaOptions[P, R]:
        """A handle with ``overrides`` layered over the pinning (an override of ``scheduling_strategy`` unpins)."""
        return self._call.options(**overrides)

    def __repr__(self) -> str:
        return f"PinnedChiaFn({self._fn!r}, options={dict(self._call._options)!r})"


def _is_chia_function(obj: object) -> bool:
    return all(hasattr(obj, name) for name in ("chia_remote", "options", "chia_options"))


class ColocatedNode:
    """Base for node classes whose member ChiaFunctions must share one worker. Stable.

    Subclasses declare:

    * ``_MEMBER_FNS``: names of class-level ``@ChiaFunction`` members that
      ``__init__`` re-binds into per-instance :class:`PinnedChiaFn` wrappers,
      so ``node.<fn>.chia_remote(...)`` lands on this node's bundle while
      ``Subclass.<fn>.chia_remote(...)`` (the class attribute) stays unpinned.
      Members keep their calling convention: a member written as a method
      takes the instance explicitly in ``chia_remote`` (as for any
      ``@ChiaFunction`` method), a ``staticmethod`` member does not.
    * ``_DEFAULT_BUNDLE``: resource shape of a self-reserved bundle.

    Pinning never alters a member's resource demands: the placement group only
    changes where they are satisfied from (the bundle's reservation instead of
    the node's free pool). A bundle that cannot satisfy every member is
    therefore allowed: construction logs a warning naming each member that
    does not fit (from its own ``@ChiaFunction`` options), its demand and the
    bundle, and dispatching such a member through the node raises
    ``ValueError`` before Ray sees the call.

    Placement is decided once at construction:

    * ``placement_group`` given: pin members to ``bundle_index`` of it (-1:
      any of its bundles). The node never removes a placement group it did
      not create, and closing it changes nothing.
    * none and ``require_colocated=True``: reserve a 1-bundle placement group
      of ``reserve_bundle`` (default ``_DEFAULT_BUNDLE``), owned and released
      by :meth:`close`, also when waiting for it times out or construction
      (including a subclass ``__init__``) fails.
    * none and ``require_colocated=False``: no pinning; the caller schedules
      each ``.chia_remote`` / ``.options(...)`` call itself.

    Usable as a context manager, so a self-reserved placement group is
    released on exit::

        class Gem5Node(ColocatedNode):
            _MEMBER_FNS = ("checkout", "build", "simulate")
            _DEFAULT_BUNDLE = {"CPU": 4}

            checkout = staticmethod(checkout_fn)   # @ChiaFunction(num_cpus=1)
            build = staticmethod(build_fn)         # @ChiaFunction(num_cpus=4)
            simulate = staticmethod(simulate_fn)   # @ChiaFunction(num_cpus=1)

        with Gem5Node() as node:
            path = node.checkout.chia_remote_blocking(rev)
            get(node.build.chia_remote(path))      # same worker as the checkout
            tool = BashTool("sim_shell", task_options=node.task_options)

    Args:
        placement_group: an existing Ray ``PlacementGroup`` to schedule onto.
            If given, ``require_colocated`` is moot (placement is already
            fixed) and this node will not remove it on close.
        require_colocated: when no placement group is given, reserve one so
            all members co-locate. When False, leave placement to the caller.
        bundle_index: which bundle of the (given or reserved) placement group
            to pin to; a reserved one has a single bundle, index 0. ``-1``
            (as in Ray) lets each dispatch use any bundle with room.
        reserve_bundle: resource shape of a self-reserved bundle (default
            ``_DEFAULT_BUNDLE``). A bundle too small for some members is
            allowed: those members just cannot dispatch through this node.
        pg_strategy: placement strategy for a self-reserved placement group
            (``PACK``, ``SPREAD``, ``STRICT_PACK``, ``STRICT_SPREAD``).
        wait_for_pg: block until a self-reserved placement group is ready so
            the node is usable immediately.
        pg_ready_timeout_s: optional bound on that wait; on expiry the
            reservation is released and ``TimeoutError`` raised.
    """

    _MEMBER_FNS: ClassVar[tuple[str, ...]] = ()
    _DEFAULT_BUNDLE: ClassVar[Mapping[str, float]] = {"CPU": 1}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_chia_releases_on_failure", False):
            return

        # A subclass __init__ that fails after ColocatedNode.__init__ reserved a
        # placement group leaves the caller no node to close: close it here.
        @functools.wraps(init)
        def __init__(self: ColocatedNode, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except BaseException:
                self._close_after_failure()
                raise

        # setattr: mypy rejects assigning a method or an attribute functools.wraps does not declare.
        setattr(__init__, "_chia_releases_on_failure", True)  # noqa: B010 -- see above
        setattr(cls, "__init__", __init__)  # noqa: B010 -- see above

    def __init__(
        self,
        placement_group: PlacementGroup | None = None,
        require_colocated: bool = True,
        *,
        bundle_index: int = 0,
        reserve_bundle: Mapping[str, float] | None = None,
        pg_strategy: str = "STRICT_PACK",
        wait_for_pg: bool = True,
        pg_ready_timeout_s: float | None = None,
    ) -> None:
        owner = type(self).__qualname__
        members = self._resolve_members()
        _check_arguments(
            owner, placement_group, require_colocated, bundle_index, reserve_bundle, pg_strategy, pg_ready_timeout_s
        )
        self._pin = _NodePin(owner, bundle_index)
        self._placement_group: PlacementGroup | None = None
        self._owns_placement_group = False
        try:
            if placement_group is not None:
                self._placement_group = placement_group
                bundles: list[dict[str, float]] | None = _given_bundles(owner, placement_group, bundle_index)
            elif require_colocated:
                bundle = bundle_shape(
                    self._DEFAULT_BUNDLE if reserve_bundle is None else reserve_bundle,
                    where=f"{owner} reserve_bundle" if reserve_bundle is not None else f"{owner}._DEFAULT_BUNDLE",
                )
                self._placement_group = self._reserve(bundle, pg_strategy)
                if wait_for_pg:
                    self._wait_until_ready(bundle, pg_strategy, pg_ready_timeout_s)
                bundles = [bundle]
            else:
                bundles = None
            self._pin.bundles = bundles
            self._bind_members(members)
        except BaseException:
            self._close_after_failure()
            raise

    def _resolve_members(self) -> dict[str, Any]:
        owner = type(self).__qualname__
        names = type(self)._MEMBER_FNS
        if isinstance(names, str) or not all(isinstance(name, str) for name in names):
            raise TypeError(
                f"{owner}._MEMBER_FNS must be a tuple of member names, e.g. ('build', 'run'); got {names!r}"
            )
        members: dict[str, Any] = {}
        for name in names:
            if not hasattr(type(self), name):
                raise AttributeError(f"{owner}._MEMBER_FNS names {name!r}, but {owner} has no attribute {name!r}")
            member = getattr(self, name)
            if not _is_chia_function(member):
                raise TypeError(
                    f"{owner}._MEMBER_FNS names {name!r}, but {owner}.{name} is not a @ChiaFunction member "
                    f"(got {type(member).__name__})"
                )
            members[name] = member
        return members

    def _reserve(self, bundle: dict[str, float], strategy: str) -> PlacementGroup:
        if not ray.is_initialized():
            raise RuntimeError(
                f"{self._pin.owner} reserves a placement group and needs a connected Ray: call ray.init() first"
            )
        pg: PlacementGroup = reserve_placement_group([bundle], strategy=strategy)
        self._owns_placement_group = True
        logger.debug("%s reserved placement group %s for bundle %s", self._pin.owner, pg.id.hex(), bundle)
        return pg

    def _wait_until_ready(self, bundle: dict[str, float], strategy: str, timeout_s: float | None) -> None:
        assert self._placement_group is not None
        ready = self._placement_group.ready()
        if timeout_s is not None:
            done, _ = ray.wait([ready], timeout=timeout_s)
            if not done:
                raise TimeoutError(
                    f"{self._pin.owner}: the placement group for bundle {format_resources(bundle)} ({strategy}) "
                    f"was not ready within pg_ready_timeout_s={timeout_s} s (no node has those resources free); "
                    "the reservation was released"
                )
            return
        waited = 0.0
        while not ray.wait([ready], timeout=_READY_REPORT_EVERY_S)[0]:
            waited += _READY_REPORT_EVERY_S
            logger.warning(
                "%s: still waiting after %.0f s for a node with %s free; pass pg_ready_timeout_s to bound the wait",
                self._pin.owner,
                waited,
                format_resources(bundle),
            )

    def _bind_members(self, members: Mapping[str, Any]) -> None:
        scheduling = self.task_options
        for name, member in members.items():
            misfit = self._pin.misfit(name, member.chia_options)
            if misfit is not None:
                logger.warning("%s; dispatching it through this node will raise ValueError", misfit)
            pinned: PinnedChiaFn[..., Any] = PinnedChiaFn(member, scheduling)
            pinned._pin_to(self._pin, name)
            setattr(self, name, pinned)

    @property
    def placement_group(self) -> PlacementGroup | None:
        """The placement group members are pinned to (None when the caller handles placement or after close)."""
        return self._placement_group

    @property
    def owns_placement_group(self) -> bool:
        """True iff this node reserved its placement group and will release it on :meth:`close`."""
        return self._owns_placement_group

    @property
    def task_options(self) -> dict[str, Any]:
        """Scheduling opts to co-locate an actor (e.g. a ``ChiaTool``) with this node's bundle.

        Empty when the node has no placement group (``require_colocated=False``):
        there is no shared placement to inherit, so an actor given these opts
        would not be pinned. Raises ``RuntimeError`` after :meth:`close`.
        """
        if self._pin.closed:
            raise RuntimeError(f"{self._pin.owner} was closed: it no longer has a placement to share")
        if self._placement_group is None:
            return {}
        strategy = PlacementGroupSchedulingStrategy(
            self._placement_group, placement_group_bundle_index=self._pin.bundle_index
        )
        return {"scheduling_strategy": strategy}

    def close(self) -> None:
        """Release a self-reserved placement group and stop pinning the members. Idempotent.

        Only a node that reserved its placement group has anything to
        release: closing a node given a placement group (or one that never
        pins) leaves it as it was, so ``task_options`` and dispatch through
        its members keep working, as they do in chialoops. After a
        self-reserved group is released, dispatching a member through the
        node and reading ``task_options`` raise ``RuntimeError`` (local calls
        still work).
        """
        pin: _NodePin | None = self.__dict__.get("_pin")
        if pin is None or pin.closed or not self._owns_placement_group:
            return
        pin.closed = True
        pg = self._placement_group
        self._placement_group, self._owns_placement_group = None, False
        if pg is None:
            return
        if not ray.is_initialized():
            # A non-detached placement group fate-shares with the driver that made it.
            logger.debug("%s: Ray is already down; placement group %s went with it", pin.owner, pg.id.hex())
            return
        remove_placement_group(pg)
        logger.debug("%s released placement group %s", pin.owner, pg.id.hex())

    def _close_after_failure(self) -> None:
        try:
            self.close()
        except Exception:
            logger.exception(
                "%s: could not release its placement group after a failed construction", type(self).__qualname__
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # A copy (e.g. the node pickled into a task) pins like the original but
        # never releases the original's placement group.
        state = dict(self.__dict__)
        state["_owns_placement_group"] = False
        return state

    def __repr__(self) -> str:
        pg = self._placement_group
        where = "unpinned" if pg is None else f"placement group {pg.id.hex()} bundle {self._pin.bundle_index}"
        state = "closed" if self._pin.closed else ("owned" if self._owns_placement_group else "given")
        return f"<{self._pin.owner} {where} ({state})>"


def _check_arguments(
    owner: str,
    placement_group: object,
    require_colocated: object,
    bundle_index: object,
    reserve_bundle: object,
    pg_strategy: object,
    pg_ready_timeout_s: object,
) -> None:
    if placement_group is not None and not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"{owner} placement_group must be a ray PlacementGroup or None, got {placement_group!r}")
    if isinstance(bundle_index, bool) or not isinstance(bundle_index, int) or bundle_index < _ANY_BUNDLE:
        raise ValueError(f"{owner} bundle_index must be an int >= 0, or -1 for any bundle; got {bundle_index!r}")
    if reserve_bundle is not None and (placement_group is not None or not require_colocated):
        raise ValueError(
            f"{owner} reserve_bundle={reserve_bundle!r} only applies when the node reserves its own placement group "
            "(no placement_group given and require_colocated=True)"
        )
    if placement_group is None and require_colocated and bundle_index not in (0, _ANY_BUNDLE):
        raise ValueError(
            f"{owner} reserves a 1-bundle placement group, so bundle_index must be 0 (or -1), got {bundle_index}"
        )
    if pg_strategy not in _PG_STRATEGIES:
        raise ValueError(f"{owner} pg_strategy must be one of {', '.join(_PG_STRATEGIES)}; got {pg_strategy!r}")
    if pg_ready_timeout_s is not None and (
        isinstance(pg_ready_timeout_s, bool)
        or not isinstance(pg_ready_timeout_s, (int, float))
        or not math.isfinite(pg_ready_timeout_s)
        or pg_ready_timeout_s <= 0
    ):
        raise ValueError(
            f"{owner} pg_ready_timeout_s must be a number of seconds > 0 or None, got {pg_ready_timeout_s!r}"
        )


def _given_bundles(owner: str, placement_group: PlacementGroup, bundle_index: int) -> list[dict[str, float]]:
    """The bundles members may use: the one at ``bundle_index``, or all of them for -1."""
    specs = placement_group.bundle_specs or []
    if bundle_index >= len(specs):
        raise ValueError(
            f"{owner} bundle_index={bundle_index} is out of range: placement group {placement_group.id.hex()} "
            f"has {len(specs)} bundle(s) (valid: 0..{len(specs) - 1}, or -1 for any bundle)"
        )
    chosen = specs if bundle_index == _ANY_BUNDLE else [specs[bundle_index]]
    return [{name: float(amount) for name, amount in spec.items()} for spec in chosen]
