"""Checks a configuration's function names and providers against the ChiaFunctions this process knows.

Owns :class:`UnknownFunctionWarning` and :class:`UnknownFunctionError`, the
closest-name suggestions, the deferred check of YAML keys (names unknown when
a configuration becomes active are checked again at the first dispatch after
it, through a one-shot dispatch hook), and the provider signature check.
Nothing here runs on the dispatch path once that first dispatch is past.
"""

from __future__ import annotations

import difflib
import inspect
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chia.base._bypass_cache.bypass_config import BypassConfigError
from chia.base._bypass_cache.state import live_state
from chia.base.dispatch_hooks import DispatchCall, KnownFunction, add_dispatch_hook, known_functions

if TYPE_CHECKING:
    from ray import ObjectRef

__all__ = [
    "PendingNames",
    "UnknownFunctionError",
    "UnknownFunctionWarning",
    "check_callable_signature",
    "check_keys",
    "check_keys_later",
    "configured",
    "report_unconfigured",
    "unknown_keys",
]

# Before bypass_sync's hook (50): the names are reported before anything is bypassed or cached.
_HOOK_PRIORITY = 10
_SUGGESTIONS = 3
# Frames of these modules are skipped when a warning looks for the user's line.
_CHIA_MODULES = ("chia.base.", "chia.cli.")
_SUGGESTION_CUTOFF = 0.6


class UnknownFunctionWarning(UserWarning):
    """A bypass/cache YAML key, or a ``set_provider``/``set_cond`` name, names no ChiaFunction. Stable.

    The message names the YAML file, the section and the key, and the
    closest known names. ``strict=True`` (``Bypass``, ``start_cache``;
    ``chia run --strict``) raises :class:`UnknownFunctionError` instead.
    """


class UnknownFunctionError(BypassConfigError):
    """What :class:`UnknownFunctionWarning` becomes under ``strict=True``. Stable.

    A :class:`BypassConfigError` (so a ``ValueError``): ``path`` is the YAML
    file (or ``"Bypass()"`` without one), ``function`` the first name at
    fault; ``names`` holds every name at fault.
    """

    def __init__(self, path: str, message: str, *, function: str | None = None, key: str | None = None) -> None:
        super().__init__(path, message, function=function, key=key)
        self.names: tuple[str, ...] = () if function is None else (function,)

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_unknown_error, (self.path, self.reason, self.function, self.key, self.names)


def _rebuild_unknown_error(
    path: str, message: str, function: str | None, key: str | None, names: tuple[str, ...]
) -> UnknownFunctionError:
    error = UnknownFunctionError(path, message, function=function, key=key)
    error.names = names
    return error


UnknownFunctionWarning.__module__ = "chia.base.bypass"
UnknownFunctionError.__module__ = "chia.base.bypass"


def _names(known: Iterable[KnownFunction]) -> set[str]:
    names: set[str] = set()
    for function in known:
        names.add(function.name)
        names.add(function.qualname)
    return names


def _closest(name: str, candidates: Iterable[str]) -> list[str]:
    pool = sorted(set(candidates))
    # A dotted key (module.qualname) is also compared by its last part, against the plain names.
    short = name.rpartition(".")[2]
    found = difflib.get_close_matches(name, pool, n=_SUGGESTIONS, cutoff=_SUGGESTION_CUTOFF)
    if short != name:
        found += difflib.get_close_matches(short, pool, n=_SUGGESTIONS, cutoff=_SUGGESTION_CUTOFF)
    return list(dict.fromkeys(found))[:_SUGGESTIONS]


def _hint(name: str, candidates: Iterable[str]) -> str:
    close = _closest(name, candidates)
    if close:
        return "did you mean " + " or ".join(repr(candidate) for candidate in close) + "?"
    return "no known name is close"


