"""Bypassed dispatch on a real two-node Ray cluster: providers on workers, nested calls, files."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import ray

from chia.base import dispatch_hooks
from chia.base.bypass import Bypass, get_active_bypass
from chia.base.ChiaFunction import ChiaFunction, get

pytestmark = pytest.mark.usefixtures("cluster")

WriteYaml = Callable[..., str]


def node_id() -> str:
    return str(ray.get_runtime_context().get_node_id())


def value_of(ref: ray.ObjectRef[Any]) -> Any:
    """``get`` typed loosely: a bypassed call returns what its provider returns."""
    return get(ref)


@ChiaFunction(num_cpus=0, resources={"node_b": 1})
def simulate(x: int) -> tuple[str, int, str]:
    return "real", x, node_id()


@ChiaFunction(num_cpus=0)
def plain(x: int) -> tuple[str, int]:
    return "real", x


@ChiaFunction(num_cpus=0)
def nested(x: int) -> Any:
    """Calls simulate remotely from inside a remote task."""
    return get(simulate.options(_chia_tag=f"inner{x}").chia_remote(x))


@ChiaFunction(num_cpus=0)
def doubly_nested(x: int) -> Any:
    return get(nested.chia_remote(x))


def provider(tag: str | None, data_path: str | None, x: int) -> dict[str, Any]:
    call = dispatch_hooks.current_call()
    assert call is not None
    return {
        "tag": tag,
        "data_path": data_path,
        "x": x,
        "node": node_id(),
        "replaced": call.replaced,
        "bypassed": call.context.get("bypass.bypassed"),
        "provider": call.context.get("bypass.provider"),
    }


def second_provider(tag: str | None, data_path: str | None, x: int) -> str:
    return f"second {x}"


def failing_provider(tag: str | None, data_path: str | None, x: int) -> None:
    raise LookupError(f"no recording for {tag}")


def reads_through_file_server(tag: str | None, data_path: str | None, x: int) -> str:
    bypass = get_active_bypass()
    assert bypass is not None and data_path is not None
    text: str = ray.get(bypass.file_server().get_text.remote(data_path))
    return text.upper()


@pytest.mark.ray_compat
def test_bypassed_call_runs_the_provider_on_the_node_with_the_resource(write_yaml: WriteYaml, cluster: Any) -> None:
    bypass = Bypass(write_yaml("bypass:\n  simulate: true\n"))
    bypass.set_provider("simulate", provider)
    ref = simulate.options(_chia_tag="iter0").chia_remote(7)
    assert isinstance(ref, ray.ObjectRef)
    ready, _ = ray.wait([ref], timeout=60)
    assert ready == [ref]
    result = value_of(ref)
    assert result["node"] == cluster.node_ids["node_b"]
    assert (result["tag"], result["data_path"], result["x"]) == ("iter0", None, 7)
    assert result["replaced"] is True and result["bypassed"] is True
    assert result["provider"] == f"{provider.__module__}.provider"


def test_options_overrides_apply_to_the_provider(write_yaml: WriteYaml, cluster: Any) -> None:
    Bypass(write_yaml("bypass:\n  plain: true\n")).set_provider("plain", provider)
    result = value_of(plain.options(resources={"node_b": 1}).chia_remote(1))
    assert result["node"] == cluster.node_ids["node_b"]
    # Untagged and with no other context, the call ships none: replaced marks the bypass.
    assert result["replaced"] is True and result["bypassed"] is None


def test_unlisted_and_disabled_functions_run_for_real(write_yaml: WriteYaml, cluster: Any) -> None:
    bypass = Bypass(write_yaml("bypass:\n  simulate: false\n  other: true\n"))
    bypass.set_provider("simulate", provider)
    bypass.set_provider("other", provider)
    assert get(simulate.chia_remote(2)) == ("real", 2, cluster.node_ids["node_b"])
    assert get(plain.chia_remote(3)) == ("real", 3)


def test_tags_and_condition_decide_per_call(write_yaml: WriteYaml) -> None:
    bypass = Bypass(write_yaml("bypass:\n  plain:\n    bypass: true\n    tags: ['replay_.*']\n"))
    bypass.set_provider("plain", second_provider)
    assert value_of(plain.options(_chia_tag="replay_1").chia_remote(1)) == "second 1"
    assert get(plain.options(_chia_tag="live_1").chia_remote(1)) == ("real", 1)
    assert get(plain.chia_remote(1)) == ("real", 1)
    bypass.set_cond("plain", lambda tag, data_path, x: x > 10)
    assert get(plain.options(_chia_tag="replay_2").chia_remote(2)) == ("real", 2)
    assert value_of(plain.options(_chia_tag="replay_2").chia_remote(20)) == "second 20"


def test_default_file_provider_returns_the_data_file_text(
    write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recording.json").write_text('{"score": 3}')
    Bypass(write_yaml("bypass:\n  simulate:\n    bypass: true\n    data: recording.json\n"))
    assert value_of(simulate.chia_remote(1)) == '{"score": 3}'


@pytest.mark.ray_compat
def test_provider_reads_files_through_the_file_server(
    write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rec.txt").write_text("recorded on the head")
    bypass = Bypass(write_yaml("bypass:\n  simulate:\n    bypass: true\n    data: rec.txt\n"))
    bypass.set_provider("simulate", reads_through_file_server)
    assert value_of(simulate.chia_remote(1)) == "RECORDED ON THE HEAD"


def test_provider_errors_reach_the_caller(write_yaml: WriteYaml) -> None:
    Bypass(write_yaml("bypass:\n  plain: true\n")).set_provider("plain", failing_provider)
    with pytest.raises(LookupError, match="no recording for t9"):
        get(plain.options(_chia_tag="t9").chia_remote(1))


def test_missing_provider_runs_for_real_with_one_warning(
    write_yaml: WriteYaml, caplog: pytest.LogCaptureFixture
) -> None:
    Bypass(write_yaml("bypass:\n  plain: true\n"))
    with caplog.at_level(logging.WARNING, logger="chia.base.bypass"):
        assert get([plain.chia_remote(1), plain.chia_remote(2)]) == [("real", 1), ("real", 2)]
    assert sum("'plain'" in record.getMessage() for record in caplog.records) == 1


@pytest.mark.ray_compat
def test_nested_dispatch_is_bypassed_and_follows_updates(write_yaml: WriteYaml, cluster: Any) -> None:
    bypass = Bypass(write_yaml("bypass:\n  simulate: true\n"))
    bypass.set_provider("simulate", provider)
    result = get(nested.chia_remote(4))
    assert result["tag"] == "inner4" and result["x"] == 4
    assert result["node"] == cluster.node_ids["node_b"] and result["replaced"] is True
    assert get(doubly_nested.chia_remote(5))["tag"] == "inner5"
    bypass.set_provider("simulate", second_provider)  # a new version reaches the workers
    assert get(nested.chia_remote(6)) == "second 6"
    assert get(doubly_nested.chia_remote(7)) == "second 7"
    Bypass(None)  # bypass off: nested calls run for real again
    assert get(nested.chia_remote(8)) == ("real", 8, cluster.node_ids["node_b"])


def test_qualname_key_bypasses_only_that_function(write_yaml: WriteYaml) -> None:
    key = f"{plain.__module__}.plain"
    bypass = Bypass(write_yaml(f"bypass:\n  plain: false\n  {key}: true\n  simulate: false\n"))
    bypass.set_provider("plain", second_provider)
    assert value_of(plain.chia_remote(1)) == "second 1"


def test_no_bypass_no_wrappers(write_yaml: WriteYaml) -> None:
    """With no active bypass, dispatch runs without any wrapper (nothing registered)."""

    @ChiaFunction(num_cpus=0)
    def sees_call() -> bool:
        return dispatch_hooks.current_call() is not None

    Bypass(write_yaml("bypass:\n  plain: true\n")).set_provider("plain", provider)
    assert get(sees_call.chia_remote()) is True
    Bypass(None)
    assert get(sees_call.chia_remote()) is False


def test_file_server_confinement(write_yaml: WriteYaml, tmp_path: Path) -> None:
    inside = tmp_path / "conf"
    inside.mkdir()
    (inside / "ok.txt").write_text("ok")
    data_dir = tmp_path / "elsewhere"
    data_dir.mkdir()
    (data_dir / "rec.txt").write_text("listed")
    (data_dir / "neighbour.txt").write_text("not listed")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "x.txt").write_text("extra")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (inside / "link_out").symlink_to(secret)
    yaml_path = inside / "b.yaml"
    yaml_path.write_text(f"bypass:\n  f:\n    bypass: true\n    data: {data_dir / 'rec.txt'}\n")
    server = Bypass(str(yaml_path), allowed_roots=[extra]).file_server()
    assert ray.get(server.get_text.remote(str(inside / "ok.txt"))) == "ok"
    assert ray.get(server.get_bytes.remote(str(data_dir / "rec.txt"))) == b"listed"
    assert ray.get(server.get_text.remote(str(extra / "x.txt"))) == "extra"
    refused = [
        str(secret),
        str(data_dir / "neighbour.txt"),
        str(inside / ".." / "secret.txt"),
        str(inside / "link_out"),
        "/etc/passwd",
    ]
    for path in refused:
        with pytest.raises(PermissionError, match="outside the allowed roots"):
            ray.get(server.get_text.remote(path))
    with pytest.raises(PermissionError, match="allowed_roots=\\["):  # relative: from the driver's directory
        ray.get(server.get_text.remote("relative.txt"))
    assert ray.get(server.exists.remote(str(inside / "ok.txt"))) is True
    assert ray.get(server.exists.remote(str(inside / "not-yet.txt"))) is False
    with pytest.raises(PermissionError, match=f"refuses {str(secret)!r}.*Bypass\\(yaml_path, allowed_roots="):
        ray.get(server.exists.remote(str(secret)))
    assert os.path.exists(secret)
