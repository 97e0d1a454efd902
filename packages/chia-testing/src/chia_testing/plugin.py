"""The pytest plugin of chia-testing, loaded through the ``pytest11`` entry point wherever it is installed.

- Keeps Ray on loopback and its usage stats and metrics export off (environment defaults, set before any
  conftest runs).
- Registers the markers every package's tests use: ``slow`` (long fault and stress repetitions) and
  ``ray_compat`` (the tests a package's oldest-Ray matrix cell runs: see ``RAY_COMPAT_MARKER``).
- Ships every collected test module to Ray workers by value: pytest's importlib mode imports test
  modules under names (``packages.chia-dispatch.tests...``) that no worker can import.
- Fixture ``tagged``: a ``TaggedProcesses`` whose leftovers are SIGKILLed at teardown.
- Runs the test modules of a directory that use the same cluster shape one after another (a swap of
  shapes restarts a multi-node cluster: seconds each), keeping each module's tests in their order.
- Stops the running test cluster after the last test of each directory, so the next directory's
  tests (another package's) start without a Ray connection, and fails a test handed a cluster
  fixture value whose cluster was stopped since.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray 2.55's metrics exporter thread can crash a worker (SIGSEGV in OpenTelemetry's
# TemporalMetricStorage::buildMetrics; seen killing the profile collector's actor in CI).
# The tests read no Ray metric, so every cluster they start (and its workers) exports none.
os.environ.setdefault("RAY_enable_metrics_collection", "0")

import itertools
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from chia_testing._procs import TaggedProcesses

_CLUSTER_MODULE = "chia_testing.cluster"
# Set by chia_testing.cluster.cluster_fixture on the fixture function: the ClusterShape it starts.
CLUSTER_SHAPE_ATTRIBUTE = "chia_cluster_shape"


# The oldest-Ray cell of each package's hatch matrix runs `-m 'ray_compat and not slow'`: the tests
# that drive the Ray surfaces chia relies on (core_worker.wait, the GCS client, the state API, internal
# kv, `ray start` with token authentication, task naming, named/detached actors, placement groups).
# The newest cell runs every test, marked or not.
RAY_COMPAT_MARKER = "ray_compat"
MARKERS = {
    "slow": "long fault or stress repetitions (the newest-Ray matrix cell runs them)",
    RAY_COMPAT_MARKER: "drives a Ray surface chia relies on: also run against the oldest supported Ray",
}


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers shared by every package's tests (so `--strict-markers` accepts them)."""
    for name, meaning in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Within each run of a directory's modules, order the modules by the cluster shape they use.

    A module's shape is the first ``cluster_fixture`` one of its tests asks
    for; modules that ask for none run first. Shapes keep the order in which
    they first appear, modules of one shape keep theirs, and no module's
    tests are reordered, so module-scoped fixtures are set up once.
    """
    ordered: list[pytest.Item] = []
    for _, directory_run in itertools.groupby(items, key=lambda item: item.path.parent):
        modules: dict[object, list[pytest.Item]] = {}
        for item in directory_run:
            modules.setdefault(item.path, []).append(item)
        shapes = {path: _first_shape(module_items) for path, module_items in modules.items()}
        first_seen = {shape: rank for rank, shape in enumerate(dict.fromkeys(shapes.values()))}
        for path in sorted(modules, key=lambda path: (shapes[path] is not None, first_seen[shapes[path]])):
            ordered.extend(modules[path])
    items[:] = ordered


def _first_shape(items: list[pytest.Item]) -> str | None:
    """The name of the first cluster shape these tests ask for through a ``cluster_fixture``, if any."""
    for item in items:
        fixture_defs: dict[str, Any] = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        for name in getattr(item, "fixturenames", ()):
            for definition in fixture_defs.get(name, ()):
                shape = getattr(definition.func, CLUSTER_SHAPE_ATTRIBUTE, None)
                if shape is not None:
                    return str(shape.name)
    return None


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
