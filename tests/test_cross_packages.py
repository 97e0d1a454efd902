"""Interactions no single distribution owns, on a real two-node local Ray.

bypass + cache + profiler on one dispatch, colocated members under bypass,
chia_wait over cached refs, cancel under profiling, and a ChiaTool placed by
a ColocatedNode.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import ray
from fastmcp import Client

from chia.base.bypass import Bypass
from chia.base.cache import get_active_cache, start_cache, stop_cache
from chia.base.chia_wait import TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, chia_cancel, get
from chia.base.colocated import ColocatedNode
from chia.base.tools.BashTool import BashTool
from chia.trace import profiler
from chia.trace.export import CallRecord, load_profile
from chia_testing import wait_until

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=0)
def square(x: int, journal: str) -> int:
    """The real computation; appends a line to ``journal`` each time it really runs."""
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write(f"{x}\n")
    return x * x


@ChiaFunction(num_cpus=0.5)
def where(x: int) -> tuple[str, str]:
    return "real", ray.get_runtime_context().get_node_id()


@ChiaFunction(num_cpus=0)
def spawn_tree(marker: str) -> None:
    """A simulator-like task: a child that starts a grandchild, both sleeping until killed."""
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', '{marker}']); time.sleep(600)"
    subprocess.run([sys.executable, "-c", code, marker], check=False)


class PinnedPair(ColocatedNode):
    _MEMBER_FNS = ("where",)
    _DEFAULT_BUNDLE: ClassVar[Mapping[str, float]] = {"CPU": 1.0, "node_b": 0.1}

    where = where


def cache_provider(tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> Any:
    store = get_active_cache()
    if store is None or tag is None:
        raise KeyError(f"no cache or no tag to replay (tag {tag!r})")
    hit, value = ray.get(store.read.remote(tag))
    if not hit:
        raise KeyError(f"cache miss for tag {tag!r}")
    return value


def where_provider(tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> tuple[str, str]:
    return "bypassed", ray.get_runtime_context().get_node_id()


def processes_with(marker: str) -> int:
    return len(subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split())


@pytest.fixture
def yaml_file(tmp_path: Path) -> Callable[[str, str], str]:
    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
def cache(tmp_path: Path, yaml_file: Callable[[str, str], str]) -> Iterator[str]:
    """A running cache whose YAML turns on write-through for ``square``; yields the YAML path."""
    config = yaml_file("cache.yaml", "cache:\n  square: true\n")
    start_cache(size=16, units="MB", cache_dir_path=str(tmp_path / "cache"), yaml_path=config)
    yield config
    stop_cache()


@pytest.fixture(autouse=True)
def no_bypass() -> Iterator[None]:
    Bypass(None)
    yield
    Bypass(None)


def records_of(log_path: str, function: str) -> list[CallRecord]:
    return [record for record in load_profile(log_path).calls if record.function.endswith(function)]


def test_bypass_cache_and_profiler_on_one_dispatch(
    cache: str, tmp_path: Path, yaml_file: Callable[[str, str], str]
) -> None:
    journal = str(tmp_path / "journal.txt")
    profiler.start_collector(log_dir=str(tmp_path / "profile"))
    try:
        assert get(square.options(_chia_tag="iter0_x3").chia_remote(3, journal)) == 9
        store = get_active_cache()
        assert store is not None
        wait_until(lambda: ray.get(store.has.remote("iter0_x3")), message="the cache to hold iter0_x3")
        replay = Bypass(yaml_path=yaml_file("replay.yaml", "bypass:\n  square: true\n"))
        replay.set_provider("square", cache_provider)
        assert get(square.options(_chia_tag="iter0_x3").chia_remote(3, journal)) == 9
    finally:
        log_path = profiler.stop_collector()
    assert Path(journal).read_text() == "3\n"  # the replay did not run the real function
    assert log_path is not None
    real, replayed = sorted(records_of(log_path, "square"), key=lambda record: record.submitted or 0.0)
    assert (real.tag, real.bypassed, real.cache_write) == ("iter0_x3", False, True)
    assert (replayed.tag, replayed.bypassed) == ("iter0_x3", True)
    assert replayed.provider is not None and replayed.provider.endswith("cache_provider")


def test_colocated_members_run_their_provider_on_the_pinned_node(
    cluster: Any, yaml_file: Callable[[str, str], str]
) -> None:
    bypass = Bypass(yaml_path=yaml_file("where.yaml", "bypass:\n  where: true\n"))
    bypass.set_provider("where", where_provider)
    with PinnedPair() as node:
        results = get([node.where.chia_remote(i) for i in range(10)])
    assert {kind for kind, _ in results} == {"bypassed"}
    assert {node_id for _, node_id in results} == {cluster.node_ids["node_b"]}


def test_chia_wait_over_cached_refs(cache: str, tmp_path: Path, yaml_file: Callable[[str, str], str]) -> None:
    journal = str(tmp_path / "journal.txt")
    tags = [f"sweep_{i}" for i in range(6)]
    get([square.options(_chia_tag=tag).chia_remote(i, journal) for i, tag in enumerate(tags)])
    store = get_active_cache()
    assert store is not None
    wait_until(lambda: all(ray.get([store.has.remote(tag) for tag in tags])), message=f"the cache to hold {tags}")
    replay = Bypass(
        yaml_path=yaml_file("replay.yaml", "bypass:\n  square:\n    bypass: true\n    tags: ['sweep_.*']\n")
    )
    replay.set_provider("square", cache_provider)
    tracked = [
        TrackedRef(square.options(_chia_tag=tag).chia_remote(i, journal), label=tag) for i, tag in enumerate(tags)
    ]
    ready, pending = chia_wait(tracked, num_returns=len(tracked), timeout=120, pending_timeout=30)
    assert pending == [] and [t.label for t in ready] == tags
    assert [get(t.ref) for t in ready] == [i * i for i in range(6)]
    assert len(Path(journal).read_text().splitlines()) == 6  # only the first, real sweep ran


def test_cancel_under_profiling_kills_the_tree_and_is_recorded(tmp_path: Path) -> None:
    marker = f"chia-cross-cancel-{uuid.uuid4().hex}"
    profiler.start_collector(log_dir=str(tmp_path / "profile"))
    try:
        ref = spawn_tree.options(_chia_tag="hung").chia_remote(marker)
        wait_until(lambda: processes_with(marker) == 2, message="the task's process tree to start")
        chia_cancel(ref, grace=2.0)
        wait_until(lambda: processes_with(marker) == 0, timeout=15, message="chia_cancel to leave no process behind")
        with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError)):
            get(ref, timeout=60)
    finally:
        log_path = profiler.stop_collector()
    assert log_path is not None
    (record,) = records_of(log_path, "spawn_tree")
    assert record.tag == "hung" and record.submitted is not None


def test_chia_tool_placed_by_a_colocated_node(cluster: Any, tmp_path: Path) -> None:
    with PinnedPair() as node:
        tool = BashTool("colocated_shell", work_dir=str(tmp_path), task_options=node.task_options)
        try:
            assert tool.node_id == cluster.node_ids["node_b"]
            assert get(node.where.chia_remote(0))[1] == tool.node_id

            async def call() -> str:
                async with Client(tool.url) as client:
                    result = await client.call_tool("colocated_shell_run_command", {"command": "pwd"})
                    return "".join(getattr(block, "text", "") for block in result.content)

            assert asyncio.run(call()).strip() == str(tmp_path)
        finally:
            tool.stop()
