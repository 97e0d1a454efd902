"""What the profiler records for a real two-node workload, and that values are untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from chia.base import dispatch_hooks
from chia.base.ChiaFunction import ChiaFunction, get
from chia.trace import _recorder, export, log_metric, profiler


@ChiaFunction(num_cpus=0, resources={"head": 0.01})
def produce(x: int) -> int:
    profiler.log_event("produced", x=x)
    log_metric("produced_value", x * 10)  # from a task, through the same path as its rows
    return x * 10


@ChiaFunction(num_cpus=0, resources={"node_b": 0.01})
def consume(value: int, offset: int = 0) -> int:
    return value + offset


@ChiaFunction(num_cpus=0, resources={"head": 0.01})
def fan_out(n: int) -> int:
    """Nested dispatches from a worker, plus a local call inside the task."""
    return sum(get([consume.chia_remote(i) for i in range(n)])) + consume(100)


@ChiaFunction(num_cpus=0)
def fail(message: str) -> None:
    raise KeyError(message)


def workload() -> dict[str, Any]:
    """Everything a user sees from a small loop: values, ray.wait, errors."""
    a: Any = produce.chia_remote(1)  # an ObjectRef passed where the function takes its value
    b = consume.chia_remote(a, offset=5)
    c = consume.chia_remote(value=a)
    tagged = produce.options(_chia_tag="iter0").chia_remote(2)
    ready, _ = ray.wait([tagged], timeout=60)
    seen: dict[str, Any] = {
        "single": get(a),
        "list": get([b, c]),
        "waited": [type(ref).__name__ for ref in ready],
        "ray_get": ray.get(tagged),
        "nested": get(fan_out.chia_remote(3)),
        "local": produce(4),
    }
    with pytest.raises(KeyError) as remote_error:
        get(fail.chia_remote("boom"))
    with pytest.raises(KeyError) as local_error:
        fail("bang")
    seen["remote_error"] = (type(remote_error.value).__mro__[1:3], "boom" in str(remote_error.value))
    seen["local_error"] = repr(local_error.value)
    profiler.log_event("driver_mark", n=1, thing=object())
    for step, best in enumerate((9.0, 7.5)):
        log_metric("best_cost", best, step=step)
    return seen


@pytest.fixture(scope="module")
def runs(
    cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], dict[str, Any], Path]]:
    """The workload once without and once with a collector; yields both results and the log."""
    profiler.stop_collector()
    plain = workload()
    log_dir = tmp_path_factory.mktemp("profile")
    profiler.start_collector(log_dir=log_dir)
    profiled = workload()
    log = profiler.stop_collector()
    assert log is not None
    yield plain, profiled, Path(log)


@pytest.fixture(scope="module")
def data(runs: tuple[dict[str, Any], dict[str, Any], Path]) -> export.ProfileData:
    return export.load_profile(runs[2].parent)


def calls_of(data: export.ProfileData, name: str) -> list[export.CallRecord]:
    return [call for call in data.calls if call.function.endswith(f".{name}")]


@pytest.mark.ray_compat
def test_profiling_does_not_change_what_user_code_sees(runs: tuple[dict[str, Any], dict[str, Any], Path]) -> None:
    plain, profiled, _ = runs
    assert profiled == plain
    assert plain["single"] == 10 and plain["list"] == [15, 10] and plain["nested"] == 103
    assert plain["waited"] == ["ObjectRef"] and plain["ray_get"] == 20 and plain["local"] == 40


@pytest.mark.ray_compat
def test_remote_calls_record_node_worker_times_and_resources(data: export.ProfileData, cluster: Any) -> None:
    produced = [call for call in calls_of(data, "produce") if call.remote]
    consumed = [call for call in calls_of(data, "consume") if call.remote and call.caller is None]
    assert len(produced) == 2 and len(consumed) == 2
    for call in produced + consumed:
        assert call.submitted is not None and call.started is not None and call.finished is not None
        assert call.submitted <= call.started <= call.finished
        assert call.worker and call.pid and call.task_id
        assert call.queue_time is not None and call.duration is not None
    assert {call.node for call in produced} == {cluster.node_ids["head"]}
    assert {call.node for call in consumed} == {cluster.node_ids["node_b"]}
    assert produced[0].resources == {"CPU": 0.0, "head": 0.01}
    assert sorted(str(call.tag) for call in produced) == ["None", "iter0"]


@pytest.mark.ray_compat
def test_objectref_arguments_become_dependency_edges(data: export.ProfileData) -> None:
    (first,) = [call for call in calls_of(data, "produce") if call.remote and call.tag is None]
    consumers = [call for call in calls_of(data, "consume") if call.caller is None and call.remote]
    assert [call.deps for call in consumers] == [(first.call_id,), (first.call_id,)]


def test_nested_and_local_calls_know_their_caller(data: export.ProfileData, cluster: Any) -> None:
    (outer,) = calls_of(data, "fan_out")
    children = [call for call in calls_of(data, "consume") if call.caller == outer.call_id]
    assert len(children) == 4
    nested = [call for call in children if call.remote]
    (local,) = [call for call in children if not call.remote]
    assert len(nested) == 3 and all(call.submitted is not None for call in nested)
    assert nested[0].submit_worker == outer.worker
    assert (local.node, local.worker) == (outer.node, outer.worker)
    (driver_local,) = [call for call in calls_of(data, "produce") if not call.remote]
    assert driver_local.submitted is None and driver_local.node == cluster.node_ids["head"]
    assert driver_local.worker in data.drivers


def test_errors_are_recorded_and_still_raised(data: export.ProfileData) -> None:
    assert sorted((call.remote, call.error) for call in calls_of(data, "fail")) == [
        (False, "KeyError"),
        (True, "KeyError"),
    ]


def test_custom_events_carry_call_and_fields(data: export.ProfileData) -> None:
    produced = {call.call_id for call in calls_of(data, "produce")}
    events = [event for event in data.events if event.name == "produced"]
    assert sorted(event.fields["x"] for event in events) == [1, 2, 4]
    assert {event.call_id for event in events} == produced
    (mark,) = [event for event in data.events if event.name == "driver_mark"]
    assert mark.fields["n"] == 1 and mark.fields["thing"].startswith("<object object")
    assert mark.call_id is None and mark.worker in data.drivers


def test_metrics_from_the_loop_and_from_tasks(data: export.ProfileData, cluster: Any) -> None:
    best = [(point.step, point.value) for point in data.metrics if point.name == "best_cost"]
    assert best == [(0, 9.0), (1, 7.5)]
    produced = [point for point in data.metrics if point.name == "produced_value"]
    assert sorted(point.value for point in produced) == [10.0, 20.0, 40.0]
    remote = {call.call_id: call for call in calls_of(data, "produce") if call.remote}
    in_tasks = [(point, remote[point.call_id]) for point in produced if point.call_id in remote]
    assert len(in_tasks) == 2 and {point.node for point, _ in in_tasks} == {cluster.node_ids["head"]}
    assert all(point.step is None and point.worker == call.worker for point, call in in_tasks)


def test_arguments_are_summarized_by_type_and_size(data: export.ProfileData) -> None:
    consumers = sorted((call.args for call in calls_of(data, "consume") if call.caller is None), key=str)
    assert consumers == ["ref, offset=5", "value=ref"]
    assert {call.args for call in calls_of(data, "fail")} == {"str[4]"}  # never the string itself
    assert sorted(str(call.args) for call in calls_of(data, "produce")) == ["1", "2", "4"]
    assert {call.args for call in calls_of(data, "fan_out")} == {"3"}


def test_a_profiled_run_takes_at_most_300_bytes_per_call_on_disk(cluster: Any, tmp_path: Path) -> None:
    """Tags, resources, arguments, dependencies and two nodes: everything the report reads, compactly."""
    profiler.stop_collector()
    profiler.start_collector(log_dir=tmp_path)
    refs: list[Any] = [produce.options(_chia_tag=f"iter{i}_sweep").chia_remote(i) for i in range(150)]
    chained = [consume.options(_chia_tag=f"iter{i}_use").chia_remote(ref, offset=i) for i, ref in enumerate(refs)]
    assert get(chained) == [11 * i for i in range(150)]
    log = profiler.stop_collector()
    assert log is not None
    data = export.load_profile(log)
    assert len(data.calls) == 300 and sum(len(call.deps) for call in data.calls) == 150
    assert all(call.tag and call.args and call.node and call.worker and call.submitted for call in data.calls)
    assert Path(log).stat().st_size / len(data.calls) <= 300


def test_a_burst_larger_than_a_batch_reaches_the_log_whole_and_in_order(cluster: Any, tmp_path: Path) -> None:
    """Rows ship in bounded batches (never through the object store); none is lost or reordered."""
    profiler.stop_collector()
    profiler.start_collector(log_dir=tmp_path)
    count = 3 * _recorder.ROWS_PER_BATCH + 7
    for index in range(count):
        profiler.log_event("burst", index=index)
    log = profiler.stop_collector()
    assert log is not None
    data = export.load_profile(log)
    assert [event.fields["index"] for event in data.events if event.name == "burst"] == list(range(count))


def test_chrome_trace_has_node_and_worker_tracks_and_flow_arrows(data: export.ProfileData, cluster: Any) -> None:
    trace = export.chrome_trace(data)
    events = trace["traceEvents"]
    processes = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert processes[1] == f"node {cluster.node_ids['head'][:12]} (head)"
    assert f"node {cluster.node_ids['node_b'][:12]}" in processes.values()
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    slices = [e for e in events if e["ph"] == "X"]
    assert len(slices) == sum(call.duration is not None for call in data.calls)
    assert {(e["pid"], e["tid"]) for e in slices} <= set(threads)
    assert any(name.startswith("driver ") for name in threads.values())
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    finishes = {e["id"]: e for e in events if e["ph"] == "f"}
    assert len(starts) == 2 and starts.keys() == finishes.keys()
    node_b_pid = next(pid for pid, name in processes.items() if cluster.node_ids["node_b"][:12] in name)
    assert {finish["pid"] for finish in finishes.values()} == {node_b_pid}
    assert {start["pid"] for start in starts.values()} == {1}


def test_summary_counts_calls_per_function(data: export.ProfileData, cluster: Any) -> None:
    rows = {row.function.rsplit(".", 1)[-1]: row for row in export.summarize(data)}
    assert rows["consume"].count == 6 and rows["produce"].count == 3 and rows["fail"].errors == 2
    assert set(rows["consume"].nodes) == {cluster.node_ids["head"], cluster.node_ids["node_b"]}
    assert rows["produce"].queue_p50 is not None and rows["produce"].p50 <= rows["produce"].p95
    assert (rows["consume"].real.count, rows["consume"].replayed.count, rows["fail"].real.failed) == (6, 0, 2)
    table = export.format_summary(list(rows.values()))
    assert table.splitlines()[0].split()[:3] == ["function", "mode", "calls"]


@ChiaFunction(num_cpus=0)
def shipped_context() -> dict[str, Any]:
    """The hook context this call's body received."""
    call = dispatch_hooks.current_call()
    assert call is not None
    return dict(call.context)


