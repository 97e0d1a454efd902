"""The dispatch seam's types, registry and per-thread state.

Owns what :mod:`chia.base.dispatch_hooks` publishes (the call types and the
functions that register hooks and wrappers) and what ``ChiaFunction`` reads
on every dispatch: the registered hooks and wrappers, kept as immutable
tuples, the thread-local of the call being executed, and the resolve
callbacks waiting for ``get``. Users import the public names from
:mod:`chia.base.dispatch_hooks`.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ray import ObjectRef

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallInfo:
    """One execution of a ChiaFunction body, as seen by call wrappers. Stable.

    ``remote`` is True on a Ray worker, False for a local in-process call.
    ``context`` is what caller-side hooks put in :attr:`DispatchCall.context`
    (empty for local calls). ``replaced`` is True when a dispatch hook
    replaced the real function (e.g. a bypass provider runs instead).
    ``display_name`` is the call's ``_chia_display_name`` (``None`` when not
    given): how a profile or summary names the call instead of ``qualname``.
    """

    name: str
    qualname: str
    tag: str | None
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    context: Mapping[str, Any]
    remote: bool
    replaced: bool = False
    display_name: str | None = None


class CallWrapper(Protocol):
    """Runs around a function body.

    It must call ``proceed()`` exactly once and return its result (profiling
    and tracking never change values).
    """

    def __call__(self, call: CallInfo, proceed: Callable[[], Any], /) -> Any:
        """Run ``proceed()`` (the body) once, around whatever the wrapper adds."""
        ...


class DispatchHook(Protocol):
    """Sees a ``chia_remote`` call before Ray; returns a ref to replace it."""

    def __call__(self, call: DispatchCall, /) -> ObjectRef[Any] | None:
        """Return a ref that replaces the call, or None to let it proceed."""
        ...


REAL = "real"
""":attr:`DispatchCall.outcome` of a call whose function runs."""
REPLAYED = "replayed"
""":attr:`DispatchCall.outcome` of a call a hook replaced (:meth:`DispatchCall.submit` with a replacement)."""
CACHE_HIT = "cache_hit"
""":attr:`DispatchCall.outcome` a replacing hook sets when it serves the call from a cache."""

Submitter = Callable[["DispatchCall", Callable[..., Any] | None, tuple[Any, ...], dict[str, Any]], "ObjectRef[Any]"]


@dataclass(slots=True, eq=False)
class DispatchCall:
    """One ``chia_remote`` call, as seen by dispatch hooks. Stable.

    Attributes:
        function: the user's undecorated function.
        name: ``function.__name__`` (how bypass/cache YAML keys name it).
        qualname: ``"module.qualname"``, to tell apart same-named functions.
        options: the effective Ray options (decorator options with
            ``.options(...)`` overrides layered over them). Read-only.
        tag: the call's ``_chia_tag`` (``None`` when not given).
        args, kwargs: the user's arguments (``_chia_tag`` removed).
        context: free-form, picklable data shipped to the worker's call
            wrappers as :attr:`CallInfo.context`. By convention keys are
            prefixed with the owning distribution (``"bypass.provider"``).
        display_name: the call's ``_chia_display_name`` (``None`` when not
            given): how a profile or summary names the call instead of
            ``qualname``. Bypass and cache keys stay ``name`` and ``tag``.
        outcome: how the call is served, for observers (an :meth:`on_submitted`
            callback reads it): :data:`REAL` (the function runs),
            :data:`REPLAYED` (set by :meth:`submit` given a replacement) or
            :data:`CACHE_HIT` (set by a hook that replays from a cache,
            before it submits).
    """

    function: Callable[..., Any]
    name: str
    qualname: str
    options: Mapping[str, Any]
    tag: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)
    display_name: str | None = None
    outcome: str = REAL
    _around: Any = field(default=None, repr=False)
    _submitter: Submitter | None = field(default=None, repr=False)
    _resolve_callbacks: list[Callable[[Any], object]] = field(default_factory=list, repr=False)
    _submitted_callbacks: list[Callable[[Any], object]] = field(default_factory=list, repr=False)

    def submit(self, replacement: Callable[..., Any] | None = None, /, *args: Any, **kwargs: Any) -> ObjectRef[Any]:
        """Submit a Ray task scheduled with exactly this call's options.

        With no ``replacement`` the real function runs with the call's own
        arguments (``args``/``kwargs`` given here are then ignored). With a
        ``replacement`` callable, it runs on the worker instead, called with
        ``*args, **kwargs``; call wrappers see :attr:`CallInfo.replaced`
        ``True`` and this call's name and tag. The replacement must pickle
        (a module-level function is exported once per session).
        """
        if self._submitter is None:
            raise RuntimeError(f"DispatchCall for {self.qualname!r} is not bound to a dispatcher")
        if replacement is None:
            return self._submitter(self, None, self.args, self.kwargs)
        if self.outcome == REAL:
            self.outcome = REPLAYED
        return self._submitter(self, replacement, args, kwargs)

    def on_submitted(self, callback: Callable[[ObjectRef[Any]], object]) -> None:
        """Run ``callback(ref)`` right after Ray accepted the task :meth:`submit` made.

        Lets an observer correlate the call with what runs on the worker
        (``ref.task_id()`` equals the worker's
        ``ray.get_runtime_context().get_task_id()``) without shipping any
        per-call context. Exceptions propagate to the ``chia_remote`` caller.
        """
        self._submitted_callbacks.append(callback)

    def on_resolve(self, callback: Callable[[Any], object]) -> None:
        """Run ``callback(value)`` once, when ``get()`` resolves this call's ref.

        Callbacks observe the value; their return value is ignored and an
        exception they raise is logged, never propagated to the caller.
        """
        self._resolve_callbacks.append(callback)


# --- registry (read on the hot path: kept as immutable tuples) ---------------

_lock = threading.Lock()
_hook_sequence = itertools.count()
_hooks: list[tuple[int, int, DispatchHook]] = []
active_hooks: tuple[DispatchHook, ...] = ()
active_wrappers: tuple[CallWrapper, ...] = ()


class _TaskLocal(threading.local):
    """What the current thread is executing (set by the worker trampoline)."""

    call: CallInfo | None = None
    wrappers: tuple[CallWrapper, ...] = ()


task_local = _TaskLocal()


def add_dispatch_hook(hook: DispatchHook, *, priority: int = 100) -> Callable[[], None]:
    """Register a caller-side dispatch hook in this process. Stable.

    Hooks run in ascending ``priority`` (ties: registration order). The first
    hook that returns a ref ends the chain. Returns a function that removes
    the hook (idempotent).
    """
    global active_hooks
    entry = (priority, next(_hook_sequence), hook)
    with _lock:
        _hooks.append(entry)
        _hooks.sort(key=lambda item: (item[0], item[1]))
        active_hooks = tuple(item[2] for item in _hooks)

    def remove() -> None:
        global active_hooks
        with _lock:
            if entry in _hooks:
                _hooks.remove(entry)
                active_hooks = tuple(item[2] for item in _hooks)

    return remove


def add_call_wrapper(wrapper: CallWrapper) -> Callable[[], None]:
    """Register a wrapper around every ChiaFunction body. Stable.

    Applies to local calls in this process and travels with every remote
    dispatch made from this process (and, transitively, nested dispatches).
    The wrapper must pickle by reference. Returns an idempotent remover.
    """
    global active_wrappers
    with _lock:
        active_wrappers = (*active_wrappers, wrapper)

    def remove() -> None:
        global active_wrappers
        with _lock:
            active_wrappers = tuple(w for w in active_wrappers if w is not wrapper)

    return remove


def current_call() -> CallInfo | None:
    """The ChiaFunction call the current thread executes, if any. Stable.

    Set while a call wrapper chain runs (remote calls that carry wrappers or
    context, and local calls while wrappers are registered).
    """
    return task_local.call


# --- the ChiaFunctions this process has defined (read only by configuration checks) ---


@dataclass(frozen=True, slots=True)
class KnownFunction:
    """A ``@ChiaFunction`` defined (or imported) in this process. Stable.

    ``name`` is its ``__name__`` and ``qualname`` its ``"module.qualname"``:
    the two spellings a bypass/cache YAML key may use. ``signature`` is the
    undecorated function's (``None`` for callables without one).
    """

    name: str
    qualname: str
    signature: inspect.Signature | None


# Keyed by qualname: a redefinition replaces (and moves to the end) the earlier entry.
_known: dict[str, KnownFunction] = {}


def note_function(name: str, qualname: str, signature: inspect.Signature | None) -> None:
    """Record a ChiaFunction at its decoration (never on the dispatch path)."""
    with _lock:
        _known.pop(qualname, None)
        _known[qualname] = KnownFunction(name, qualname, signature)


def known_functions() -> tuple[KnownFunction, ...]:
    """Every ``@ChiaFunction`` defined or imported in this process so far, oldest first. Stable.

    A function defined again under the same ``module.qualname`` (a reloaded
    module, a test redefining it) appears once, as its latest definition.
    Configuration checks use it (chia-bypass-cache warns about YAML keys
    that name none of them)::

        names = {f.name for f in known_functions()} | {f.qualname for f in known_functions()}
    """
    with _lock:
        return tuple(_known.values())


# --- resolve callbacks: ref id -> callbacks, bounded --------------------------

_MAX_PENDING_RESOLVE = 1_000_000
_pending_resolve: OrderedDict[bytes, list[Callable[[Any], object]]] = OrderedDict()
_overflow_warned = False


def attach_resolve_callbacks(ref_id: bytes, callbacks: list[Callable[[Any], object]]) -> None:
    """Keep ``callbacks`` for the ref ``ref_id`` until ``get`` resolves it (the oldest dropped beyond the bound)."""
    global _overflow_warned
    with _lock:
        _pending_resolve[ref_id] = callbacks
        if len(_pending_resolve) > _MAX_PENDING_RESOLVE:
            _pending_resolve.popitem(last=False)
            if not _overflow_warned:
                _overflow_warned = True
                logger.warning(
                    "more than %d refs with resolve callbacks were never passed to get(); "
                    "dropping the oldest callbacks (e.g. cache write-through of never-fetched results)",
                    _MAX_PENDING_RESOLVE,
                )


def take_resolve_callbacks(ref_id: bytes) -> list[Callable[[Any], object]] | None:
    """Remove and return the callbacks kept for ``ref_id`` (None when there are none)."""
    with _lock:
        return _pending_resolve.pop(ref_id, None)


def has_pending_resolve() -> bool:
    """Whether any ref still has resolve callbacks: ``get`` checks this before looking refs up."""
    return bool(_pending_resolve)
