"""Bypass decisions, providers, conditions and state, as documented (no cluster)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from chia.base.bypass import Bypass, UnknownFunctionWarning, get_active_bypass

WriteYaml = Callable[..., str]


def provider(tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> Any:
    return ("provided", tag, data_path, args, kwargs)


def other_provider(tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> Any:
    return "other"


def test_no_yaml_means_nothing_is_bypassed() -> None:
    bypass = Bypass(None)
    with pytest.warns(UnknownFunctionWarning, match=r"Bypass\(\): bypass provider for 'f': .*configured: none"):
        bypass.set_provider("f", provider)
    assert not bypass.active
    assert not bypass.is_bypassed("f")
    assert get_active_bypass() is bypass


def test_constructor_makes_the_instance_active() -> None:
    first = Bypass()
    second = Bypass()
    assert get_active_bypass() is second is not first


def test_active_iff_one_function_is_bypassed(write_yaml: WriteYaml) -> None:
    assert not Bypass(write_yaml("bypass:\n  f: false\n")).active
    assert Bypass(write_yaml("bypass:\n  f: false\n  g: true\n")).active


def test_provider_data_tags_and_condition_gates_in_order(
    write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rec.txt").write_text("recorded")
    bypass = Bypass(
        write_yaml(
            """
bypass:
  with_provider:
    bypass: true
    tags: ["iter[0-9]+"]
  with_data:
    bypass: true
    data: rec.txt
  with_nothing: true
"""
        )
    )
    assert not bypass.is_bypassed("with_provider", "iter3")  # no provider yet
    bypass.set_provider("with_provider", provider)
    assert bypass.is_bypassed("with_provider", "iter3")
    assert not bypass.is_bypassed("with_provider", "iter3x")
    assert bypass.is_bypassed("with_data")  # data path alone suffices

    seen: list[tuple[Any, ...]] = []

    def only_even(tag: str | None, data_path: str | None, n: int, *, flag: bool = False) -> bool:
        seen.append((tag, data_path, n, flag))
        return n % 2 == 0

    bypass.set_cond("with_provider", only_even)
    assert bypass.is_bypassed("with_provider", "iter1", 4, flag=True)
    assert not bypass.is_bypassed("with_provider", "iter1", 5)
    assert not bypass.is_bypassed("with_provider", "nomatch", 4)  # tags gate before the condition
    assert seen == [("iter1", None, 4, True), ("iter1", None, 5, False)]


def test_neither_provider_nor_data_warns_once_and_runs_for_real(
    write_yaml: WriteYaml, caplog: pytest.LogCaptureFixture
) -> None:
    bypass = Bypass(write_yaml("bypass:\n  lonely: true\n"))
    with caplog.at_level(logging.WARNING, logger="chia.base.bypass"):
        assert not bypass.is_bypassed("lonely")
        assert not bypass.is_bypassed("lonely", "t")
    warnings = [record for record in caplog.records if "lonely" in record.getMessage()]
    assert len(warnings) == 1
    with pytest.raises(KeyError, match="lonely"):
        bypass.get_provider_info("lonely")


def test_get_provider_info_resolution(write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rec.txt").write_text("x")
    bypass = Bypass(write_yaml("bypass:\n  f:\n    bypass: true\n    data: rec.txt\n  g: true\n"))
    default, data_path = bypass.get_provider_info("f")
    assert data_path == "rec.txt"  # as written
    assert default.__name__ == "_default_file_provider"
    bypass.set_provider("f", provider)
    assert bypass.get_provider_info("f") == (provider, "rec.txt")
    bypass.set_provider("g", provider)
    assert bypass.get_provider_info("g") == (provider, None)
    with pytest.raises(KeyError, match="'h'"):
        bypass.get_provider_info("h")


def test_module_qualname_key_wins_over_name(write_yaml: WriteYaml) -> None:
    bypass = Bypass(
        write_yaml(
            """
bypass:
  step: true
  sim.a.step: false
  sim.b.Runner.step:
    bypass: true
    tags: ["b.*"]
"""
        )
    )
    bypass.set_provider("step", provider)
    assert bypass.is_bypassed("step")
    assert bypass.is_bypassed("other.mod.step")  # no qualname entry: the name entry applies
    assert not bypass.is_bypassed("sim.a.step")
    assert bypass.is_bypassed("sim.b.Runner.step", "b1")
    assert not bypass.is_bypassed("sim.b.Runner.step", "a1")
    bypass.set_provider("sim.b.Runner.step", other_provider)
    assert bypass.get_provider_info("sim.b.Runner.step")[0] is other_provider
    assert bypass.get_provider_info("sim.a.step")[0] is provider


def test_bad_registrations_are_refused(write_yaml: WriteYaml) -> None:
    bypass = Bypass(write_yaml("bypass:\n  f: true\n"))
    with pytest.raises(TypeError, match="must be callable"):
        bypass.set_provider("f", "not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="function name"):
        bypass.set_cond(3, provider)  # type: ignore[arg-type]
    lock = threading.Lock()

    def holds_a_lock(tag: str | None, data_path: str | None) -> Any:
        return lock

    with pytest.raises(TypeError, match="cannot be pickled"):
        bypass.set_provider("f", holds_a_lock)
    assert not bypass.is_bypassed("f")


def test_state_round_trip(write_yaml: WriteYaml, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rec.txt").write_text("x")
    source = Bypass(
        write_yaml("bypass:\n  f:\n    bypass: true\n    tags: ['t.*']\n  g:\n    bypass: true\n    data: rec.txt\n")
    )
    offset = 10
    source.set_provider("f", lambda tag, data_path, x: x + offset)
    source.set_cond("f", lambda tag, data_path, x: x > 0)
    state = source.get_state()
    target = Bypass(None)
    assert not target.active
    target.load_state(state)
    assert target.active
    assert target.is_bypassed("f", "t1", 1)
    assert not target.is_bypassed("f", "t1", -1)
    assert not target.is_bypassed("f", "x1", 1)
    restored, data_path = target.get_provider_info("f")
    assert restored("t1", data_path, 5) == 15
    assert target.get_provider_info("g")[1] == "rec.txt"
    with pytest.raises(ValueError, match="not a Bypass state"):
        target.load_state(cast(dict[str, Any], ["rules"]))
    with pytest.raises(ValueError, match="key 'providers': the entry for 'f' is not a callable"):
        target.load_state({"bypass": {"f": True}, "providers": {"f": 3}})
