"""Reads and validates the bypass/cache YAML file.

Owns the file format (``bypass:`` and ``cache:`` sections), its validation
errors and the parsed, frozen rules. Everything here runs without Ray.
"""

from __future__ import annotations

import difflib
import errno
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the environment

__all__ = [
    "BypassConfigError",
    "BypassRule",
    "CacheRule",
    "ChiaConfig",
    "cache_rules_from_config",
    "cache_rules_from_dict",
    "cache_rules_to_dict",
    "closest",
    "load_config",
    "lookup_rule",
]

_SECTIONS = ("bypass", "cache")
_BYPASS_KEYS = ("bypass", "data", "tags")
_CACHE_KEYS = ("cache", "tags")
# Function keys: a __name__ or a dotted module.qualname (module names may hold any non-space character).
_FUNCTION_KEY = re.compile(r"[^\s.]+(\.[^\s.]+)*")
# An unknown key this close to a valid one is a typo (an error); others are free-form notes (kept, ignored).
_TYPO_CUTOFF = 0.75

RuleT = TypeVar("RuleT")


class BypassConfigError(ValueError):
    """A bypass/cache YAML file is invalid. Stable.

    The message names the file, the function and the key at fault and what
    would be valid; the same facts are available as attributes (``function``
    and ``key`` are ``None`` when the problem is not inside one entry).
    """

    def __init__(self, path: str, message: str, *, function: str | None = None, key: str | None = None) -> None:
        where = path
        if function is not None:
            where += f": function {function!r}"
        if key is not None:
            where += f", key {key!r}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.function = function
        self.key = key
        self.reason = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: rebuild explicitly, so the error crosses Ray (an actor's reply) intact.
        return _rebuild_config_error, (self.path, self.reason, self.function, self.key)


def _rebuild_config_error(path: str, message: str, function: str | None, key: str | None) -> BypassConfigError:
    return BypassConfigError(path, message, function=function, key=key)


BypassConfigError.__module__ = "chia.base.bypass"


@dataclass(frozen=True, slots=True)
class BypassRule:
    """One function's entry in the ``bypass:`` section.

    ``data_path`` is the ``data`` value as written (what providers get);
    ``data_abspath`` the file it names, resolved against the working
    directory of the process that read the YAML.
    """

    key: str
    enabled: bool
    data_path: str | None
    tag_patterns: tuple[re.Pattern[str], ...] | None
    data_abspath: str | None = None

    def matches_tag(self, tag: str | None) -> bool:
        """True when the call's tag passes the ``tags`` list (always, with no list)."""
        return _matches(self.tag_patterns, tag)


@dataclass(frozen=True, slots=True)
class CacheRule:
    """One function's entry in the ``cache:`` section."""

    key: str
    enabled: bool
    tag_patterns: tuple[re.Pattern[str], ...] | None

    def matches_tag(self, tag: str | None) -> bool:
        """True when the call's tag passes the ``tags`` list (always, with no list)."""
        return _matches(self.tag_patterns, tag)


@dataclass(frozen=True, slots=True)
class ChiaConfig:
    """A parsed YAML file: both sections, keyed as written (name or module.qualname)."""

    path: str | None
    bypass: Mapping[str, BypassRule]
    cache: Mapping[str, CacheRule]


def _matches(patterns: tuple[re.Pattern[str], ...] | None, tag: str | None) -> bool:
    if patterns is None:
        return True
    if tag is None:
        return False
    return any(pattern.fullmatch(tag) for pattern in patterns)


def lookup_rule(rules: Mapping[str, RuleT], name: str, qualname: str | None = None) -> RuleT | None:
    """The rule for a function: its ``module.qualname`` key wins over its ``__name__`` key.

    ``name`` may itself be a dotted ``module.qualname``; then its last part
    is tried as the ``__name__`` key.
    """
    if qualname is not None:
        rule = rules.get(qualname)
        if rule is not None:
            return rule
    rule = rules.get(name)
    if rule is None and "." in name:
        rule = rules.get(name.rpartition(".")[2])
    return rule


def closest(word: object, valid: tuple[str, ...]) -> str | None:
    """The valid name ``word`` is most likely a typo of, if any."""
    if not isinstance(word, str):
        return None
    lowered = {name.lower(): name for name in valid}
    found = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=_TYPO_CUTOFF)
    return lowered[found[0]] if found else None


