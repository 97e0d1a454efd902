"""Pins the public signatures of chia.base.chia_kv_store (checked by mypy --strict; also run by pytest)."""

from __future__ import annotations

from typing import Any, assert_type

from ray.actor import ActorHandle

from chia.base.chia_kv_store import ChiaKVStore, attach_kv_store, get_or_create_kv_store, main, query_kv


def test_store_functions_have_their_documented_types(kv_name: tuple[str, str]) -> None:
    name, namespace = kv_name
    handle = get_or_create_kv_store(name, namespace, persist_path=None, num_parallel=2)
    assert_type(handle, ActorHandle[ChiaKVStore])
    assert_type(attach_kv_store(name, namespace), ActorHandle[ChiaKVStore])
    assert_type(query_kv(handle, "num_parallel", default=1, timeout=5.0), Any)
    assert_type(query_kv(None, "num_parallel"), Any)
    assert_type(main(["--name", name, "--namespace", namespace, "--list"]), int)
