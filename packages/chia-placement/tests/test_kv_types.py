"""Pins the public signatures of chia.base.chia_kv_store (checked by mypy --strict; also run by pytest)."""

from __future__ import annotations

from typing import Any, assert_type

from ray.actor import ActorHandle

from chia.base.chia_kv_store import (
    ChiaKVStore,
    attach_kv_store,
    find_kv_stores,
    get_or_create_kv_store,
    main,
    parse_kv_value,
    query_kv,
)


def test_store_functions_have_their_documented_types(kv_name: tuple[str, str]) -> None:
    name, namespace = kv_name
    handle = get_or_create_kv_store(name, namespace, persist_path=None, num_parallel=2)
    assert_type(handle, ActorHandle[ChiaKVStore])
    assert_type(attach_kv_store(name, namespace), ActorHandle[ChiaKVStore])
    assert_type(query_kv(handle, "num_parallel", default=1, timeout=5.0), Any)
    assert_type(query_kv(None, "num_parallel"), Any)
    assert_type(main(["--name", name, "--namespace", namespace, "--list"]), int)
    assert_type(find_kv_stores(name), list[tuple[str, str]])
    assert find_kv_stores(name, namespace) == [(name, namespace)]
    assert find_kv_stores(namespace="no-such-namespace") == []


def test_operator_values_are_literals_or_text_never_code() -> None:
    assert_type(parse_kv_value("4"), Any)
    assert parse_kv_value("4") == 4 and parse_kv_value("0.5") == 0.5
    assert parse_kv_value("true") is True and parse_kv_value("None") is None
    assert parse_kv_value("[1, 2]") == [1, 2] and parse_kv_value('{"a": 1}') == {"a": 1}
    assert parse_kv_value("fast") == "fast"
    assert parse_kv_value("__import__('os').getcwd()") == "__import__('os').getcwd()"
