"""General-purpose bypass for ChiaFunction tasks: replay recordings instead of running.

When bypass is active, a configured function is still dispatched through Ray
(so cluster scheduling, placement groups and resources are exercised), but a
*provider* runs on the worker instead of the real function, in a task with
the function's own options, and returns pre-recorded data.

Usage::

    from chia.base.bypass import Bypass

    bypass = Bypass(yaml_path=args.bypass_config)   # always, as part of loop setup
    bypass.set_provider("my_function", my_provider_fn)
    bypass.set_cond("my_function", my_cond_fn)      # optional gate, runs on the caller

YAML format (the ``cache:`` section of the same file is read by
:func:`chia.base.cache.start_cache`)::

    bypass:
      func_name:                  # the function's __name__, or its module.qualname
        bypass: true
        data: /path/to/file.json  # optional; relative paths start at the YAML's directory
        tags: ["iter0_.*"]        # optional; re.fullmatch against the call's _chia_tag
      simple_function: true       # shorthand: bypass, no data
      # not listed = not bypassed

A ``module.qualname`` key wins over a ``__name__`` key for the same function.

A key that names no ``@ChiaFunction`` (a typo: ``simulat``) is reported with
the closest known names as an :class:`UnknownFunctionWarning`, or with
``strict=True`` as an :class:`UnknownFunctionError`. Keys are checked when the
configuration becomes active and, for names not defined yet (a loop run by
``chia run`` defines its functions after the bypass is set up), again at the
first ``chia_remote`` after it: what is still unknown then is reported there,
before that call is dispatched (strict: that call raises).
Nested dispatch (a bypassed function called with ``chia_remote`` inside a
remote task) is bypassed too: workers load the same state, once per version.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray
import ray.cloudpickle

from chia.base._bypass_cache import bypass_sync
from chia.base._bypass_cache.bypass_config import BypassConfigError, BypassRule, load_config, lookup_rule
from chia.base._bypass_cache.bypass_files import real_roots
from chia.base._bypass_cache.cache_write import NAMESPACE_KEY, WRITE_KEY
from chia.base._bypass_cache.config_names import (
    UnknownFunctionError,
    UnknownFunctionWarning,
    check_callable_signature,
    check_keys,
    check_keys_later,
    configured,
    report_unconfigured,
)
from chia.base._bypass_cache.state import live_state
from chia.base.cache import get_active_cache
from chia.base.dispatch_hooks import CACHE_HIT, DispatchCall, current_call

if TYPE_CHECKING:
    from ray import ObjectRef
    from ray.actor import ActorProxy

    from chia.base._bypass_cache.bypass_server import BypassServer

__all__ = [
    "Bypass",
    "BypassConfigError",
    "CacheReplay",
    "UnknownFunctionError",
    "UnknownFunctionWarning",
    "get_active_bypass",
    "validate_config",
]

logger = logging.getLogger(__name__)

_STATE_FORMAT = 2  # 1: chia 0.1 (a "rules" mapping); 2: the reference's layout
_SECTION = "bypass"
_SECTION_ORDER = 0


def validate_config(yaml_path: str | os.PathLike[str], *, check_names: bool = False) -> None:
    """Check a bypass/cache YAML file without a cluster. Stable.

    Raises :class:`BypassConfigError` (a ``ValueError``) whose message names
    the file, the function and the key at fault: a document that is not a
    mapping, an unknown key, a non-boolean ``bypass``/``cache``, an invalid
    ``tags`` regex, a ``data`` path that is too long. A missing YAML file
    raises ``FileNotFoundError``.

    With ``check_names=True`` every key of both sections must also name a
    ``@ChiaFunction`` defined in this process (import the loop first):
    :class:`UnknownFunctionError` lists those that do not, each with the
    closest known names (what ``chia bypass validate --module`` does).
    """
    config = load_config(yaml_path)
    if check_names:
        check_keys(config.path or os.fspath(yaml_path), {"bypass": config.bypass, "cache": config.cache}, strict=True)


def get_active_bypass() -> Bypass | None:
    """Return the active Bypass instance, or None if bypass is not in use. Stable.

    On the driver this is the last constructed :class:`Bypass`. Inside a
    provider or a task dispatched while bypass was active it is the driver's
    bypass as loaded on the worker (fetched once per version), unless that
    task created a Bypass of its own (a nested loop): then it is that one.
    """
    token = bypass_sync.task_token()
    state = live_state.bypass
    if token is not None and (state.active_task is None or state.active_task != bypass_sync.created_in_task()):
        section = bypass_sync.task_section(token, _SECTION)
        return section if isinstance(section, Bypass) else None
    return live_state.bypass.active


def _callable_name(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None) or "?"
    return f"{module}.{getattr(function, '__qualname__', repr(function))}"


def _dump_callable(kind: str, func_name: str, function: Callable[..., Any]) -> bytes:
    try:
        blob: bytes = ray.cloudpickle.dumps(function)  # type: ignore[no-untyped-call]
        return blob
    except Exception as exc:
        raise TypeError(
            f"bypass {kind} {_callable_name(function)} for function {func_name!r} cannot be pickled "
            f"for the workers ({type(exc).__name__}: {exc}); use a module-level function or a closure "
            "over picklable values"
        ) from exc


def _default_file_provider(tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> str:
    """Return the text of ``data_path``, read on the node that owns the Bypass.

    A file that cannot be read raises the ``OSError`` subclass of the cause
    (``FileNotFoundError``, ``PermissionError``...), its message naming the
    YAML file, the function and the key ``data``.
    """
    bypass = get_active_bypass()
    if bypass is None or data_path is None:
        raise RuntimeError(
            f"the default bypass file provider needs an active Bypass and a data path, got {data_path!r}"
        )
    try:
        text: str = ray.get(bypass.file_server().get_text.remote(data_path))
    except (OSError, ValueError) as exc:
        cause = getattr(exc, "cause", None) or exc
        call = current_call()
        where = f"{bypass._yaml_path}: function {call.name if call is not None else '?'!r}, key 'data'"
        message = f"{where}: cannot read {data_path!r}: {type(cause).__name__}: {cause}"
        if isinstance(cause, OSError):
            raise (type(cause)(cause.errno, message) if cause.errno else type(cause)(message)) from None
        raise ValueError(message) from None
    return text


class CacheReplay:
    """The provider :meth:`Bypass.replay_from_cache` registers: the cached value of the call's tag. Stable.

    Called as any provider, ``(tag, data_path, *args, **kwargs)``, on the
    worker; reads ``get_active_cache(namespace)``. A miss (or an untagged
    call, or no running cache) raises ``KeyError`` naming the function and
    the tag.
    """

    __slots__ = ("func_name", "namespace")

    def __init__(self, func_name: str, namespace: str | None = None) -> None:
        self.func_name = func_name
        self.namespace = namespace

    def __call__(self, tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> Any:
        """The cached value of ``tag`` (``KeyError`` on a miss)."""
        cache: Any = get_active_cache(self.namespace)
        if tag is None:
            raise KeyError(f"replay_from_cache({self.func_name!r}): the call has no _chia_tag to look up")
        if cache is None:
            raise KeyError(f"replay_from_cache({self.func_name!r}): no cache is running (start_cache first)")
        hit, value = ray.get(cache.read.remote(tag))
        if not hit:
            raise KeyError(f"replay_from_cache({self.func_name!r}): cache miss for tag {tag!r}")
        return value

    def is_cached(self, tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> bool:
        """The condition of ``on_miss="run"``: the tag has a cache entry (runs on the caller)."""
        cache: Any = get_active_cache(self.namespace)
        return tag is not None and cache is not None and bool(ray.get(cache.has.remote(tag)))

    def __repr__(self) -> str:
        return f"CacheReplay({self.func_name!r}, namespace={self.namespace!r})"


class _Replay:
    """Runs on the worker in place of a bypassed function: ``provider(tag, data_path, *args, **kwargs)``.

    One per (provider, data path), so Ray exports it once per function; the
    tag is read from the call itself, so only the call's own arguments travel.
    """

    def __init__(self, provider: Callable[..., Any], data_path: str | None) -> None:
        self.provider = provider
        self.data_path = data_path
        self.provider_name = _callable_name(provider)
        self.__name__ = getattr(provider, "__name__", "provider")
        self.reads_cache = isinstance(provider, CacheReplay)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call = current_call()
        return self.provider(None if call is None else call.tag, self.data_path, *args, **kwargs)


@dataclass(frozen=True, slots=True)
class _ParsedState:
    yaml_path: str | None
    rules: dict[str, BypassRule]
    providers: dict[str, Callable[..., Any]]
    conds: dict[str, Callable[..., Any]]
    roots: tuple[str, ...]
    file_server: Any


def _state_mapping(state: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = state.get(key) or {}
    if not isinstance(value, Mapping):
        raise ValueError(f"Bypass state key {key!r} must map function names to values, got {value!r:.100}")
    return value


def _state_callables(state: Mapping[str, Any], key: str) -> dict[str, Callable[..., Any]]:
    loaded: dict[str, Callable[..., Any]] = {}
    for name, blob in _state_mapping(state, key).items():
        function = ray.cloudpickle.loads(blob) if isinstance(blob, (bytes, bytearray)) else blob
        if not callable(function):
            raise ValueError(f"Bypass state key {key!r}: the entry for {name!r} is not a callable: {function!r:.100}")
        loaded[str(name)] = function
    return loaded


def _state_patterns(name: str, patterns: Any) -> tuple[re.Pattern[str], ...] | None:
    if patterns is None:
        return None
    if isinstance(patterns, str) or not isinstance(patterns, (list, tuple)):
        raise ValueError(
            f"Bypass state key 'tags': the entry for {name!r} must be a list of patterns, got {patterns!r}"
        )
    try:
        return tuple(re.compile(pattern) for pattern in patterns)
    except (re.error, TypeError) as exc:
        raise ValueError(f"Bypass state key 'tags': the entry for {name!r} has an invalid pattern: {exc}") from None


def _parse_state(state: Any) -> _ParsedState:
    """Read a state of either layout: chia 0.1's (``format: 1``, ``rules``) or the reference's."""
    if not isinstance(state, Mapping):
        raise ValueError(f"not a Bypass state dict (from get_state()): {state!r:.200}")
    if state.get("format") == 1 and "rules" in state:
        old = _state_mapping(state, "rules")
        flags: Mapping[str, Any]
        data: Mapping[str, Any]
        tags: Mapping[str, Any]
        flags = {key: entry["bypass"] for key, entry in old.items()}
        data = {key: entry["data"] for key, entry in old.items() if entry.get("data") is not None}
        tags = {key: entry["tags"] for key, entry in old.items() if entry.get("tags") is not None}
    else:
        flags, data, tags = (
            _state_mapping(state, "bypass"),
            _state_mapping(state, "data"),
            _state_mapping(state, "tags"),
        )
    rules: dict[str, BypassRule] = {}
    for key in dict.fromkeys([*flags, *data, *tags]):
        path = data.get(key)
        if path is not None and not isinstance(path, str):
            raise ValueError(f"Bypass state key 'data': the entry for {key!r} must be a path string, got {path!r}")
        absolute = None if path is None else os.path.abspath(os.path.expanduser(path))
        rules[str(key)] = BypassRule(
            str(key), bool(flags.get(key, False)), path, _state_patterns(key, tags.get(key)), absolute
        )
    roots = state.get("roots")
    if roots is None:  # the reference's state: admit what it names, as its own server would read them
        yaml_path = state.get("yaml_path")
        extra = [rule.data_abspath for rule in rules.values() if rule.data_abspath is not None]
        roots = real_roots([*extra, *([os.path.dirname(os.path.abspath(yaml_path))] if yaml_path else [])])
    return _ParsedState(
        yaml_path=state.get("yaml_path"),
        rules=rules,
        providers=_state_callables(state, "providers"),
        conds=_state_callables(state, "conds"),
        roots=tuple(roots),
        file_server=state.get("file_server"),
    )


class Bypass:
    """Controls which ChiaFunction tasks return pre-recorded data. Stable.

    Create one instance per loop run, always, as part of setup::

        bypass = Bypass(yaml_path=args.bypass_config)

    If ``yaml_path`` is None, bypass does nothing: :meth:`is_bypassed`
    returns False for all functions. Otherwise the YAML is validated at once
    (:class:`BypassConfigError` names the file, function and key) and
    functions listed with ``bypass: true`` are bypassed when they also have a
    provider or a data path. The constructor makes this instance the active
    bypass; ``chia_remote`` consults it automatically.

    ``allowed_roots`` adds directories or files the :meth:`file_server` may
    read, besides the YAML file's directory and the listed data paths.

    ``bypass:`` keys that name no ``@ChiaFunction`` known by the first
    ``chia_remote`` after construction warn (:class:`UnknownFunctionWarning`,
    with the closest known names); so does :meth:`set_provider` for a name the
    YAML does not configure. ``strict=True`` raises
    :class:`UnknownFunctionError` instead (from that ``chia_remote``, or from
    ``set_provider``).
    """

    def __init__(
        self,
        yaml_path: str | os.PathLike[str] | None = None,
        *,
        allowed_roots: Iterable[str | os.PathLike[str]] = (),
        strict: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._yaml_path: str | None = None
        self._rules: Mapping[str, BypassRule] = {}
        self._providers: dict[str, Callable[..., Any]] = {}
        self._conds: dict[str, Callable[..., Any]] = {}
        self._warned: set[str] = set()
        self._replays: dict[tuple[Callable[..., Any], str | None], _Replay] = {}
        self._file_server: ActorProxy[BypassServer] | None = None
        self._is_active = False
        self._strict = strict
        extra_roots = [os.path.abspath(os.fspath(root)) for root in allowed_roots]
        if yaml_path is not None:
            config = load_config(yaml_path)
            assert config.path is not None
            self._yaml_path = config.path
            self._rules = config.bypass
            extra_roots += [os.path.dirname(config.path)]
            extra_roots += [rule.data_abspath for rule in config.bypass.values() if rule.data_abspath is not None]
        self._roots = real_roots(extra_roots)
        self._is_active = any(rule.enabled for rule in self._rules.values())
        check_keys_later(self._yaml_path or "Bypass()", "bypass", self._rules, strict=strict)
        state = live_state.bypass
        with state.active_lock:
            state.active = self
            state.active_task = bypass_sync.created_in_task()
            self._publish()

    def __repr__(self) -> str:
        enabled = sorted(key for key, rule in self._rules.items() if rule.enabled)
        return f"Bypass(yaml_path={self._yaml_path!r}, bypassed={enabled!r})"

    # --- configuration -------------------------------------------------------------

    @property
    def active(self) -> bool:
        """True iff at least one function has ``bypass: true``. Stable."""
        return self._is_active

    def set_provider(self, func_name: str, provider: Callable[..., Any]) -> None:
        """Register a provider for ``func_name`` (its ``__name__`` or ``module.qualname``). Stable.

        The provider runs on the worker, in a task scheduled with the
        function's own options (resources, placement group...), and replaces
        the real function when it is bypassed. It is called as::

            provider(tag, data_path, *args, **kwargs) -> return_value

        ``tag`` is the caller's ``_chia_tag`` (str or None), ``data_path``
        the YAML ``data`` field as an absolute path (or None), and
        ``*args, **kwargs`` the original arguments. The provider must pickle
        and take that call (``TypeError`` here otherwise, showing the
        expected convention). A ``func_name`` the YAML does not configure
        warns (:class:`UnknownFunctionWarning`; ``UnknownFunctionError`` with
        ``strict=True``).
        """
        self._register(self._providers, "provider", func_name, provider)

    def set_cond(self, func_name: str, cond: Callable[..., Any]) -> None:
        """Register a bypass condition for ``func_name``. Stable.

        The condition is the last gate of :meth:`is_bypassed`, evaluated on
        the caller after the bypass flag, the provider/data check and the tag
        patterns, with the provider's arguments::

            cond(tag, data_path, *args, **kwargs) -> bool

        A falsy return means the call runs for real. With no condition the
        default is to bypass. Example: only replay what the cache holds::

            def cache_hit(tag, data_path, *args, **kwargs):
                return ray.get(get_active_cache().has.remote(tag))

            bypass.set_cond("run_verilator_test", cache_hit)
        """
        self._register(self._conds, "condition", func_name, cond)

    def replay_from_cache(self, func_name: str, *, on_miss: str = "run", namespace: str | None = None) -> None:
        """Make ``func_name``'s bypass replay what the cache holds for the call's tag. Stable.

        The one-call form of the "replay from the cache" provider users used
        to copy into every loop. The function must be configured
        ``bypass: true`` in the YAML (and is usually ``cache: true`` too, so
        real runs fill the cache). ``on_miss`` says what an untagged or
        uncached call does:

        * ``"run"`` (default): it runs for real (a condition checks the
          cache on the caller first; its result is then written to the cache
          if the function is ``cache: true``);
        * ``"fail"``: its ``get()`` raises ``KeyError`` naming the function
          and the tag; nothing runs for real.

        ``namespace`` is the cache's Ray namespace (default: as
        ``get_active_cache()``). Replayed values are not written back.
        """
        if on_miss not in ("run", "fail"):
            raise ValueError(f"replay_from_cache: on_miss must be 'run' or 'fail', got {on_miss!r}")
        replay = CacheReplay(func_name, namespace)
        self.set_provider(func_name, replay)
        if on_miss == "run":
            self.set_cond(func_name, replay.is_cached)
        else:
            with self._lock:
                self._conds.pop(func_name, None)
            self._changed()

    def _register(
        self, registry: dict[str, Callable[..., Any]], kind: str, func_name: str, function: Callable[..., Any]
    ) -> None:
        if not isinstance(func_name, str) or not func_name:
            raise TypeError(f"bypass {kind} needs a function name (str), got {func_name!r}")
        if not callable(function):
            raise TypeError(f"bypass {kind} for {func_name!r} must be callable, got {function!r}")
        check_callable_signature(kind, func_name, function, _callable_name(function))
        if not configured(self._rules, func_name):
            report_unconfigured(self._yaml_path, kind, func_name, self._rules, strict=self._strict)
        _dump_callable(kind, func_name, function)
        with self._lock:
            registry[func_name] = function
            self._warned.discard(func_name)
            self._replays = {}
        self._changed()

    # --- decisions ---------------------------------------------------------------

    def is_bypassed(self, func_name: str, tag: str | None = None, *args: Any, **kwargs: Any) -> bool:
        """Should ``func_name`` be bypassed on this call? Stable.

        True only when all hold, in this order:

        1. the YAML says ``bypass: true`` for the function;
        2. it has a provider or a data path (otherwise a warning naming the
           function is logged once and the call runs for real);
        3. with a ``tags`` list, ``tag`` ``re.fullmatch``-es one pattern;
        4. a registered condition returns truthy for ``(tag, data_path,
           *args, **kwargs)``; it may do remote work (e.g. a cache lookup).

        ``func_name`` is a ``__name__`` or a ``module.qualname``. Functions
        not listed, and every function when no YAML was loaded, are not
        bypassed.
        """
        return self._decide(func_name, None, tag, args, kwargs) is not None

    def _decide(
        self, name: str, qualname: str | None, tag: str | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[Callable[..., Any], str | None] | None:
        rule = lookup_rule(self._rules, name, qualname)
        if rule is None or not rule.enabled:
            return None
        provider = lookup_rule(self._providers, name, qualname)
        if provider is None and rule.data_path is None:
            if rule.key not in self._warned:
                self._warned.add(rule.key)
                logger.warning(
                    "function %r is configured bypass: true in %s but has neither a provider (set_provider) "
                    "nor a 'data' path; it runs for real",
                    rule.key,
                    self._yaml_path,
                )
            return None
        if not rule.matches_tag(tag):
            return None
        cond = lookup_rule(self._conds, name, qualname)
        if cond is not None and not cond(tag, rule.data_path, *args, **kwargs):
            return None
        return (provider or _default_file_provider), rule.data_path

    def get_provider_info(self, func_name: str) -> tuple[Callable[..., Any], str | None]:
        """Return ``(provider, data_path)`` for dispatching on the worker. Stable.

        A registered provider comes with the data path (or None); with only a
        data path the default file provider (returns the file's text, read
        through :meth:`file_server`) is returned. Neither: ``KeyError``
        naming the function. Nothing runs here.
        """
        rule = lookup_rule(self._rules, func_name)
        data_path = rule.data_path if rule is not None else None
        provider = lookup_rule(self._providers, func_name)
        if provider is not None:
            return provider, data_path
        if data_path is not None:
            return _default_file_provider, data_path
        raise KeyError(f"function {func_name!r} has no bypass provider (set_provider) and no 'data' path in the YAML")

    def _on_dispatch(self, call: DispatchCall, /) -> ObjectRef[Any] | None:
        """Dispatch hook body: submit the provider with the call's own options."""
        if not self._is_active:
            return None
        decision = self._decide(call.name, call.qualname, call.tag, call.args, call.kwargs)
        if decision is None:
            return None
        replay = self._replays.get(decision)
        if replay is None:
            replay = self._replays.setdefault(decision, _Replay(*decision))
        if replay.reads_cache:
            call.context.pop(WRITE_KEY, None)  # a value replayed from the cache is not written back
            call.context.pop(NAMESPACE_KEY, None)
            call.outcome = CACHE_HIT  # what observers of the seam (a chia_wait Sweep) count as a cache hit
        if call.context or call.tag is not None:
            # Context costs a Ray argument per call, so bypass never makes a call
            # ship it alone: it joins context that travels anyway (the tag, the
            # profiler's call id). CallInfo.replaced marks every bypassed call.
            call.context["bypass.bypassed"] = True
            call.context["bypass.provider"] = replay.provider_name
        return call.submit(replay, *call.args, **call.kwargs)

    # --- file server ----------------------------------------------------------------

    def file_server(self) -> ActorProxy[BypassServer]:
        """Return the bypass file server actor handle, creating it if needed. Stable.

        The server runs on the node that owns this Bypass (the driver's) and
        reads only inside the allowed roots: the YAML file's directory, the
        listed data paths and ``allowed_roots``; any other path, including
        ``..`` tricks and symlinks out, raises ``PermissionError``. Methods:
        ``get_text(path)`` (UTF-8) and ``get_bytes(path)`` (absolute
        paths). Providers use it to read files that live on that node::

            def my_provider(tag, data_path, *args, **kwargs):
                server = get_active_bypass().file_server()
                text = ray.get(server.get_text.remote(data_path))
        """
        if self._file_server is None:
            token = bypass_sync.task_token()
            if token is not None:
                self._file_server = bypass_sync.task_server(token)
            else:
                # Wait until the server admits the roots: an async actor may run
                # calls out of order, so a read sent right after could overtake them.
                self._file_server = bypass_sync.add_roots(self._roots, wait=True)
        return self._file_server

    # --- state ------------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Return a serializable dict of the bypass state, including providers. Stable.

        The layout is the reference's, so a state saved by either loads in
        the other: ``yaml_path``; ``bypass`` (function -> its YAML flag),
        ``data`` (function -> the ``data`` value as written) and ``tags``
        (function -> its patterns); ``providers`` and ``conds`` (function ->
        the callable serialized with cloudpickle, Ray's default: module-level
        functions and closures over picklable values work, others fail with
        a ``TypeError`` naming them); ``file_server``, the file server's
        handle (when Ray is running), so workers read files from the node
        that owns this Bypass. chia adds ``roots`` (what the file server may
        read) and ``chia_state`` (its format number); both are optional on
        load.
        """
        with self._lock:
            providers = dict(self._providers)
            conds = dict(self._conds)
            rules = dict(self._rules)
        return {
            "yaml_path": self._yaml_path,
            "bypass": {key: rule.enabled for key, rule in rules.items()},
            "data": {key: rule.data_path for key, rule in rules.items() if rule.data_path is not None},
            "tags": {
                key: [pattern.pattern for pattern in rule.tag_patterns]
                for key, rule in rules.items()
                if rule.tag_patterns is not None
            },
            "providers": {name: _dump_callable("provider", name, fn) for name, fn in providers.items()},
            "conds": {name: _dump_callable("condition", name, fn) for name, fn in conds.items()},
            # Workers read files only after loading this state, which the server
            # publishes with the roots: no need to wait for them here.
            "file_server": bypass_sync.add_roots(self._roots) if ray.is_initialized() else None,
            "roots": list(self._roots),
            "chia_state": _STATE_FORMAT,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore bypass state from a dict returned by :meth:`get_state` (chia's or the reference's). Stable.

        Providers and conditions may be cloudpickled bytes or callables. A
        dict of another shape raises ``ValueError`` naming the key at fault.
        """
        parsed = _parse_state(state)
        with self._lock:
            self._yaml_path = parsed.yaml_path
            self._rules = parsed.rules
            self._providers = parsed.providers
            self._conds = parsed.conds
            self._roots = parsed.roots
            self._warned = set()
            self._replays = {}
            self._file_server = parsed.file_server
            self._is_active = any(rule.enabled for rule in parsed.rules.values())
        self._changed()

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> Bypass:
        """A worker's copy of the driver's bypass (not made the driver's active one)."""
        bypass = cls.__new__(cls)
        bypass._lock = threading.Lock()
        bypass._providers, bypass._conds, bypass._rules = {}, {}, {}
        bypass._is_active = False
        bypass._strict = False
        bypass.load_state(state)
        return bypass

    def _snapshot(self) -> tuple[Callable[[Any], Bypass], Any]:
        """Worker snapshot of this bypass: ``(loader, state)``."""
        return Bypass._from_state, self.get_state()

    # --- publication ----------------------------------------------------------------

    def _changed(self) -> None:
        if live_state.bypass.active is self:
            self._publish()

    def _publish(self) -> None:
        bypass_sync.set_section(_SECTION, _SECTION_ORDER, self if self._is_active else None)