def cache_rules_to_dict(rules: Mapping[str, CacheRule]) -> dict[str, dict[str, Any]]:
    """Plain-data form of ``cache:`` rules (what the cache actor's ``get_config`` reports)."""
    return {
        key: {
            "cache": rule.enabled,
            "tags": None if rule.tag_patterns is None else [p.pattern for p in rule.tag_patterns],
        }
        for key, rule in rules.items()
    }


def cache_rules_from_dict(functions: Mapping[str, Mapping[str, Any]]) -> dict[str, CacheRule]:
    """Inverse of :func:`cache_rules_to_dict`."""
    return {
        key: CacheRule(
            key,
            bool(entry["cache"]),
            None if entry["tags"] is None else tuple(re.compile(pattern) for pattern in entry["tags"]),
        )
        for key, entry in functions.items()
    }


def cache_rules_from_config(
    config: Mapping[str, Any] | None, source: str = "Cache(config=...)"
) -> dict[str, CacheRule]:
    """Rules from what ``Cache(..., config)`` is given: the ``cache:`` section, or a whole parsed document.

    Already parsed rules pass through. Raises :class:`BypassConfigError` as the YAML loader does.
    """
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise BypassConfigError(
            source, f"must be a mapping (the YAML's cache: section or the whole document), got {config!r:.80}"
        )
    if all(isinstance(rule, CacheRule) for rule in config.values()):
        return dict(config)
    body = config.get("cache")
    if isinstance(body, Mapping) and not isinstance(body.get("cache"), bool):
        section = _section(source, config, "cache")  # the whole document
    else:
        section = _section(source, {"cache": dict(config)}, "cache")
    return {name: _parse_cache_entry(source, name, value) for name, value in section.items()}


