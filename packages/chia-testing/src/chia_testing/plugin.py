"""The pytest plugin of chia-testing, loaded through the ``pytest11`` entry point wherever it is installed.

- Keeps Ray on loopback and its usage stats off (environment defaults, set before any conftest runs).
- Ships every collected test module to Ray workers by value: pytest's importlib mode imports test
  modules under names (``packages.chia-dispatch.tests...``) that no worker can import.
- Fixture ``tagged``: a ``TaggedProcesses`` whose leftovers are SIGKILLed at teardown.
- Stops the running test cluster after the last test of each directory, so the next directory's
  tests (another package's) start without a Ray connection, and fails a test handed a cluster
  fixture value whose cluster was stopped since.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import sys
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from chia_testing._procs import TaggedProcesses

_CLUSTER_MODULE = "chia_testing.cluster"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Register each collected test module with Ray's cloudpickle to be pickled by value."""
    modules: dict[str, ModuleType] = {}
    for item in session.items:
        module = getattr(item, "module", None)
        if isinstance(module, ModuleType):
            modules[module.__name__] = module
    if not modules:
        return
    import ray.cloudpickle  # here, not at plugin load: a run that collects nothing never imports Ray

    register: Callable[[ModuleType], None] = ray.cloudpickle.register_pickle_by_value
    for module in modules.values():
        if sys.modules.get(module.__name__) is module:  # cloudpickle refuses a module it cannot find there
            register(module)


@pytest.fixture
def tagged() -> Iterator[TaggedProcesses]:
    """Tags for a test's subprocesses (``exec -a <tag>-...``); whatever still carries one is SIGKILLed at teardown."""
    processes = TaggedProcesses()
    yield processes
    processes.kill_leftovers()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Fail a test given a session-scoped cluster whose cluster no longer runs, naming why."""
    yield
    cluster_module = sys.modules.get(_CLUSTER_MODULE)
    if cluster_module is None:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, cluster_module.LoopbackCluster) and not value.running:
            pytest.fail(
                f"fixture {name!r} holds the cluster {value.shape.name!r}, stopped since it was "
                "set up (tests of another directory or another cluster shape ran in between). Run each "
                "directory's tests together, or give the fixture scope='function'.",
                pytrace=False,
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the fixtures' teardown: stop the cluster when the next test is in another directory (or none)."""
    yield
    if nextitem is not None and nextitem.path.parent == item.path.parent:
        return
    cluster_module = sys.modules.get(_CLUSTER_MODULE)
    if cluster_module is not None:
        cluster_module.stop_cluster()