def unknown_keys(
    section: str, keys: Iterable[str], known: Iterable[KnownFunction] | None = None
) -> list[tuple[str, str]]:
    """``(key, message)`` for each key of ``section`` naming no known ChiaFunction (``__name__`` or ``module.qualname``)."""
    names = _names(known_functions() if known is None else known)
    plain = {name for name in names if "." not in name}
    return [
        (key, f"section {section!r}: key {key!r} names no @ChiaFunction defined in this process; {_hint(key, plain)}")
        for key in keys
        if key not in names
    ]


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside chia (the user's call)."""
    level = 1
    frame = sys._getframe(1)
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(_CHIA_MODULES):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _report(path: str, sections: Mapping[str, Iterable[str]], *, strict: bool) -> None:
    unknown = [found for section, keys in sections.items() for found in unknown_keys(section, keys)]
    if not unknown:
        return
    if strict:
        error = UnknownFunctionError(path, "; ".join(message for _, message in unknown), function=unknown[0][0])
        error.names = tuple(key for key, _ in unknown)
        raise error
    for _, message in unknown:
        warnings.warn(f"{path}: {message}", UnknownFunctionWarning, stacklevel=_user_stacklevel())


@dataclass(frozen=True, slots=True)
class PendingNames:
    """Keys of one section that named no known ChiaFunction when their configuration became active."""

    path: str
    section: str
    keys: tuple[str, ...]
    strict: bool


def check_keys(path: str, sections: Mapping[str, Iterable[str]], *, strict: bool) -> None:
    """Report now every key of ``sections`` (name -> keys) that names no known ChiaFunction."""
    _report(path, sections, strict=strict)


def check_keys_later(path: str, section: str, keys: Iterable[str], *, strict: bool) -> None:
    """Check ``section``'s keys at the first dispatch from now, when the loop has defined its functions.

    Keys naming a function known now are settled at once; nothing is kept
    when all are. A later activation of the same section replaces what was
    pending for it.
    """
    names = _names(known_functions())
    unknown = tuple(key for key in keys if key not in names)
    state = live_state.bypass
    with state.lock:
        if not unknown:
            state.pending_names.pop(section, None)
            return
        state.pending_names[section] = PendingNames(path, section, unknown, strict)
        if state.remove_names_hook is None:
            state.remove_names_hook = add_dispatch_hook(_check_at_first_dispatch, priority=_HOOK_PRIORITY)


def _check_at_first_dispatch(call: DispatchCall, /) -> ObjectRef[Any] | None:
    """One-shot dispatch hook: report the keys still unknown, then remove itself."""
    state = live_state.bypass
    with state.lock:
        pending = list(state.pending_names.values())
        state.pending_names.clear()
        if state.remove_names_hook is not None:
            state.remove_names_hook()
            state.remove_names_hook = None
    for names in pending:
        _report(names.path, {names.section: names.keys}, strict=names.strict)
    return None


def configured(rules: Mapping[str, object], name: str) -> bool:
    """Whether ``name`` (a ``__name__`` or ``module.qualname``) is a function the rules configure."""
    if name in rules:
        return True
    short = name.rpartition(".")[2]
    return short in rules or any(key.rpartition(".")[2] == name for key in rules)


def report_unconfigured(path: str | None, kind: str, name: str, rules: Mapping[str, object], *, strict: bool) -> None:
    """Warn (or raise, ``strict``) that ``set_provider``/``set_cond`` got a name the YAML does not configure."""
    where = path if path is not None else "Bypass()"
    listed = ", ".join(sorted(rules)) or "none"
    hint = _hint(name, rules) if rules else "load a YAML that lists it"
    message = (
        f"bypass {kind} for {name!r}: the YAML configures no function of that name, so it is never used "
        f"(configured: {listed}); {hint}"
    )
    if strict:
        raise UnknownFunctionError(where, message, function=name)
    warnings.warn(f"{where}: {message}", UnknownFunctionWarning, stacklevel=_user_stacklevel())


def _candidates(name: str) -> list[KnownFunction]:
    """The known functions ``name`` may designate: the one of that qualname, else all of that ``__name__``, latest first."""
    known = known_functions()
    exact = [function for function in known if function.qualname == name]
    if exact:
        return exact
    short = name.rpartition(".")[2]
    return [function for function in reversed(known) if function.name == short]


def _plain(signature: inspect.Signature) -> str:
    """``(config, cores, *, verbose=False)``: the signature without annotations."""
    empty = inspect.Signature.empty
    params = [p.replace(annotation=empty) for p in signature.parameters.values()]
    return str(signature.replace(parameters=params, return_annotation=empty))


def _required(signature: inspect.Signature) -> tuple[list[str], list[str]]:
    """The required positional and keyword-only parameter names of ``signature``."""
    positional = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    keyword = [p.name for p in signature.parameters.values() if p.default is p.empty and p.kind is p.KEYWORD_ONLY]
    return positional, keyword


def check_callable_signature(kind: str, name: str, function: Callable[..., Any], display: str) -> None:
    """Refuse a provider or condition that cannot take ``(tag, data_path, *args, **kwargs)`` of ``name``'s calls.

    Checked: a call of the bypassed function with its required arguments,
    positional ones passed positionally. When several ``@ChiaFunction`` functions
    share the name (and ``name`` is not a ``module.qualname``), fitting one
    of them is enough. A function not defined yet leaves only ``(tag,
    data_path)`` to check; a callable without a signature is not checked.
    """
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    targets = [target for target in _candidates(name) if target.signature is not None]
    if not targets:
        try:
            signature.bind_partial(None, None)
        except TypeError as exc:
            raise TypeError(
                f"bypass {kind} {display} for function {name!r} cannot take its calls: a {kind} is called as "
                f"{kind}(tag, data_path, *args, **kwargs); {display}{_plain(signature)} refuses that ({exc})"
            ) from None
        return
    refusals: list[tuple[KnownFunction, inspect.Signature, list[str], list[str], TypeError]] = []
    for target in targets:
        assert target.signature is not None
        positional, keyword = _required(target.signature)
        try:
            signature.bind(None, None, *positional, **dict.fromkeys(keyword))
            return
        except TypeError as refused:
            refusals.append((target, target.signature, positional, keyword, refused))
    target, target_signature, positional, keyword, reason = refusals[0]  # the latest defined
    call_args = ", ".join(["tag", "data_path", *positional, *(f"{k}={k}" for k in keyword)])
    raise TypeError(
        f"bypass {kind} {display} for function {name!r} cannot take its calls: a {kind} is called as "
        f"{kind}(tag, data_path, *args, **kwargs) with the arguments of {target.qualname}{_plain(target_signature)}, "
        f"e.g. {kind}({call_args}); {display}{_plain(signature)} refuses that ({reason})"
    ) from None
