"""``@ChiaFunction``: one decorator, a local call and a typed Ray dispatch.

Owns the dispatch surface of chia: the decorator, ``ChiaCallRemote``,
``get``, ``ObjectRefCallback`` and the actor wrapper ``chia_actor``. Other
distributions add behaviour through :mod:`chia.base.dispatch_hooks`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import types
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

import ray
import ray.cloudpickle

from chia.base._dispatch import pid_tracking, reserved, seam, tags
from chia.base._dispatch.named_submit import NamedSubmit
from chia.base._dispatch.proxy import route as proxy_route
from chia.base._dispatch.refs import ObjectRefCallback
from chia.base._dispatch.registry import chia_cancel
from chia.base._dispatch.seam import CallInfo, CallWrapper, DispatchCall
from chia.base.chia_wait import TrackedRef, chia_wait

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
    "TrackedRef",
    "chia_actor",
    "chia_cancel",
    "chia_wait",
    "get",
]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

TAG_KEYWORD = reserved.TAG
_CTX_KEYWORD = "__chia_ctx__"
_RESERVED = reserved.RESERVED


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

    @property
    def chia_remote_blocking(self) -> Callable[P, R]:
        """Dispatch the call and wait for its result (carries the function's name, docs and signature)."""
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

    @property
    def chia_remote_blocking(self) -> Callable[P, R]:
        """Dispatch the call and wait for its result.

        Carries the function's name, docstring and signature, so it can be
        registered as an MCP tool (``mcp.add_tool(f.chia_remote_blocking)``).
        """
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

# What a call ships to its worker, only when it has any of it:
# (tag, hook context, display name, setup/cleanup).
_Shipped = tuple[str | None, Mapping[str, Any], str | None, "reserved.Around | None"]


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


def _signature_of(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins and C callables have none: Ray checks nothing either
        return None


def _export_signature(signature: inspect.Signature) -> inspect.Signature:
    """The function's own signature plus the optional keyword a call ships its context in.

    Ray binds the arguments of every ``.remote()`` against the signature of
    the function it exports, so giving the task body this signature makes
    Ray's own call-site check (``TypeError: missing a required argument``)
    cover chia calls at no extra cost. The plain export (no wrappers) takes
    the function's signature unchanged: no call to it ships context, and Ray
    binds nothing for a call without arguments to a function without
    parameters.
    """
    params = list(signature.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return signature
    ctx = inspect.Parameter(_CTX_KEYWORD, inspect.Parameter.KEYWORD_ONLY, default=None)
    return signature.replace(parameters=[*params, ctx])


def _tag_from_task_name(label: str) -> str | None:
    """The tag of the running task, read from its Ray task name ``label[tag]``."""
    task_name = ray.get_runtime_context().get_task_name() or ""
    if task_name.startswith(label) and task_name[len(label) : len(label) + 1] == "[" and task_name.endswith("]"):
        return task_name[len(label) + 1 : -1]
    return None


def _make_task_body(
    fn: Callable[..., Any],
    name: str,
    qualname: str,
    wrappers: tuple[CallWrapper, ...] = (),
    replaced: bool = False,
    signature: inspect.Signature | None = None,
    *,
    takes_context: bool = True,
    tag_in_name: bool = False,
) -> Callable[..., Any]:
    """The function Ray exports: ``fn`` under the given call wrappers.

    Wrappers are part of the export (one export per function, options and
    wrapper set), so a call ships at most its tag, display name, setup and
    hook context, as one small keyword argument, and only when something on
    the worker needs them: setup/cleanup always, the rest only for wrappers.
    A body built ``tag_in_name`` serves calls whose only context is a tag,
    and reads it back from the Ray task name (``name[tag]``) instead.
    """

    def chia_task(*args: Any, **kwargs: Any) -> Any:
        tracking = pid_tracking.enter()  # per-task Popen tracking for chia_cancel
        try:
            shipped: _Shipped | None = kwargs.pop(_CTX_KEYWORD, None)
            if not wrappers and shipped is None:
                result = fn(*args, **kwargs)
            else:
                if shipped is None:
                    shipped = (_tag_from_task_name(name) if tag_in_name else None, _NO_CONTEXT, None, None)
                tag, context, display, around = shipped
                body = fn if around is None else functools.partial(around.run, fn)
                if not wrappers:
                    result = body(*args, **kwargs)
                else:
                    info = CallInfo(name, qualname, tag, args, kwargs, context, True, replaced, display)
                    result = _run_wrapped(body, info, wrappers, args, kwargs)
        finally:
            spawned = pid_tracking.leave(tracking)
        if spawned is not None:
            pid_tracking.raise_if_cancelled(spawned)
        return result

    # Ray names tasks after the function (state API, dashboard, profiler).
    chia_task.__name__ = name
    chia_task.__qualname__ = getattr(fn, "__qualname__", name)
    if signature is not None:
        exported = _export_signature(signature) if takes_context else signature
        chia_task.__signature__ = exported  # type: ignore[attr-defined]
    return chia_task


# --- caller side ------------------------------------------------------------------


def _ray_remote(body: Callable[..., Any], options: Mapping[str, Any], qualname: str) -> Any:
    try:
        return ray.remote(**options)(body) if options else ray.remote(body)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid Ray options for ChiaFunction {qualname}: {exc}") from exc


def _check_arguments(
    signature: inspect.Signature | None, qualname: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> None:
    """Raise ``TypeError`` (as Ray's ``.remote()`` does) when the arguments do not fit the signature."""
    if signature is None:
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{qualname}(): {exc}") from None


def _fits_bare_call(signature: inspect.Signature | None) -> bool:
    """Whether ``fn()`` binds: every parameter has a default or is variadic."""
    return signature is None or all(
        p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in signature.parameters.values()
    )


class _Dispatcher:
    """Submits one function with one set of options; owns its Ray exports.

    The Ray remote function for the real body is built once; replacement
    bodies (bypass providers) are built once per replacement callable.
    """

    __slots__ = (
        "_bare_call_fits",
        "_fn",
        "_name",
        "_named_tasks",
        "_options",
        "_overrides",
        "_qualname",
        "_remote",
        "_reserved",
        "_root",
        "_signature",
        "_submitters",
        "_variants",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        options: Mapping[str, Any],
        remote: Any,
        preset: reserved.Reserved,
        root: _Dispatcher | None = None,
        overrides: dict[str, Any] | None = None,
        signature: inspect.Signature | None = None,
        submitters: dict[int, NamedSubmit] | None = None,
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
        # Exports beyond the plain one, keyed by (replacement or None, wrappers, tag read from the task name,
        # whether calls ship context).
        self._variants: dict[tuple[Callable[..., Any] | None, tuple[CallWrapper, ...], bool, bool], Any] = (
            {} if root is None else root._variants
        )
        self._reserved = preset  # reserved keywords given to .options(...)
        self._signature: inspect.Signature | None = signature if root is None else root._signature
        # A call without arguments is the common case: whether it binds is known once (binding costs ~8 µs).
        self._bare_call_fits: bool = _fits_bare_call(self._signature) if root is None else root._bare_call_fits
        # An explicit ``name`` option is the user's task name: tags do not replace it.
        self._named_tasks = "name" not in self._options
        # Per export (by id): its submission under these overrides, shared by handles with the same overrides.
        self._submitters: dict[int, NamedSubmit] = {} if submitters is None else submitters

    def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        preset = self._reserved
        if kwargs and not _RESERVED.isdisjoint(kwargs):
            preset = reserved.take(kwargs, preset, self._qualname)
        if not seam.active_hooks and not seam.active_wrappers and not seam.task_local.wrappers:
            if preset is reserved.NONE:
                if proxy_route.maybe:
                    return self._send(self._remote, args, kwargs)
                try:
                    return self._remote.remote(*args, **kwargs)
                except TypeError:
                    self.check_arguments(args, kwargs)  # say which call did not fit; else Ray's own error
                    raise
            base = self._root._remote
            if preset.around is not None:  # setup and cleanup run on the worker: they travel with the call
                kwargs = {**kwargs, _CTX_KEYWORD: (preset.tag, _NO_CONTEXT, preset.display_name, preset.around)}
                base = self._variant(None, (), ships_context=True)
            name, carried = self._task_name(preset.tag, preset.display_name)
            return self._send_named(base, name, None if carried else preset.tag, args, kwargs)
        return self._submit_hooked(preset, args, kwargs)

    def check_arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """Raise ``TypeError`` when the call's arguments do not fit the function."""
        if not args and not kwargs and self._bare_call_fits:
            return
        _check_arguments(self._signature, self._qualname, args, kwargs)

    def _task_name(self, tag: str | None, display_name: str | None) -> tuple[str | None, bool]:
        """The call's Ray task name (None: the options' name or Ray's default), and whether it carries the tag."""
        if not self._named_tasks:
            return None, False
        return tags.task_name(self._name, tag, display_name)

    def _send_named(
        self, base: Any, name: str | None, unnamed_tag: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Submit ``base`` (a root-level export) with this handle's overrides, under the task name ``name``.

        ``unnamed_tag``: the call's tag when the name does not carry it; the
        process that submits the task (this one, or the dispatch proxy it
        relays through) sends it to the job's pid registry.
        """
        if name is None and base is self._root._remote:
            remote = self._remote if unnamed_tag is None else tags.Tagged(self._remote, unnamed_tag)
            return self._send(remote, args, kwargs)
        submitter = self._submitters.get(id(base))
        if submitter is None or submitter.remote_function is not base:
            submitter = self._submitters[id(base)] = NamedSubmit(base, self._overrides)
        if proxy_route.maybe and proxy_route.should_relay(self._options):
            handle = submitter.handle(name)
            return self._send(handle if unnamed_tag is None else tags.Tagged(handle, unnamed_tag), args, kwargs)
        try:
            ref = submitter.submit(name, args, kwargs)
        except TypeError:
            self._check_shipped_arguments(args, kwargs)
            raise
        if unnamed_tag is not None:
            tags.ledger.remember(ref, unnamed_tag)
        return ref

    def _send(self, remote: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Submit, relayed through the job's dispatch proxy when this worker cannot reach the target."""
        if proxy_route.maybe and proxy_route.should_relay(self._options):
            self._check_shipped_arguments(args, kwargs)
            ref = proxy_route.relay(remote, self._options, args, kwargs)
            if ref is not None:
                return ref
        try:
            return remote.remote(*args, **kwargs)
        except TypeError:
            self._check_shipped_arguments(args, kwargs)
            raise

    def _check_shipped_arguments(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """:meth:`check_arguments` of what a submission carries, less the context keyword chia adds."""
        self.check_arguments(args, {k: v for k, v in kwargs.items() if k != _CTX_KEYWORD})

    def _submit_hooked(self, preset: reserved.Reserved, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # Before any hook: a call that cannot bind is neither bypassed, cached nor recorded.
        self.check_arguments(args, kwargs)
        call = DispatchCall(
            self._fn,
            self._name,
            self._qualname,
            self._options,
            preset.tag,
            args,
            kwargs,
            display_name=preset.display_name,
            _around=preset.around,
            _submitter=self._submit_call,
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
        # Setup and cleanup belong to the real function: a replacement (bypass provider) runs without them.
        around = call._around if replacement is None else None
        # What the worker needs: setup and cleanup; tag, display name and context only for its wrappers,
        # and a lone tag not even then, when the task name carries it.
        name, carried = self._task_name(call.tag, call.display_name)
        tag_in_name = bool(wrappers) and carried
        if around is not None or (
            wrappers and (call.context or call.display_name is not None or (call.tag is not None and not tag_in_name))
        ):
            kwargs = {**kwargs, _CTX_KEYWORD: (call.tag, call.context, call.display_name, around)}
            base = self._variant(replacement, wrappers, ships_context=True)
        elif replacement is None and not wrappers:
            base = self._root._remote
        else:
            base = self._variant(replacement, wrappers, tag_in_name=tag_in_name)
        ref = self._send_named(base, name, None if carried else call.tag, args, kwargs)
        for callback in call._submitted_callbacks:
            callback(ref)
        return ref

    def _variant(
        self,
        replacement: Callable[..., Any] | None,
        wrappers: tuple[CallWrapper, ...],
        *,
        tag_in_name: bool = False,
        ships_context: bool = False,
    ) -> Any:
        """The root-level export of ``replacement`` (or the function) under ``wrappers``.

        Only an export for calls that ship context declares the context
        keyword: Ray binds and flattens the arguments of every call to a
        function with parameters, ~15 µs that a call without arguments to a
        function without parameters does not pay.
        """
        key = (replacement, wrappers, tag_in_name, ships_context)
        remote = self._variants.get(key)
        if remote is None:  # exported once per key, with the decorator's options
            body = _make_task_body(
                replacement or self._fn,
                self._name,
                self._qualname,
                wrappers,
                replacement is not None,
                self._signature if replacement is None else None,
                takes_context=ships_context,
                tag_in_name=tag_in_name,
            )
            remote = _ray_remote(body, self._root._options, self._qualname)
            self._variants[key] = remote
        return remote

    def with_overrides(self, overrides: dict[str, Any]) -> _Dispatcher:
        preset = self._reserved
        if not _RESERVED.isdisjoint(overrides):
            preset = reserved.take(overrides, preset, self._qualname)
        if not overrides:
            return _Dispatcher(
                self._fn, self._options, self._remote, preset, self._root, self._overrides, submitters=self._submitters
            )
        merged = {**self._overrides, **overrides}
        try:
            remote = self._root._remote.options(**merged)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"invalid Ray options for ChiaFunction {self._qualname}: {exc}") from exc
        return _Dispatcher(self._fn, {**self._root._options, **merged}, remote, preset, self._root, merged)


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

    @property
    def chia_remote_blocking(self) -> Callable[P, R]:
        return _blocking(self.chia_remote, self._dispatcher._fn)

    def options(self, **overrides: Any) -> _OptionsHandle[P, R]:
        return _OptionsHandle(self._dispatcher.with_overrides(overrides))


def _blocking(chia_remote: Callable[P, ObjectRef[R]], fn: Callable[..., Any]) -> Callable[P, R]:
    """``chia_remote`` + ``get``, under the function's name, docstring and signature (MCP tools read them)."""

    def chia_remote_blocking(*args: P.args, **kwargs: P.kwargs) -> R:
        value: R = get(chia_remote(*args, **kwargs))
        return value

    functools.update_wrapper(chia_remote_blocking, fn)
    return chia_remote_blocking


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
        signature = _signature_of(fn)
        body = _make_task_body(fn, name, qualname, signature=signature, takes_context=False)
        remote = _ray_remote(body, self._options, qualname)
        seam.note_function(name, qualname, signature)
        self._dispatcher = _Dispatcher(fn, self._options, remote, reserved.NONE, signature=signature)
        self._pickled_fn: bytes | None = None
        self._pickling = False
        self.chia_remote_blocking: Callable[P, R] = _blocking(self.chia_remote, fn)

    @property
    def chia_options(self) -> Mapping[str, Any]:
        return self._dispatcher._options

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        dispatcher = self._dispatcher
        preset = reserved.NONE
        if kwargs and not _RESERVED.isdisjoint(kwargs):
            preset = reserved.take(kwargs, preset, dispatcher._qualname)
        body: Callable[..., Any] = self._fn
        if preset.around is not None:
            dispatcher.check_arguments(args, kwargs)  # before the setup runs
            body = functools.partial(preset.around.run, body)
        wrappers = seam.active_wrappers or seam.task_local.wrappers
        if not wrappers:
            result: R = body(*args, **kwargs)
            return result
        info = CallInfo(
            dispatcher._name, dispatcher._qualname, preset.tag, args, kwargs, {}, False, False, preset.display_name
        )
        result = _run_wrapped(body, info, wrappers, args, kwargs)
        return result

    def chia_remote(self, *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
        ref: ObjectRef[R] = self._dispatcher.submit(args, kwargs)
        return ref

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
            if self._pickling:
                # Reached again while serialising the function: it refers back to
                # this object (a method using zero-argument super() in a class
                # pickled by value: its __class__ cell holds the class, whose dict
                # holds this). The enclosing pickler's memo closes that cycle.
                return (_ChiaWrappedImpl, (self._fn, self._options))
            self._pickling = True
            try:
                self._pickled_fn = ray.cloudpickle.dumps(self._fn)  # type: ignore[no-untyped-call]
            finally:
                self._pickling = False
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
    unknown options raise ``ValueError`` at decoration;
    ``ChiaFunction(...).options(...)`` layers more options over them. Every
    call also accepts the reserved keywords ``_chia_tag`` (a str naming the
    call for bypass, cache, profiling and the Ray task name),
    ``_chia_display_name`` (the name the profile, its summary and Ray show
    for the call), ``_chia_setup``/``_chia_setup_args`` (a callable run on
    the worker before the function) and ``_chia_cleanup``/``_chia_cleanup_args``
    (run after it, even when it raises); none reaches the function. Arguments
    that do not fit the function's signature raise ``TypeError`` at the call,
    as Ray's ``.remote()`` does. The function is exported to Ray once per
    (function, options).
    """

    __slots__ = ("_options",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args:
            raise TypeError(
                f"ChiaFunction takes only keyword Ray options, got positional {args[0]!r}; "
                "decorate with @ChiaFunction() (with parentheses)"
            )
        self._options = kwargs

    def options(self, **overrides: Any) -> ChiaFunction:
        """A decorator with these Ray options layered over this one's (``ChiaFunction(num_cpus=1).options(...)``)."""
        return ChiaFunction(**{**self._options, **overrides})

    def __call__(self, fn: Callable[P, R]) -> ChiaWrapped[P, R]:
        """Wrap ``fn``: the decorator's application."""
        if not callable(fn):
            raise TypeError(f"@ChiaFunction() can only decorate a callable, got {fn!r} ({type(fn).__name__})")
        if isinstance(fn, _ChiaWrappedImpl):
            raise TypeError(f"{fn!r} is already a ChiaFunction; use .options(...) to change its options")
        wrapped: ChiaWrapped[P, R] = _ChiaWrappedImpl(fn, self._options)
        return wrapped


if TYPE_CHECKING:

    def ChiaCallRemote(func: ChiaWrapped[P, R], *args: P.args, **kwargs: P.kwargs) -> ObjectRef[R]:
        """Call the ``ray.remote`` version of a ``@ChiaFunction``-decorated function."""
        ...

else:

    def ChiaCallRemote(*args: Any, **kwargs: Any) -> Any:
        """Call the ``ray.remote`` version of a ``@ChiaFunction``-decorated function. Stable.

        ``ChiaCallRemote(func, *args, **kwargs)`` returns a ``ray.ObjectRef[R]``
        where ``R`` is the wrapped function's return type, so ``get(...)``
        infers the final value type. ``func`` may also be given by keyword
        (``ChiaCallRemote(func=f, x=1)``); when it is given positionally, every
        keyword (``func`` too) reaches the function.
        """
        if args:
            func, args = args[0], args[1:]
        elif "func" in kwargs:
            func = kwargs.pop("func")
        else:
            raise TypeError("ChiaCallRemote() missing the @ChiaFunction()-decorated function to call (func)")
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


_WRAPPED_REFS = (ObjectRefCallback, TrackedRef)
"""What ``get`` unwraps before ``ray.get``: a list holding none of these goes to Ray as it is."""


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
    explicit ``callback``. A :class:`TrackedRef` is fetched through its
    ``ref`` (``get(tr)`` is ``get(tr.ref)``). Sequences may mix ObjectRefs,
    ObjectRefCallbacks and TrackedRefs. ``_use_object_store`` is accepted
    for compatibility with earlier chia releases and has no effect (values
    always come through Ray's object store).
    """
    if isinstance(ref, TrackedRef):
        ref = ref.ref
    if type(ref) is ObjectRefCallback:
        value = ref.callback(get(ref.ref, timeout=timeout))
    elif isinstance(ref, (list, tuple)) and any(type(item) in _WRAPPED_REFS for item in ref):
        items: list[Any] = [item.ref if isinstance(item, TrackedRef) else item for item in ref]
        plain = [item.ref if type(item) is ObjectRefCallback else item for item in items]
        values = get(plain, timeout=timeout)
        value = [
            item.callback(v) if type(item) is ObjectRefCallback else v for item, v in zip(items, values, strict=True)
        ]
    else:
        try:
            value = ray.get(ref, timeout=timeout)
        except ray.exceptions.RayTaskError as error:
            if _is_deferred_sigint_failure(error):
                raise ray.exceptions.TaskCancelledError(
                    error_message="the task was cancelled while Ray was storing its result"
                ) from error
            raise
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


def _is_deferred_sigint_failure(error: ray.exceptions.RayTaskError) -> bool:
    """True for Ray's cancel landing while the worker defers SIGINT (it stores a task's result).

    Ray's ``DeferSigint`` then calls the SIGINT handler it saved, and when that
    is ``signal.SIG_DFL`` (an enum, not a callable) the task fails with
    ``TypeError: 'Handlers' object is not callable`` raised inside Ray's own
    code, instead of being cancelled. The caller asked for a cancel, so
    ``get`` reports it as one. A user's own TypeError never matches: Ray
    strips its own frames from the traceback, so this one holds no frame at
    all, while an error raised by the task's code shows where.
    """
    return (
        isinstance(error.cause, TypeError)
        and str(error.cause) == "'Handlers' object is not callable"
        and 'File "' not in str(error)
    )


# --- actors -----------------------------------------------------------------------------


def _run_actor_method(
    instance: Any, method_name: str, around: reserved.Around, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Runs in the actor (through ``__ray_call__``): the method between setup and cleanup."""
    method = getattr(instance, method_name)
    if inspect.iscoroutinefunction(method):
        raise TypeError(
            f"_chia_setup/_chia_cleanup are not supported on the async actor method {method_name!r}; "
            "call setup and cleanup from the method itself"
        )
    return around.run(method, *args, **kwargs)


class _ChiaActorMethod:
    """One actor method: ``chia_remote`` (and ``remote``) with chia's reserved keywords."""

    __slots__ = ("_actor", "_method", "_method_name", "_overrides")

    def __init__(self, actor: Any, method_name: str, method: Any, overrides: dict[str, Any] | None = None) -> None:
        self._actor = actor
        self._method_name = method_name
        self._method = method
        self._overrides = overrides or {}

    def chia_remote(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs and not _RESERVED.isdisjoint(kwargs):
            return self._reserved_call(args, kwargs)
        return self._method.remote(*args, **kwargs)

    remote = chia_remote

    def _reserved_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        preset = reserved.take(kwargs, reserved.NONE, self._method_name)
        name = (
            None if "name" in self._overrides else tags.task_name(self._method_name, preset.tag, preset.display_name)[0]
        )
        named = {**self._overrides, "name": name} if name is not None else self._overrides
        if preset.around is None:
            method = self._method.options(name=name) if name is not None else self._method
            return method.remote(*args, **kwargs)
        # Ray checks arguments against the method's signature at ``.remote()``; ``__ray_call__``
        # takes anything, so check them here, before anything runs.
        parameters = getattr(self._method, "_signature", None)
        if parameters is not None:
            _check_arguments(inspect.Signature(parameters), self._method_name, args, kwargs)
        call = self._actor.__ray_call__
        if named:
            call = call.options(**named)
        return call.remote(_run_actor_method, self._method_name, preset.around, args, kwargs)

    def options(self, **overrides: Any) -> _ChiaActorMethod:
        merged = {**self._overrides, **overrides}
        return _ChiaActorMethod(self._actor, self._method_name, self._method.options(**overrides), merged)

    def chia_remote_blocking(self, *args: Any, **kwargs: Any) -> Any:
        return get(self.chia_remote(*args, **kwargs))


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
            method = _ChiaActorMethod(self._actor, name, getattr(self._actor, name))
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
