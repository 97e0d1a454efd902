"""``chia kv``, ``chia cache`` and ``chia bypass`` against the real chia-placement and chia-bypass-cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from click.testing import CliRunner

from chia.cli.main import cli

kv_store = pytest.importorskip("chia.base.chia_kv_store")
cache = pytest.importorskip("chia.base.cache")


@pytest.fixture
def knobs(cluster: Any) -> Iterator[list[str]]:
    kv_store.get_or_create_kv_store(name="cli_knobs", namespace="chia-ops-kv", num_parallel=2)
    yield ["--name", "cli_knobs", "--namespace", "chia-ops-kv"]
    ray.kill(ray.get_actor("cli_knobs", namespace="chia-ops-kv"))


@pytest.mark.ray_compat
def test_kv_get_set_list_delete(knobs: list[str]) -> None:
    runner = CliRunner()
    got = runner.invoke(cli, ["kv", "get", "num_parallel", *knobs])
    assert got.exit_code == 0 and got.stdout.strip() == "2"
    changed = runner.invoke(cli, ["kv", "set", "num_parallel", "4", *knobs])
    assert changed.exit_code == 0 and changed.stdout.startswith("num_parallel = 4  (version ")
    version = changed.stdout.split("version ")[1].rstrip(")\n")
    stale = runner.invoke(cli, ["kv", "set", "num_parallel", "8", "--if-version", "1", *knobs])
    assert stale.exit_code == 6 and "it changed since you read it" in stale.stderr
    applied = runner.invoke(cli, ["kv", "set", "num_parallel", "8", "--if-version", version, *knobs])
    assert applied.exit_code == 0
    runner.invoke(cli, ["kv", "set", "stage", "warmup", *knobs])
    listed = runner.invoke(cli, ["kv", "list", *knobs]).stdout.splitlines()
    assert [line.split("  (")[0] for line in listed] == ["num_parallel = 8", "stage = 'warmup'"]
    assert runner.invoke(cli, ["kv", "delete", "stage", *knobs]).exit_code == 0
    unset = runner.invoke(cli, ["kv", "get", "stage", *knobs])
    assert unset.exit_code == 5 and "key 'stage' is not set" in unset.stderr


def test_kv_missing_store_and_usage(cluster: Any) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli, ["kv", "list", "--name", "absent", "--namespace", "nowhere"])
    assert missing.exit_code == 5 and "no KV store actor named 'absent' in Ray namespace 'nowhere'" in missing.stderr
    conflict = runner.invoke(cli, ["kv", "set", "never", "1", "--if-version", "3", "--name", "absent"])
    assert conflict.exit_code == 5  # the store is missing before any version is compared
    none_there = runner.invoke(cli, ["kv", "get", "k", "--namespace", "x"])
    assert none_there.exit_code == 5 and "no KV store on the cluster matches --namespace x" in none_there.stderr


def test_kv_finds_the_store_when_name_or_namespace_is_left_out(knobs: list[str]) -> None:
    runner = CliRunner()
    by_namespace = runner.invoke(cli, ["kv", "get", "num_parallel", "--namespace", "chia-ops-kv"])
    assert by_namespace.exit_code == 0 and by_namespace.stdout.strip() == "2"
    by_name = runner.invoke(cli, ["kv", "list", "--name", "cli_knobs"])
    assert by_name.exit_code == 0 and by_name.stdout.startswith("num_parallel = 2")
    kv_store.get_or_create_kv_store(name="other_knobs", namespace="chia-ops-kv")
    try:
        ambiguous = runner.invoke(cli, ["kv", "list", "--namespace", "chia-ops-kv"])
        assert ambiguous.exit_code == 2
        assert "2 KV stores match: cli_knobs (namespace chia-ops-kv), other_knobs" in ambiguous.stderr
        assert "choose one with --name/--namespace" in ambiguous.stderr
    finally:
        ray.kill(ray.get_actor("other_knobs", namespace="chia-ops-kv"))


@pytest.fixture
def running_cache(cluster: Any, tmp_path: Path) -> Iterator[Any]:
    handle = cache.start_cache(size=1, units="MB", cache_dir_path=tmp_path / "cache", namespace="chia-ops-cache")
    yield handle
    cache.stop_cache(namespace="chia-ops-cache")


@pytest.mark.ray_compat
def test_cache_ls_stats_evict_clear(running_cache: Any) -> None:
    ray.get([running_cache.write.remote(tag, tag * 100) for tag in ("a", "b", "c")])
    runner = CliRunner()
    listed = runner.invoke(cli, ["cache", "ls"])  # found in any namespace
    assert listed.exit_code == 0 and listed.stdout.split() == ["a", "b", "c"]
    stats = runner.invoke(cli, ["cache", "stats", "--namespace", "chia-ops-cache", "--json"])
    assert stats.exit_code == 0 and '"entries": 3' in stats.stdout and '"budget_bytes": 1048576' in stats.stdout
    table = runner.invoke(cli, ["cache", "stats"]).stdout.splitlines()
    assert table[0].split() == ["namespace", "chia-ops-cache"]
    assert ["budget_bytes", "1.0", "MiB", "(1048576)"] in [line.split() for line in table]
    assert ["entries", "3"] in [line.split() for line in table]
    evicted = runner.invoke(cli, ["cache", "evict", "a", "zzz"])
    assert evicted.exit_code == 5 and "evicted 1 of 2" in evicted.stdout and "not in the cache: zzz" in evicted.stderr
    declined = runner.invoke(cli, ["cache", "clear"], input="n\n")
    assert declined.exit_code == 1 and "delete all 2 cache entries (namespace 'chia-ops-cache'" in declined.stdout
    cleared = runner.invoke(cli, ["cache", "clear", "--yes"])
    assert cleared.exit_code == 0 and "deleted 2 entries" in cleared.stdout
    assert runner.invoke(cli, ["cache", "ls"]).stdout == ""
    stopped = runner.invoke(cli, ["cache", "stop"])
    assert stopped.exit_code == 0 and "stopped the cache actor of namespace 'chia-ops-cache'" in stopped.stdout
    assert cache.get_active_cache("chia-ops-cache") is None


def test_cache_not_running(cluster: Any) -> None:
    runner = CliRunner()
    nowhere = runner.invoke(cli, ["cache", "stats", "--namespace", "chia-ops-none"])
    assert nowhere.exit_code == 5 and "no cache actor is running in Ray namespace 'chia-ops-none'" in nowhere.stderr
    anywhere = runner.invoke(cli, ["cache", "ls"])
    assert anywhere.exit_code == 5 and "no cache actor is running in any Ray namespace" in anywhere.stderr


def test_bypass_validate(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("bypass:\n  simple_function: true\ncache:\n  build: true\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "bypass:\n  f:\n    bypass: true\n    dta: runs.json\n"
    )  # a near-miss of 'data'; free-form notes load
    runner = CliRunner()
    ok = runner.invoke(cli, ["bypass", "validate", str(good)])
    assert ok.exit_code == 0 and ok.stdout.strip() == f"{good}: valid"
    wrong = runner.invoke(cli, ["bypass", "validate", str(bad)])
    assert (
        wrong.exit_code == 1
        and f"{bad}: function 'f', key 'dta'" in wrong.stderr
        and "did you mean 'data'" in wrong.stderr
    )
    absent = runner.invoke(cli, ["bypass", "validate", str(tmp_path / "absent.yaml")])
    assert absent.exit_code == 5 and "absent.yaml' does not exist" in absent.stderr
