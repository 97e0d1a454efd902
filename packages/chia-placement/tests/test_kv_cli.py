"""The operator CLI: as a subprocess against the running cluster, and through main() in a connected process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import ray

from chia.base.chia_kv_store import get_or_create_kv_store, main, query_kv
from chia_testing import free_port


@pytest.mark.ray_compat
def test_an_operator_sets_and_reads_a_knob_of_a_running_pipeline(
    cluster: Any, kv_name: tuple[str, str], run_cli: Any
) -> None:
    name, namespace = kv_name
    pipeline_store: Any = get_or_create_kv_store(name, namespace, num_parallel=2)

    done = run_cli("--name", name, "--namespace", namespace, "--address", cluster.address, "--set", "num_parallel", "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "num_parallel = 4\n"  # as in chialoops: key = repr(value)
    assert query_kv(pipeline_store, "num_parallel") == 4  # an int, not "4"

    read = run_cli(
        "--name", name, "--namespace", namespace, "--get", "num_parallel", env={"RAY_ADDRESS": cluster.address}
    )
    assert (read.returncode, read.stdout) == (0, "4\n"), read.stderr

    listed = run_cli("--name", name, "--namespace", namespace, "--address", cluster.address, "--list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("num_parallel = 4  (version ")


def test_the_cli_names_a_missing_store(cluster: Any, run_cli: Any) -> None:
    done = run_cli("--name", "no-such-knobs", "--namespace", "nowhere", "--address", cluster.address, "--get", "k")
    assert done.returncode == 1
    assert "no KV store actor named 'no-such-knobs' in Ray namespace 'nowhere'" in done.stderr


def test_the_cli_reports_an_unreachable_cluster_quickly(run_cli: Any) -> None:
    address = f"127.0.0.1:{free_port()}"
    done = run_cli("--name", "n", "--namespace", "ns", "--address", address, "--list")
    assert done.returncode == 3
    assert f"error: no Ray cluster at {address}" in done.stderr


@pytest.fixture(scope="module")
def literal_store(cluster: Any) -> Iterator[tuple[Any, str, str]]:
    """One store shared by the literal-parsing cases (each store is an actor process)."""
    name, namespace = "cli-literals", "chia-placement-tests"
    store: Any = get_or_create_kv_store(name, namespace)
    yield store, name, namespace
    ray.kill(store)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4", 4),
        ("-0.5", -0.5),
        ("True", True),
        ("true", True),
        ("None", None),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ("{'a': 1}", {"a": 1}),
        ('{"b": null, "c": false}', {"b": None, "c": False}),
        ("'quoted'", "quoted"),
        ("fast lane", "fast lane"),
        ("warmup", "warmup"),
        ("[1, 2", "[1, 2"),
    ],
)
def test_values_are_parsed_as_literals_or_kept_as_text(
    literal_store: tuple[Any, str, str], capsys: pytest.CaptureFixture[str], text: str, value: Any
) -> None:
    store, name, namespace = literal_store
    assert main(["--name", name, "--namespace", namespace, "--set", "knob", text]) == 0
    assert query_kv(store, "knob", default="unset") == value
    assert capsys.readouterr().out == f"knob = {value!r}\n"


def test_a_stale_versioned_set_is_refused_with_the_current_value(
    kv_name: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    name, namespace = kv_name
    store: Any = get_or_create_kv_store(name, namespace, num_parallel=2)
    _, read_version = ray.get(store.get_versioned.remote("num_parallel"))
    args = ["--name", name, "--namespace", namespace]

    assert main([*args, "--set", "num_parallel", "4", "--if-version", str(read_version)]) == 0
    assert main([*args, "--set", "num_parallel", "16", "--if-version", str(read_version)]) == 1

    error = capsys.readouterr().err
    assert f"'num_parallel' in KV store '{name}'" in error and "(value 4), not " + str(read_version) in error
    assert query_kv(store, "num_parallel") == 4


def test_get_delete_and_list_report_missing_keys_and_empty_stores(
    kv_name: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    name, namespace = kv_name
    get_or_create_kv_store(name, namespace, stage="warmup")
    args = ["--name", name, "--namespace", namespace]

    assert main([*args, "--get", "stage"]) == 0
    assert capsys.readouterr().out == "warmup\n"  # the bare value, as in chialoops
    assert main([*args, "--delete", "stage"]) == 0
    assert capsys.readouterr().out == "deleted stage\n"
    assert main([*args, "--get", "stage"]) == 1
    assert f"key 'stage' is not set in KV store '{name}'" in capsys.readouterr().err
    assert main([*args, "--delete", "stage"]) == 1
    capsys.readouterr()
    assert main([*args, "--list"]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"KV store '{name}' (namespace '{namespace}') is empty\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["--name", "n", "--namespace", "ns"],
        ["--name", "n", "--namespace", "ns", "--get", "a", "--list"],
        ["--name", "n", "--namespace", "ns", "--get", "a", "--if-version", "3"],
        ["--name", "", "--namespace", "ns", "--list"],
        ["--name", "n", "--namespace", "ns", "--get", "a", "--show-version"],
    ],
)
def test_usage_errors_exit_with_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err


def test_set_prints_its_version_when_asked_or_when_compare_and_setting(
    kv_name: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    name, namespace = kv_name
    store: Any = get_or_create_kv_store(name, namespace, num_parallel=2)
    args = ["--name", name, "--namespace", namespace]
    assert main([*args, "--set", "stage", "sweep", "--show-version"]) == 0
    version = ray.get(store.get_versioned.remote("stage"))[1]
    assert capsys.readouterr().out == f"stage = 'sweep'  (version {version})\n"
    assert main([*args, "--set", "stage", "done", "--if-version", str(version)]) == 0
    assert capsys.readouterr().out == f"stage = 'done'  (version {version + 1})\n"


def test_a_versioned_set_of_a_key_never_set_says_it_is_not_set(
    kv_name: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 15: not "is at version 0 (value None) ... someone changed it".
    name, namespace = kv_name
    store: Any = get_or_create_kv_store(name, namespace)
    assert main(["--name", name, "--namespace", namespace, "--set", "fresh", "1", "--if-version", "3"]) == 1
    error = capsys.readouterr().err
    assert f"key 'fresh' is not set in KV store '{name}'" in error and "--if-version 0" in error
    assert "someone changed it" not in error and "is at version 0" not in error
    assert ray.get(store.get_versioned.remote("fresh")) == (None, 0)


def test_the_namespace_defaults_to_the_only_store_with_that_name(
    kv_name: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    name, namespace = kv_name
    get_or_create_kv_store(name, namespace, num_parallel=2)
    assert main(["--name", name, "--get", "num_parallel"]) == 0
    assert capsys.readouterr().out == "2\n"
    twin: Any = get_or_create_kv_store(name, namespace + "-twin", num_parallel=3)
    try:
        assert main(["--name", name, "--get", "num_parallel"]) == 2
        error = capsys.readouterr().err
        assert f"2 KV stores on the cluster match --name {name}: pass one of" in error
        assert f"--name {name} --namespace {namespace};" in error and f"--namespace {namespace}-twin" in error
        assert main(["--get", "num_parallel"]) == 2  # several stores and no name: the choices are listed
        assert f"--name {name} --namespace {namespace}-twin" in capsys.readouterr().err
    finally:
        ray.kill(twin)
    assert main(["--name", "no-such-store-anywhere", "--list"]) == 1
    assert "no KV store on the cluster matches --name no-such-store-anywhere" in capsys.readouterr().err
