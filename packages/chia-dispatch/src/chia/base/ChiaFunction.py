"""``@ChiaFunction``: one decorator, a local call and a typed Ray dispatch.

Owns the dispatch surface of chia: the decorator, ``ChiaCallRemote``,
``get``, ``ObjectRefCallback`` and the actor wrapper ``chia_actor``. Other
distributions add behaviour through :mod:`chia.base.dispatch_hooks`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

import ray
import ray.cloudpickle

from chia.base._dispatch import pid_tracking, seam
from chia.base._dispatch.proxy import route as proxy_route
from chia.base._dispatch.refs import ObjectRefCallback
from chia.base._dispatch.registry import chia_cancel
from chia.base._dispatch.seam import CallInfo, CallWrapper, DispatchCall

if TYPE_CHECKING:
    from ray import ObjectRef
    from ray.experimental.compiled_dag_ref import CompiledDAGRef

__all__ = [
    "ChiaActorHandle",
    "ChiaCallRemote",
    "ChiaFunction",
    "ChiaOptions",
    "ChiaWrapped",
    "ObjectRefCallback",
    "chia_actor",
    "chia_cancel",
    "get",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

TAG_KEYWORD = "_chia_tag"
_CTX_KEYWORD = "__chia_ctx__"


class ChiaOptions(Protocol[P, R]):
    """A ChiaFunction with Ray options layered over its decorator options. Stable.

    Returned by :meth:`ChiaWrapped.options`. ``remote`` is an alias of
    ``chia_remote``. ``options(_chia_tag="t")`` is the typed way to tag a
    call (``_chia_tag`` cannot appear in a ``ParamSpec`` signature).
    """

    def chia_remote(self, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
        """Dispatch the call to Ray; returns the ``ObjectRef`` of the result."""
        ...

    def remote(self, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
        """Alias of :meth:`chia_remote`."""
        ...

    def chia_remote_blocking(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Dispatch the call and wait for its result."""
        ...

    def options(self, **overrides: Any) -> ChiaOptions[P, R]:
        """A copy with these Ray options layered over the current ones."""
        ...


class ChiaWrapped(Protocol[P, R]):
    """Protocol describing the object returned by ``@ChiaFunction()``. Stable.

    Includes ``__get__`` overloads so that mypy treats instances of this
    protocol as descriptors. When accessed on a class (``obj is None``) the
    full ``ParamSpec`` is preserved. When accessed on an instance (bound-method
    position) the type falls back to ``ChiaWrapped[..., R]`` because Python's
    type system cannot express "P minus the first argument": the local call
    binds ``self``, while ``chia_remote`` takes it explicitly
    (``tool.do_work.chia_remote(tool, x=5)``).
    """

    __name__: str
    __qualname__: str
    __wrapped__: Callable[P, R]

    @property
    def chia_options(self) -> Mapping[str, Any]:
        """The decorator's Ray options (read-only)."""
        ...

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function locally, in this process."""
        ...

    def chia_remote(self, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
        """Dispatch the call to Ray; returns the ``ObjectRef`` of the result."""
        ...

    def chia_remote_blocking(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Dispatch the call and wait for its result."""
        ...

    def options(self, **overrides: Any) -> ChiaOptions[P, R]:
        """A copy with these Ray options layered over the current ones."""
        ...

    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None, /) -> ChiaWrapped[P, R]: ...

    @overload
    def __get__(self, obj: object, objtype: type[Any] | None = None, /) -> ChiaWrapped[..., R]: ...


# --- worker side ---------------------------------------------------------------


_NO_CONTEXT: Mapping[str, Any] = types.MappingProxyType({})


