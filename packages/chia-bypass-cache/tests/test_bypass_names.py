"""YAML keys and provider names that match no ChiaFunction, and providers that cannot take the call (issue 15)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chia.base.bypass import Bypass, BypassConfigError, UnknownFunctionError, UnknownFunctionWarning
from chia.base.cache import start_cache
from chia.base.ChiaFunction import ChiaFunction, get

WriteYaml = Callable[..., str]


@ChiaFunction(num_cpus=0)
def simulate(config: int, cores: int, *, verbose: bool = False) -> tuple[str, int]:
    return "real", config * cores


@ChiaFunction(num_cpus=0)
def sweep_point(config: int, cores: int, *, seed: int, verbose: bool = False) -> tuple[str, int]:
    return "real", config * cores * seed


@ChiaFunction(num_cpus=0)
def build(config: int) -> str:
    return f"built {config}"


def good_provider(tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    return "replayed", args


def unknown_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, UnknownFunctionWarning)]


def test_a_typo_key_warns_at_the_first_dispatch_with_the_closest_name(cluster: Any, write_yaml: WriteYaml) -> None:
    path = write_yaml("bypass:\n  simulat: true\n  build: false\n")
    with warnings.catch_warnings(record=True) as at_activation:
        warnings.simplefilter("always")
        Bypass(path)
    assert unknown_warnings(at_activation) == []  # the loop may still define it
    with pytest.warns(UnknownFunctionWarning) as caught:
        assert get(build.chia_remote(1)) == "built 1"
    (message,) = unknown_warnings(caught.list)
    assert message.startswith(f"{path}: section 'bypass': key 'simulat' names no @ChiaFunction")
    assert "did you mean 'simulate'?" in message
    assert caught.list[0].filename == __file__  # points at the user's chia_remote
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        get(build.chia_remote(2))
    assert unknown_warnings(later) == []  # reported once


def test_strict_makes_the_first_dispatch_raise_before_anything_runs(write_yaml: WriteYaml) -> None:
    path = write_yaml("bypass:\n  simulat: true\n  biuld: true\n")
    Bypass(path, strict=True)
    with pytest.raises(UnknownFunctionError, match=r"key 'simulat'.*'simulate'.*key 'biuld'.*'build'") as caught:
        simulate.chia_remote(1, 2)
    assert isinstance(caught.value, BypassConfigError) and isinstance(caught.value, ValueError)
    assert (caught.value.path, caught.value.function, caught.value.names) == (path, "simulat", ("simulat", "biuld"))


def test_a_function_defined_after_activation_is_not_reported(cluster: Any, write_yaml: WriteYaml) -> None:
    Bypass(write_yaml("bypass:\n  defined_late: true\n"), strict=True)

    @ChiaFunction(num_cpus=0)
    def defined_late(x: int) -> int:
        return x

    assert get(defined_late.chia_remote(3)) == 3  # no provider, no data: runs for real, and no error


def test_a_qualname_key_is_known(cluster: Any, write_yaml: WriteYaml) -> None:
    Bypass(write_yaml(f"bypass:\n  {__name__}.build: false\n"), strict=True)
    assert get(build.chia_remote(4)) == "built 4"


def test_cache_keys_are_checked_the_same_way(write_yaml: WriteYaml, namespace: str, tmp_path: Path) -> None:
    path = write_yaml("cache:\n  buidl: true\n")
    start_cache(1, str(tmp_path / "cache"), units="MB", yaml_path=path, namespace=namespace, strict=True)
    with pytest.raises(UnknownFunctionError, match=r"section 'cache': key 'buidl'.*did you mean 'build'\?"):
        build.chia_remote(1)


def test_set_provider_for_a_name_the_yaml_does_not_configure_warns(write_yaml: WriteYaml) -> None:
    path = write_yaml("bypass:\n  simulate: true\n")
    bypass = Bypass(path)
    with pytest.warns(UnknownFunctionWarning, match=r"provider for 'simulat'.*configured: simulate.*'simulate'\?"):
        bypass.set_provider("simulat", good_provider)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bypass.set_provider("simulate", good_provider)
        bypass.set_provider(f"{__name__}.simulate", good_provider)
    assert unknown_warnings(caught) == []


def test_set_provider_follows_the_strict_setting(write_yaml: WriteYaml) -> None:
    bypass = Bypass(write_yaml("bypass:\n  simulate: true\n"), strict=True)
    with pytest.raises(UnknownFunctionError, match="provider for 'build'"):
        bypass.set_provider("build", lambda tag, data_path, config: config)
    assert bypass.get_state()["providers"] == {}


def test_a_provider_that_cannot_take_the_call_is_refused_with_the_convention(write_yaml: WriteYaml) -> None:
    bypass = Bypass(write_yaml("bypass:\n  sweep_point: true\n"))
    with pytest.raises(TypeError) as caught:
        bypass.set_provider("sweep_point", lambda tag, data_path: None)
    message = str(caught.value)
    assert "provider(tag, data_path, *args, **kwargs)" in message
    assert "provider(tag, data_path, config, cores, seed=seed)" in message
    assert f"{__name__}.sweep_point(config, cores, *, seed, verbose=False)" in message
    assert "(tag, data_path) refuses that (too many positional arguments)" in message
    with pytest.raises(TypeError, match=r"condition.*cannot take its calls.*unexpected keyword argument 'seed'"):
        bypass.set_cond("sweep_point", lambda tag, data_path, config, cores: True)
    assert bypass.get_state()["providers"] == {} and bypass.get_state()["conds"] == {}


def test_providers_that_take_the_call_are_accepted(write_yaml: WriteYaml) -> None:
    bypass = Bypass(write_yaml("bypass:\n  sweep_point: true\n  not_defined_yet: true\n"))
    bypass.set_provider("sweep_point", good_provider)
    bypass.set_provider("sweep_point", lambda tag, data_path, config, cores, seed, extra=0: None)
    bypass.set_provider(f"{__name__}.sweep_point", lambda tag, data_path, a, b, **kw: None)
    bypass.set_provider("not_defined_yet", lambda tag, data_path, anything: None)  # only (tag, data_path) is known
    with pytest.raises(TypeError, match="cannot take its calls"):
        bypass.set_provider("not_defined_yet", lambda: None)


def test_a_name_several_functions_share_accepts_a_provider_fitting_one(write_yaml: WriteYaml) -> None:
    def define() -> None:
        @ChiaFunction(num_cpus=0)
        def sweep_point(x: int) -> int:  # another function of the same __name__, defined last
            return x

    define()
    bypass = Bypass(write_yaml("bypass:\n  sweep_point: true\n"))
    bypass.set_provider("sweep_point", lambda tag, data_path, config, cores, seed: None)  # fits this module's
    bypass.set_provider("sweep_point", lambda tag, data_path, x: None)  # fits the other one
    with pytest.raises(TypeError, match="cannot take its calls"):
        bypass.set_provider("sweep_point", lambda tag, data_path, a, b, c, d, e: None)  # fits neither
