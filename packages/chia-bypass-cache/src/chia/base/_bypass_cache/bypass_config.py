"""Reads and validates the bypass/cache YAML file.

Owns the file format (``bypass:`` and ``cache:`` sections), its validation
errors and the parsed, frozen rules. Everything here runs without Ray.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the environment

__all__ = [
    "BypassConfigError",
    "BypassRule",
    "CacheRule",
    "ChiaConfig",
    "cache_rules_from_dict",
    "cache_rules_to_dict",
    "load_config",
    "lookup_rule",
]

_SECTIONS = ("bypass", "cache")
_BYPASS_KEYS = ("bypass", "data", "tags")
_CACHE_KEYS = ("cache", "tags")
# Function keys: a __name__ or a dotted module.qualname (module names may hold any non-space character).
_FUNCTION_KEY = re.compile(r"[^\s.]+(\.[^\s.]+)*")

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


BypassConfigError.__module__ = "chia.base.bypass"


@dataclass(frozen=True, slots=True)
class BypassRule:
    """One function's entry in the ``bypass:`` section."""

    key: str
    enabled: bool
    data_path: str | None
    tag_patterns: tuple[re.Pattern[str], ...] | None

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


class _UniqueKeyLoader(yaml.SafeLoader):  # type: ignore[misc]
    """A safe loader that refuses duplicate mapping keys (YAML would keep the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: Any, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in mapping
        except TypeError:
            duplicate = False
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

    A missing YAML file raises ``FileNotFoundError`` naming it. Relative
    ``data`` paths are resolved against the YAML file's directory and must
    exist.
    """
    path = os.path.abspath(os.fspath(yaml_path))
    try:
        with open(path, encoding="utf-8") as stream:
            document = yaml.load(stream, Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise FileNotFoundError(f"bypass/cache config file {path!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise BypassConfigError(path, f"is not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise BypassConfigError(path, f"is not UTF-8 text: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise BypassConfigError(
            path, f"must be a mapping with the sections 'bypass' and/or 'cache', got {type(document).__name__}"
        )
    for section in document:
        if section not in _SECTIONS:
            raise BypassConfigError(path, f"unknown top-level key {section!r}; valid keys: bypass, cache")
    base_dir = os.path.dirname(path)
    bypass = {
        name: _parse_bypass_entry(path, base_dir, name, value)
        for name, value in _section(path, document, "bypass").items()
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
    for key in value:
        if key not in keys:
            raise BypassConfigError(path, f"unknown key; valid keys: {', '.join(keys)}", function=name, key=str(key))
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


def _parse_bypass_entry(path: str, base_dir: str, name: str, value: object) -> BypassRule:
    entry = _entry_mapping(path, name, value, "bypass", _BYPASS_KEYS)
    data = entry.get("data")
    data_path = None
    if data is not None:
        if not isinstance(data, str) or not data:
            raise BypassConfigError(path, f"must be a non-empty path string, got {data!r}", function=name, key="data")
        data_path = os.path.normpath(os.path.join(base_dir, os.path.expanduser(data)))
        if not Path(data_path).exists():
            raise BypassConfigError(path, f"data path {data_path!r} does not exist", function=name, key="data")
    return BypassRule(name, entry["bypass"], data_path, _parse_tags(path, name, entry.get("tags")))


def _parse_cache_entry(path: str, name: str, value: object) -> CacheRule:
    entry = _entry_mapping(path, name, value, "cache", _CACHE_KEYS)
    return CacheRule(name, entry["cache"], _parse_tags(path, name, entry.get("tags")))