@ChiaFunction(num_cpus=0)
def recorded(x: int) -> int:
    return x


def replay(x: int) -> int:
    """Runs instead of ``recorded`` when the test's replacing hook is on."""
    return -x


@ChiaFunction(num_cpus=0)
def never_runs() -> int:
    raise AssertionError("the test hook replaces every call of never_runs without a task")


def replace_recorded(call: dispatch_hooks.DispatchCall) -> Any:
    """A bypass-like hook: annotates the context only when it travels anyway, then submits ``replay``."""
    if call.name == "never_runs":
        return ray.put(7)  # replaced without submitting a task
    if call.name != "recorded":
        return None
    if call.context or call.tag is not None:
        call.context["bypass.bypassed"] = True
        call.context["bypass.provider"] = "tests.replay"
    return call.submit(replay, *call.args, **call.kwargs)


def test_calls_ship_no_context_and_replaced_calls_keep_their_provider(cluster: Any, tmp_path: Path) -> None:
    profiler.stop_collector()
    remove = dispatch_hooks.add_dispatch_hook(replace_recorded, priority=50)
    profiler.start_collector(log_dir=tmp_path)
    try:
        context = get(shipped_context.chia_remote())
        tagged_context = get(shipped_context.options(_chia_tag="t1").chia_remote())
        replayed = get(recorded.chia_remote(3))
        put = get(never_runs.chia_remote())
    finally:
        log = profiler.stop_collector()
        remove()
    assert context == {} and tagged_context == {}  # the profiler sends nothing with a call
    assert replayed == -3 and put == 7
    assert log is not None
    data = export.load_profile(log)
    shipped = calls_of(data, "shipped_context")
    assert [call.tag for call in sorted(shipped, key=lambda call: call.submitted or 0.0)] == [None, "t1"]
    (replaced,) = calls_of(data, "recorded")
    for call in [*shipped, replaced]:
        assert call.submitted is not None and call.started is not None and call.task_id
        assert call.submit_worker in data.drivers and call.worker not in data.drivers
    assert (replaced.bypassed, replaced.provider) == (True, "tests.replay")
    assert not any(call.bypassed for call in shipped)
    (unran,) = calls_of(data, "never_runs")
    assert unran.submitted is not None and (unran.started, unran.task_id, unran.duration) == (None, None, None)
