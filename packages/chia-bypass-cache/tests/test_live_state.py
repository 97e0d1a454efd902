"""The distribution's live state sits in one object that a test can reset.

No module keeps run-time state in module variables (no ``global`` statement,
no module-level container); ``live_state.reset()`` forgets the active bypass,
the cache's write-through and memo, and every hook and wrapper registered.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ray

import chia.base._bypass_cache
from chia.base import bypass, cache, dispatch_hooks
from chia.base._bypass_cache import bypass_sync
from chia.base._bypass_cache.state import BypassState, CacheState, live_state
from chia.base.bypass import Bypass, get_active_bypass
from chia.base.cache import get_active_cache, start_cache
from chia.base.ChiaFunction import ChiaFunction, get

WriteYaml = Callable[..., str]

LARGE = 1 << 20  # a hit of this size is remembered by the reading process (the memo)
MUTABLE_DISPLAYS = (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)


def module_files() -> Iterator[Path]:
    """Every module this distribution ships, where it is imported from (sources or an installed wheel)."""
    yield Path(str(bypass.__file__))
    yield Path(str(cache.__file__))
    package = Path(str(chia.base._bypass_cache.__file__)).parent
    yield package / "__init__.py"
    for module in pkgutil.iter_modules([str(package)]):
        yield package / f"{module.name}.py"


def module_level_containers(tree: ast.Module) -> list[str]:
    """Names bound at module level to a dict, list or set display (``__all__`` excepted)."""
    found = []
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        value = getattr(node, "value", None)
        names = [target.id for target in targets if isinstance(target, ast.Name)]
        if isinstance(value, MUTABLE_DISPLAYS) and names != ["__all__"]:
            found += [f"{name} (line {node.lineno})" for name in names]
    return found


def test_no_module_keeps_state_in_module_variables() -> None:
    files = list(module_files())
    assert len(files) >= 13, files
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        declared = [node.lineno for node in ast.walk(tree) if isinstance(node, (ast.Global, ast.Nonlocal))]
        assert declared == [], f"{path}: global/nonlocal statements at lines {declared}; use live_state"
        assert module_level_containers(tree) == [], f"{path}: module-level containers; use live_state"


@ChiaFunction(num_cpus=0)
def plain(x: int) -> tuple[str, int]:
    return "real", x


@ChiaFunction(num_cpus=0)
def outer(x: int) -> Any:
    """Dispatches ``plain`` from a worker: decided by the snapshot the driver published."""
    return get(plain.chia_remote(x))


@ChiaFunction(num_cpus=0)
def sees_call() -> bool:
    return dispatch_hooks.current_call() is not None


def recorded(tag: str | None, data_path: str | None, x: int) -> str:
    return f"recorded {x}"


def replayed(tag: str | None, data_path: str | None, x: int) -> str:
    return f"replayed {x}"


def fresh_but_the_server() -> BypassState:
    """A never-used BypassState, except for what reset keeps: the driver's server actor."""
    state = live_state.bypass
    return dataclasses.replace(
        BypassState(), server=state.server, roots=state.roots, version=state.version, runtime=state.runtime
    )


def test_reset_forgets_bypass_write_through_and_memo(namespace: str, tmp_path: Path, write_yaml: WriteYaml) -> None:
    config = write_yaml("bypass:\n  plain: true\ncache:\n  sees_call: true\n")
    Bypass(config).set_provider("plain", recorded)
    handle: Any = start_cache(8, str(tmp_path / "cache"), units="MB", yaml_path=config, namespace=namespace)
    assert get(outer.chia_remote(1)) == "recorded 1"
    ray.get(handle.write.remote("large", os.urandom(LARGE)))
    assert ray.get(handle.read.remote("large"))[0] is True
    assert get(sees_call.options(_chia_tag="t").chia_remote()) is True
    assert ray.get(handle.has.remote("t")) is True  # written through
    assert live_state.bypass != fresh_but_the_server()
    assert live_state.cache.memos and live_state.cache.started_namespace == namespace

    live_state.reset()
    live_state.reset()  # nothing left to remove: a second reset changes nothing

    assert live_state.bypass == fresh_but_the_server()
    assert live_state.cache == CacheState()
    assert get_active_bypass() is None and bypass_sync.task_token() is None
    assert get(outer.chia_remote(2)) == ("real", 2)  # bypass is off, nested calls included
    assert get(sees_call.options(_chia_tag="u").chia_remote()) is False  # no call wrapper left
    assert ray.get(handle.has.remote("u")) is False
    assert get_active_cache(namespace) is not None  # the cache actor itself keeps running

    # The kept server takes the next snapshot: workers see the new configuration.
    Bypass(config).set_provider("plain", replayed)
    assert get(outer.chia_remote(3)) == "replayed 3"
