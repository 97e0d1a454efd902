"""Public signatures of chia.base.bypass and chia.base.cache, pinned for mypy (``assert_type``).

The functions here are type-checked by ``mypy --strict`` and only imported by
pytest; nothing runs against a cluster.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, assert_type

import ray

from chia.base import bypass as bypass_module
from chia.base import cache as cache_module
from chia.base.bypass import Bypass, BypassConfigError, get_active_bypass, validate_config
from chia.base.cache import UNITS, Cache, get_active_cache, is_cached, start_cache, stop_cache

if TYPE_CHECKING:
    # Unquoted below, so ruff sees them used: the signature functions are never called.
    from ray.actor import ActorProxy

    from chia.base._bypass_cache.bypass_server import BypassServer


def bypass_signatures(bypass: Bypass, provider: Callable[..., Any]) -> None:
    assert_type(Bypass("conf.yaml"), Bypass)
    assert_type(Bypass(), Bypass)
    assert_type(Bypass(None, allowed_roots=["/data"]), Bypass)
    assert_type(get_active_bypass(), Bypass | None)
    assert_type(validate_config("conf.yaml"), None)
    assert_type(bypass.active, bool)
    assert_type(bypass.set_provider("f", provider), None)
    assert_type(bypass.set_cond("f", provider), None)
    assert_type(bypass.is_bypassed("f"), bool)
    assert_type(bypass.is_bypassed("f", "iter0", 1, x=2), bool)
    assert_type(bypass.get_provider_info("f"), tuple[Callable[..., Any], str | None])
    assert_type(bypass.get_state(), dict[str, Any])
    assert_type(bypass.load_state({}), None)
    server = bypass.file_server()
    assert_type(server, ActorProxy[BypassServer])
    assert_type(ray.get(server.get_text.remote("/x")), str)
    assert_type(ray.get(server.get_bytes.remote("/x")), bytes)


def cache_signatures() -> None:
    assert_type(UNITS, Mapping[str, int])
    handle = start_cache(4, "/data/cache", units="GB", yaml_path=None, namespace="ns")
    assert_type(handle, ActorProxy[Cache])
    assert_type(start_cache(size=1.5, cache_dir_path="/d"), ActorProxy[Cache])
    assert_type(stop_cache(), None)
    assert_type(get_active_cache(), ActorProxy[Cache] | None)
    assert_type(is_cached("f", "t"), bool)
    assert_type(ray.get(handle.read.remote("t")), tuple[bool, Any])
    assert_type(ray.get(handle.write.remote("t", object())), bool)
    assert_type(ray.get(handle.write_pickled.remote("t", b"")), bool)
    assert_type(ray.get(handle.has.remote("t")), bool)
    assert_type(ray.get(handle.evict.remote("t")), bool)
    assert_type(ray.get(handle.flush.remote()), int)
    assert_type(ray.get(handle.keys.remote()), list[str])
    assert_type(ray.get(handle.size_bytes.remote()), int)
    assert_type(ray.get(handle.get_config.remote()), dict[str, Any])
    assert_type(ray.get(handle.stats.remote()), dict[str, int])
    assert_type(ray.get(handle.checkpoint.remote()), None)


def test_public_names_are_exported() -> None:
    assert set(bypass_module.__all__) == {
        "Bypass",
        "BypassConfigError",
        "CacheReplay",
        "UnknownFunctionError",
        "UnknownFunctionWarning",
        "get_active_bypass",
        "validate_config",
    }
    assert set(cache_module.__all__) == {
        "Cache",
        "CacheDirectoryError",
        "SECRET_ENV",
        "STOP_CHECKPOINT_SECONDS",
        "UNITS",
        "get_active_cache",
        "is_cached",
        "start_cache",
        "stop_cache",
    }
    assert issubclass(BypassConfigError, ValueError)
    assert list(inspect.signature(start_cache).parameters) == [
        "size",
        "cache_dir_path",
        "units",
        "yaml_path",
        "namespace",
        "strict",
    ]
    assert list(inspect.signature(Bypass.is_bypassed).parameters) == ["self", "func_name", "tag", "args", "kwargs"]


def test_public_docstrings_state_stability() -> None:
    public = [Bypass, get_active_bypass, validate_config, BypassConfigError, Cache]
    public += [start_cache, stop_cache, get_active_cache, is_cached]
    public += [getattr(Bypass, name) for name in ("set_provider", "set_cond", "is_bypassed", "get_provider_info")]
    public += [getattr(Bypass, name) for name in ("get_state", "load_state", "file_server")]
    for item in public:
        first_lines = (inspect.getdoc(item) or "").split("\n\n")[0]
        assert "Stable." in first_lines or "Experimental." in first_lines, item