class _UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]
    """A safe loader that refuses duplicate mapping keys (YAML would keep the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: Any, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in mapping
        except TypeError:  # a set or a mapping used as a key: YAML allows it, a dict cannot hold it
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found a {type(key).__name__} as a key; keys are function names or section names",
                key_node.start_mark,
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_config(yaml_path: str | os.PathLike[str]) -> ChiaConfig:
    """Parse and validate ``yaml_path``; raise :class:`BypassConfigError` on any problem.

    A missing YAML file raises ``FileNotFoundError`` naming it; a directory
    or an unreadable file, :class:`BypassConfigError`. ``data``
    paths are kept as written; a relative one names a file relative to this
    process's working directory, which need not exist yet. Unknown top-level
    sections and unknown per-function keys load (ignored), unless one is a
    near-miss of a valid key (``bypas``, ``dta``): that is an error naming the
    key and the valid one.
    """
    path = os.path.abspath(os.fspath(yaml_path))
    try:
        with open(path, encoding="utf-8") as stream:
            document = yaml.load(stream, Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise FileNotFoundError(f"bypass/cache config file {path!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise BypassConfigError(path, f"is not valid YAML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError as exc:
        raise BypassConfigError(path, f"is not UTF-8 text: {exc}") from None
    except IsADirectoryError:
        raise BypassConfigError(path, "is a directory; give the YAML file in it") from None
    except OSError as exc:
        raise BypassConfigError(path, f"cannot be read: {exc.strerror or exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise BypassConfigError(
            path, f"must be a mapping with the sections 'bypass' and/or 'cache', got {type(document).__name__}"
        )
    for section in document:
        if section not in _SECTIONS:
            typo_of = closest(section, _SECTIONS)
            if typo_of is not None:
                raise BypassConfigError(
                    path,
                    f"unknown top-level key {section!r}: did you mean {typo_of!r}? (valid sections: bypass, cache)",
                )
    bypass = {
        name: _parse_bypass_entry(path, name, value) for name, value in _section(path, document, "bypass").items()
    }
    cache = {name: _parse_cache_entry(path, name, value) for name, value in _section(path, document, "cache").items()}
    return ChiaConfig(path, bypass, cache)


def _section(path: str, document: Mapping[Any, Any], section: str) -> dict[str, Any]:
    body = document.get(section)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BypassConfigError(
            path, f"section {section!r} must map function names to entries, got {type(body).__name__}"
        )
    for name in body:
        if not isinstance(name, str) or not _FUNCTION_KEY.fullmatch(name):
            hint = (
                " (YAML reads yes/no/on/off/true/false as booleans: quote the name)" if isinstance(name, bool) else ""
            )
            raise BypassConfigError(
                path,
                f"section {section!r} has an invalid function key {name!r}; "
                f"use the function's __name__ or its 'module.qualname'{hint}",
            )
    return body


def _entry_mapping(path: str, name: str, value: object, flag: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if isinstance(value, bool):
        return {flag: value}
    if not isinstance(value, dict):
        raise BypassConfigError(
            path,
            f"entry must be true, false or a mapping with keys {', '.join(keys)}; got {value!r}",
            function=name,
        )
    other_section = _CACHE_KEYS if flag == "bypass" else _BYPASS_KEYS
    for key in value:
        if key not in keys and key in other_section:
            raise BypassConfigError(
                path,
                f"is a key of the {'cache' if flag == 'bypass' else 'bypass'}: section, not of {flag}: "
                f"(valid keys here: {', '.join(keys)})",
                function=name,
                key=str(key),
            )
        if key not in keys:
            typo_of = closest(key, keys)
            if typo_of is not None:
                raise BypassConfigError(
                    path,
                    f"unknown key: did you mean {typo_of!r}? (valid keys: {', '.join(keys)}; "
                    "other keys are free-form notes and are ignored)",
                    function=name,
                    key=str(key),
                )
    if flag not in value:
        raise BypassConfigError(path, f"missing; set {flag}: true or {flag}: false", function=name, key=flag)
    if not isinstance(value[flag], bool):
        raise BypassConfigError(
            path, f"must be true or false, got {value[flag]!r} ({type(value[flag]).__name__})", function=name, key=flag
        )
    return value


def _parse_tags(path: str, name: str, value: object) -> tuple[re.Pattern[str], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise BypassConfigError(
            path,
            f"must be a non-empty list of regular expressions (omit it to match every call), got {value!r}",
            function=name,
            key="tags",
        )
    patterns = []
    for pattern in value:
        if not isinstance(pattern, str):
            raise BypassConfigError(path, f"pattern {pattern!r} is not a string", function=name, key="tags")
        try:
            patterns.append(re.compile(pattern))
        except re.error as exc:
            raise BypassConfigError(
                path, f"pattern {pattern!r} is not a valid regular expression: {exc}", function=name, key="tags"
            ) from None
    return tuple(patterns)


def _parse_bypass_entry(path: str, name: str, value: object) -> BypassRule:
    entry = _entry_mapping(path, name, value, "bypass", _BYPASS_KEYS)
    data = entry.get("data")
    data_abspath = None
    if data is not None:
        if not isinstance(data, str) or not data:
            raise BypassConfigError(path, f"must be a non-empty path string, got {data!r}", function=name, key="data")
        data_abspath = _check_data_path(path, name, data)
    return BypassRule(name, entry["bypass"], data, _parse_tags(path, name, entry.get("tags")), data_abspath)


def _check_data_path(path: str, name: str, data: str) -> str:
    """The file ``data`` names (it may not exist yet); refuse what could never be opened."""
    if "\0" in data:
        raise BypassConfigError(path, f"path {data!r} contains a NUL byte", function=name, key="data")
    resolved = os.path.abspath(os.path.expanduser(data))
    try:
        os.stat(resolved)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise BypassConfigError(
                path,
                f"path {data!r} is too long for the filesystem ({len(resolved)} characters resolved; "
                "each name must stay under the filesystem's limit, usually 255 bytes); use a shorter path",
                function=name,
                key="data",
            ) from None
    return resolved


def _parse_cache_entry(path: str, name: str, value: object) -> CacheRule:
    entry = _entry_mapping(path, name, value, "cache", _CACHE_KEYS)
    return CacheRule(name, entry["cache"], _parse_tags(path, name, entry.get("tags")))