def _run_wrapped(
    fn: Callable[..., Any],
    info: CallInfo,
    wrappers: tuple[CallWrapper, ...],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    local = seam.task_local
    saved = (local.call, local.wrappers)
    local.call, local.wrappers = info, wrappers
    try:
        proceed: Callable[[], Any] = functools.partial(fn, *args, **kwargs)
        for wrapper in reversed(wrappers):
            proceed = functools.partial(wrapper, info, proceed)
        return proceed()
    finally:
        local.call, local.wrappers = saved


def _make_task_body(
    fn: Callable[..., Any],
    name: str,
    qualname: str,
    wrappers: tuple[CallWrapper, ...] = (),
    replaced: bool = False,
) -> Callable[..., Any]:
    """The function Ray exports: ``fn`` under the given call wrappers.

    Wrappers are part of the export (one export per function, options and
    wrapper set), so a call ships at most its tag and hook context, as one
    small keyword argument of plain values, and only when it has them.
    """

    def chia_task(*args: Any, **kwargs: Any) -> Any:
        tracking = pid_tracking.enter()  # per-task Popen tracking for chia_cancel
        try:
            shipped: tuple[str | None, Mapping[str, Any]] | None = kwargs.pop(_CTX_KEYWORD, None)
            if not wrappers and shipped is None:
                result = fn(*args, **kwargs)
            else:
                tag, context = shipped if shipped is not None else (None, _NO_CONTEXT)
                info = CallInfo(name, qualname, tag, args, kwargs, context, True, replaced)
                result = _run_wrapped(fn, info, wrappers, args, kwargs)
        finally:
            spawned = pid_tracking.leave(tracking)
        if spawned is not None:
            pid_tracking.raise_if_cancelled(spawned)
        return result

    # Ray names tasks after the function (state API, dashboard, profiler).
    chia_task.__name__ = name
    chia_task.__qualname__ = getattr(fn, "__qualname__", name)
    return chia_task


# --- caller side ------------------------------------------------------------------


def _check_tag(tag: object, qualname: str) -> str | None:
    if tag is None or type(tag) is str:
        return tag
    raise TypeError(f"{TAG_KEYWORD} of a call to {qualname} must be a str or None, got {tag!r} ({type(tag).__name__})")


def _ray_remote(body: Callable[..., Any], options: Mapping[str, Any], qualname: str) -> Any:
    try:
        return ray.remote(**options)(body) if options else ray.remote(body)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid Ray options for ChiaFunction {qualname}: {exc}") from exc


class _Dispatcher:
    """Submits one function with one set of options; owns its Ray exports.

    The Ray remote function for the real body is built once; replacement
    bodies (bypass providers) are built once per replacement callable.
    """

    __slots__ = ("_fn", "_name", "_options", "_overrides", "_qualname", "_remote", "_root", "_tag", "_variants")

    def __init__(
        self,
        fn: Callable[..., Any],
        options: Mapping[str, Any],
        remote: Any,
        tag: str | None,
        root: _Dispatcher | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self._fn = fn
        self._name: str = getattr(fn, "__name__", repr(fn))
        self._qualname = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', self._name)}"
        self._options = (
            options if isinstance(options, types.MappingProxyType) else types.MappingProxyType(dict(options))
        )
        self._remote = remote
        # The root dispatcher (decorator options) owns the Ray exports; derived
        # ones (``.options(...)``) layer their overrides over the root's.
        self._root: _Dispatcher = self if root is None else root
        self._overrides: dict[str, Any] = overrides or {}
        # Exports beyond the plain one, keyed by (replacement or None, wrappers).
        self._variants: dict[tuple[Callable[..., Any] | None, tuple[CallWrapper, ...]], Any] = (
            {} if root is None else root._variants
        )
        self._tag = tag

    def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tag = self._tag
        if kwargs and TAG_KEYWORD in kwargs:
            tag = _check_tag(kwargs.pop(TAG_KEYWORD), self._qualname)
        if not seam.active_hooks and not seam.active_wrappers and not seam.task_local.wrappers:
            if proxy_route.maybe:
                return self._send(self._remote, args, kwargs)
            return self._remote.remote(*args, **kwargs)
        return self._submit_hooked(tag, args, kwargs)

    def _send(self, remote: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Submit, relayed through the job's dispatch proxy when this worker cannot reach the target."""
        if proxy_route.maybe:
            ref = proxy_route.relay(remote, self._options, args, kwargs)
            if ref is not None:
                return ref
        return remote.remote(*args, **kwargs)

    def _submit_hooked(self, tag: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = DispatchCall(
            self._fn, self._name, self._qualname, self._options, tag, args, kwargs, _submitter=self._submit_call
        )
        ref = None
        for hook in seam.active_hooks:
            ref = hook(call)
            if ref is not None:
                break
        if ref is None:
            ref = call.submit()
        if call._resolve_callbacks:
            seam.attach_resolve_callbacks(_ref_id(ref), call._resolve_callbacks)
        return ref

    def _submit_call(
        self,
        call: DispatchCall,
        replacement: Callable[..., Any] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        wrappers = seam.active_wrappers or seam.task_local.wrappers
        remote = self._remote if replacement is None and not wrappers else self._variant(replacement, wrappers)
        if call.tag is not None or call.context:
            kwargs = {**kwargs, _CTX_KEYWORD: (call.tag, call.context)}
        ref = self._send(remote, args, kwargs)
        for callback in call._submitted_callbacks:
            callback(ref)
        return ref

    def _variant(self, replacement: Callable[..., Any] | None, wrappers: tuple[CallWrapper, ...]) -> Any:
        key = (replacement, wrappers)
        remote = self._variants.get(key)
        if remote is None:  # exported once per replacement and wrapper set, with the decorator's options
            body = _make_task_body(
                replacement or self._fn, self._name, self._qualname, wrappers, replacement is not None
            )
            remote = _ray_remote(body, self._root._options, self._qualname)
            self._variants[key] = remote
        return remote.options(**self._overrides) if self._overrides else remote

    def with_overrides(self, overrides: dict[str, Any]) -> _Dispatcher:
        tag = self._tag
        if TAG_KEYWORD in overrides:
            tag = _check_tag(overrides.pop(TAG_KEYWORD), self._qualname)
        if not overrides:
            return _Dispatcher(self._fn, self._options, self._remote, tag, self._root, self._overrides)
        merged = {**self._overrides, **overrides}
        try:
            remote = self._root._remote.options(**merged)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid Ray options for ChiaFunction {self._qualname}: {exc}") from exc
        return _Dispatcher(self._fn, {**self._root._options, **merged}, remote, tag, self._root, merged)


def _ref_id(ref: Any) -> bytes:
    if isinstance(ref, list):  # num_returns > 1: callbacks follow the first ref
        ref = ref[0]
    binary: bytes = ref.binary()
    return binary


class _OptionsHandle(Generic[P, R]):
    """Implementation of :class:`ChiaOptions`."""

    __slots__ = ("_dispatcher",)

    def __init__(self, dispatcher: _Dispatcher) -> None:
        self._dispatcher = dispatcher

    def chia_remote(self, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
        ref: ObjectRef[R] = self._dispatcher.submit(args, kwargs)
        return ref

    remote = chia_remote

    def chia_remote_blocking(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return get(self.chia_remote(*args, **kwargs))

    def options(self, **overrides: Any) -> _OptionsHandle[P, R]:
        return _OptionsHandle(self._dispatcher.with_overrides(overrides))


class _ChiaWrappedImpl(Generic[P, R]):
    """Implementation of :class:`ChiaWrapped` (what ``@ChiaFunction()`` returns)."""

    __name__: str
    __qualname__: str
    __wrapped__: Callable[P, R]

    def __init__(self, fn: Callable[P, R], options: Mapping[str, Any]) -> None:
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._options = dict(options)
        qualname = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        name = getattr(fn, "__name__", repr(fn))
        remote = _ray_remote(_make_task_body(fn, name, qualname), self._options, qualname)
        self._dispatcher = _Dispatcher(fn, self._options, remote, None)
        self._pickled_fn: bytes | None = None

    @property
    def chia_options(self) -> Mapping[str, Any]:
        return self._dispatcher._options

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        tag = None
        if kwargs and TAG_KEYWORD in kwargs:
            tag = _check_tag(kwargs.pop(TAG_KEYWORD), self._dispatcher._qualname)
        wrappers = seam.active_wrappers or seam.task_local.wrappers
        if not wrappers:
            return self._fn(*args, **kwargs)
        dispatcher = self._dispatcher
        info = CallInfo(dispatcher._name, dispatcher._qualname, tag, args, kwargs, {}, False)
        result: R = _run_wrapped(self._fn, info, wrappers, args, kwargs)
        return result

    def chia_remote(self, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
        ref: ObjectRef[R] = self._dispatcher.submit(args, kwargs)
        return ref

    def chia_remote_blocking(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return get(self.chia_remote(*args, **kwargs))

    def options(self, **overrides: Any) -> _OptionsHandle[P, R]:
        return _OptionsHandle(self._dispatcher.with_overrides(overrides))

    def __get__(self, obj: object, objtype: type[Any] | None = None) -> Any:
        if obj is None:
            return self
        return types.MethodType(self, obj)

    def __repr__(self) -> str:
        return f"<ChiaFunction {self._dispatcher._qualname} options={self._options!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # Travels by reference when the receiving process can import it (the
        # same object comes back), by value otherwise (``__main__``, closures,
        # modules a worker cannot import). The function is serialised once.
        if self._pickled_fn is None:
            self._pickled_fn = ray.cloudpickle.dumps(self._fn)  # type: ignore[no-untyped-call]
        module = getattr(self._fn, "__module__", None) or ""
        qualname = getattr(self._fn, "__qualname__", "")
        return (_unpickle_wrapped, (module, qualname, self._pickled_fn, self._options))


def _unpickle_wrapped(module: str, qualname: str, pickled_fn: bytes, options: dict[str, Any]) -> Any:
    if module and module != "__main__" and "<locals>" not in qualname:
        try:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            obj = None
        if isinstance(obj, _ChiaWrappedImpl) and obj._options == options:
            return obj
    return _ChiaWrappedImpl(ray.cloudpickle.loads(pickled_fn), options)


class ChiaFunction:
    """Decorator that creates both a local and a ``ray.remote`` version of a function. Stable.

    Usage::

        @ChiaFunction(resources={"db1": 1.0})
        def my_function(x, y):
            return x + y

        my_function(1, 2)                      # local call, in-process
        ref = my_function.chia_remote(1, 2)    # ObjectRef[int], dispatched by Ray
        result = get(ref)
        ref = ChiaCallRemote(my_function, 1, 2)

    For bound methods the instance is passed explicitly to ``chia_remote``
    (it is serialized to the worker with the call)::

        class MyTool:
            @ChiaFunction()
            def do_work(self, x):
                return x * 2

        tool = MyTool()
        tool.do_work(5)                          # local, binds self
        ref = tool.do_work.chia_remote(tool, x=5)

    Accepts any keyword argument supported by ``ray.remote().options()``
    (``resources``, ``num_cpus``, ``num_gpus``, ``num_returns``,
    ``max_retries``, ``retry_exceptions``, ``memory``,
    ``scheduling_strategy``, ``max_calls``, ``runtime_env``, ``name``...);
    unknown options raise ``ValueError`` at decoration. Every
    ``chia_remote`` also accepts the reserved keyword ``_chia_tag`` (a str
    naming the call for bypass, cache and profiling), which never reaches the
    function. The function is exported to Ray once per (function, options).
    """

    __slots__ = ("_options",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args:
            raise TypeError(
                f"ChiaFunction takes only keyword Ray options, got positional {args[0]!r}; "
                "decorate with @ChiaFunction() (with parentheses)"
            )
        self._options = kwargs

    def __call__(self, fn: Callable[P, R]) -> ChiaWrapped[P, R]:
        """Wrap ``fn``: the decorator's application."""
        if not callable(fn):
            raise TypeError(f"@ChiaFunction() can only decorate a callable, got {fn!r} ({type(fn).__name__})")
        if isinstance(fn, _ChiaWrappedImpl):
            raise TypeError(f"{fn!r} is already a ChiaFunction; use .options(...) to change its options")
        wrapped: ChiaWrapped[P, R] = _ChiaWrappedImpl(fn, self._options)
        return wrapped


def ChiaCallRemote(func: ChiaWrapped[P, R], /, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
    """Call the ``ray.remote`` version of a ``@ChiaFunction``-decorated function. Stable.

    Returns a ``ray.ObjectRef[R]`` where ``R`` is the wrapped function's
    return type, so ``get(...)`` infers the final value type.
    """
    if not isinstance(func, _ChiaWrappedImpl):
        raise TypeError(f"ChiaCallRemote needs a @ChiaFunction()-decorated function, got {func!r}")
    return func.chia_remote(*args, **kwargs)


def _run_resolve_callbacks(ref: Any, value: Any) -> None:
    callbacks = seam.take_resolve_callbacks(ref.binary())
    for callback in callbacks or ():
        try:
            callback(value)
        except Exception:
            logger.exception("resolve callback %r failed; the value is returned unchanged", callback)


@overload
def get(
    ref: ObjectRefCallback,
    *,
    timeout: float | None = None,
    callback: Callable[[Any], Any] | None = None,
    _use_object_store: bool = False,
) -> Any: ...


@overload
def get(
    ref: Sequence[ObjectRef[R]],
    *,
    timeout: float | None = None,
    callback: Callable[[Any], Any] | None = None,
    _use_object_store: bool = False,
) -> list[R]: ...


@overload
def get(
    ref: Sequence[ObjectRef[Any]],
    *,
    timeout: float | None = None,
    callback: Callable[[Any], Any] | None = None,
    _use_object_store: bool = False,
) -> list[Any]: ...


@overload
def get(
    ref: ObjectRef[R],
    *,
    timeout: float | None = None,
    callback: Callable[[Any], Any] | None = None,
    _use_object_store: bool = False,
) -> R: ...


@overload
def get(
    ref: Sequence[CompiledDAGRef],
    *,
    timeout: float | None = None,
    callback: Callable[[Any], Any] | None = None,
    _use_object_store: bool = False,
) -> list[Any]: ...


@overload
def get(
    ref: CompiledDAGRef,
    *,
    timeout: float | None = None,
    callback: Callable[[Any], Any] | None = None,
    _use_object_store: bool = False,
) -> Any: ...


def get(
    ref: Any,
    *,
    timeout: float | None = None,
    callback: Callable[[Any], Any] | None = None,
    _use_object_store: bool = False,
) -> Any:
    """Wrapper around ``ray.get()`` for use in chia flows. Stable.

    Delegates to ``ray.get()`` and runs what the dispatch seam attached to the
    refs (e.g. cache write-through, profiling). A single ``ObjectRef[R]``
    returns ``R`` and a sequence returns ``List[R]``.

    ``callback``: invoked with the resolved value; its return value is what
    ``get`` returns. An :class:`ObjectRefCallback` carries its own callback;
    if both are present they compose: the ref's own callback first, then the
    explicit ``callback``. Sequences may mix ObjectRefs and
    ObjectRefCallbacks. ``_use_object_store`` is accepted for compatibility
    with earlier chia releases and has no effect (values always come through
    Ray's object store).
    """
    if type(ref) is ObjectRefCallback:
        value = ref.callback(get(ref.ref, timeout=timeout))
    elif isinstance(ref, (list, tuple)) and any(type(item) is ObjectRefCallback for item in ref):
        plain = [item.ref if type(item) is ObjectRefCallback else item for item in ref]
        values = get(plain, timeout=timeout)
        value = [
            item.callback(v) if type(item) is ObjectRefCallback else v for item, v in zip(ref, values, strict=True)
        ]
    else:
        value = ray.get(ref, timeout=timeout)
        if seam.has_pending_resolve():
            if isinstance(ref, (list, tuple)):
                for item, item_value in zip(ref, value, strict=True):
                    if isinstance(item, ray.ObjectRef):
                        _run_resolve_callbacks(item, item_value)
            elif isinstance(ref, ray.ObjectRef):
                _run_resolve_callbacks(ref, value)
    if callback is not None:
        return callback(value)
    return value


# --- actors -----------------------------------------------------------------------------


class _ChiaActorMethod:
    """One actor method with ``chia_remote`` as an alias of ``remote``."""

    __slots__ = ("_method", "chia_remote", "remote")

    def __init__(self, method: Any) -> None:
        self._method = method
        self.remote: Callable[..., Any] = method.remote
        self.chia_remote: Callable[..., Any] = method.remote

    def options(self, **overrides: Any) -> _ChiaActorMethod:
        return _ChiaActorMethod(self._method.options(**overrides))

    def chia_remote_blocking(self, *args: Any, **kwargs: Any) -> Any:
        return get(self.remote(*args, **kwargs))


class ChiaActorHandle:
    """Thin proxy over a Ray actor handle that adds ``chia_remote`` to each method. Stable.

    Built by :func:`chia_actor`. ``handle.method.chia_remote(...)`` and
    ``handle.method.remote(...)`` both dispatch straight to the actor (no
    bypass, cache or profiling wrapping); :func:`get` resolves the result.
    ``actor`` recovers the raw Ray handle (e.g. for ``ray.kill``). The
    wrapper pickles, so it can be passed into tasks.
    """

    __slots__ = ("_actor", "_methods")

    def __init__(self, actor: Any) -> None:
        if isinstance(actor, ChiaActorHandle):
            actor = actor.actor
        if not isinstance(actor, ray.actor.ActorHandle):
            raise TypeError(f"chia_actor needs a Ray actor handle, got {actor!r} ({type(actor).__name__})")
        self._actor = actor
        self._methods: dict[str, _ChiaActorMethod] = {}

    @property
    def actor(self) -> Any:
        """The underlying raw Ray actor handle."""
        return self._actor

    def __getattr__(self, name: str) -> _ChiaActorMethod:
        if name.startswith("__"):
            raise AttributeError(name)
        method = self._methods.get(name)
        if method is None:
            method = _ChiaActorMethod(getattr(self._actor, name))
            self._methods[name] = method
        return method

    def __reduce__(self) -> tuple[Any, ...]:
        return (ChiaActorHandle, (self._actor,))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChiaActorHandle):
            return bool(self._actor == other._actor)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._actor)

    def __repr__(self) -> str:
        return f"ChiaActorHandle({self._actor!r})"


def chia_actor(handle: Any) -> ChiaActorHandle:
    """Wrap a Ray actor handle so its methods accept ``chia_remote``. Stable.

    ::

        store = chia_actor(some_actor)
        n = get(store.size_bytes.chia_remote())

    Idempotent: wrapping an already wrapped handle returns it unchanged.
    """
    if isinstance(handle, ChiaActorHandle):
        return handle
    return ChiaActorHandle(handle)
