"""chia demo: a small design-space-exploration (DSE) loop on Ray.

What it shows, in order:

1. a local Ray cluster with two worker nodes (when no RAY_ADDRESS is set);
2. a ``build`` + ``simulate`` pair of ``@ChiaFunction``s running a real
   simulator subprocess, colocated on one worker per ``ColocatedNode``;
3. a sweep of configurations dispatched with ``_chia_tag``s and collected
   with ``chia_wait`` (with progress), its parallelism read live from a KV knob;
4. results written through to the cache (``cache: true``), then a second
   sweep replayed from the cache by a bypass provider — and both timings;
5. an agent step: a scripted LLM inspects a simulator log through a BashTool
   served over MCP from a ChiaTool actor on the simulation node;
6. a hung simulation cancelled with ``chia_cancel``: its process tree is gone;
7. the profile exported as a Chrome trace, a per-function summary, and a
   self-contained HTML report (timeline, dataflow, summary, the best cost
   per configuration logged with ``log_metric``).

    scripts/dev demo                 # embedded local Ray (loopback), two worker nodes
    RAY_ADDRESS=host:port scripts/dev demo   # an existing cluster
    scripts/dev demo --short         # fewer configurations (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind 127.0.0.1 only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
from fastmcp import Client
from ray.cluster_utils import Cluster

from chia.base.bypass import Bypass
from chia.base.cache import get_active_cache, start_cache, stop_cache
from chia.base.chia_kv_store import get_or_create_kv_store, query_kv
from chia.base.chia_wait import TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, chia_cancel, get
from chia.base.colocated import ColocatedNode
from chia.base.llm_call import LLMCallBase, QueryResult
from chia.base.tools.BashTool import BashTool
from chia.base.tools.ChiaTool import ChiaTool
from chia.trace import log_metric, profiler
from chia.trace.export import chrome_trace, format_summary, load_profile, summarize
from chia.trace.report import write_report

SIMULATOR = Path(__file__).resolve().with_name("dse") / "simulator.py"


@ChiaFunction(num_cpus=1)
def build(build_dir: str) -> str:
    """Build the simulator on this worker (its artifacts stay on the worker's disk)."""
    out = subprocess.run(
        [sys.executable, str(SIMULATOR), "build", build_dir], check=True, capture_output=True, text=True
    ).stdout
    built: str = json.loads(out)["built"]
    return built


@ChiaFunction(num_cpus=1)
def simulate(build_dir: str, config: dict[str, float], out_log: str, hang_marker: str = "") -> dict[str, Any]:
    """Run one simulation of ``config`` with the simulator built in ``build_dir``."""
    cmd = [sys.executable, str(SIMULATOR), "run", build_dir, json.dumps(config), out_log]
    if hang_marker:
        cmd += ["--hang", hang_marker]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out)
    result["node"] = ray.get_runtime_context().get_node_id()[:8]
    return result


class SimNode(ColocatedNode):
    """One simulator installation: build and simulate always share a worker."""

    _MEMBER_FNS = ("build", "simulate")
    _DEFAULT_BUNDLE: ClassVar[Mapping[str, float]] = {"CPU": 1.0}

    build = build
    simulate = simulate


class ScriptedLLM(LLMCallBase):
    """A deterministic stand-in for an LLM agent: no network, one scripted tool call."""

    def __init__(self, system_message: str, command: str) -> None:
        super().__init__(system_message)
        self.command = command

    def prompt(self, user_message: str, tools: Sequence[ChiaTool] | None = ()) -> QueryResult:
        tool = next(iter(tools or ()))
        servers = self.mcp_servers([tool])[tool.name]
        output = asyncio.run(self._call(servers["url"], servers["headers"], f"{tool.name}_run_command"))
        transcript = f"user: {user_message}\ntool {tool.name}_run_command({self.command!r}):\n{output}"
        best = output.strip().splitlines()[-1] if output.strip() else "nothing"
        return QueryResult(f"The best design's log ends with: {best}", 0, "", transcript, success=True)

    async def _call(self, url: str, headers: dict[str, str], tool_name: str) -> str:
        from fastmcp.client.transports import StreamableHttpTransport

        async with Client(StreamableHttpTransport(url, headers=headers)) as client:
            listed = [t.name for t in await client.list_tools()]
            assert tool_name in listed, listed
            result = await client.call_tool(tool_name, {"command": self.command})
            return "".join(getattr(block, "text", "") for block in result.content)


def configurations(short: bool) -> list[dict[str, float]]:
    cores = (1, 2, 4) if short else (1, 2, 4, 8)
    caches = (32, 128) if short else (32, 64, 128)
    return [{"cores": c, "cache_kb": k, "freq_ghz": 2.0} for c, k in itertools.product(cores, caches)]


def tag_of(config: dict[str, float]) -> str:
    return f"sim_c{int(config['cores'])}_k{int(config['cache_kb'])}"


def sweep(
    nodes: list[SimNode],
    builds: list[str],
    configs: list[dict[str, float]],
    work: Path,
    knobs: Any,
    metric: str | None = None,
) -> dict[str, Any]:
    """Dispatch every configuration, at most ``num_parallel`` (a live knob) in flight.

    With ``metric``, the best cost so far is logged under that name after each result.
    """
    queue = list(configs)
    pending: list[TrackedRef] = []
    results: dict[str, Any] = {}
    while queue or pending:
        limit = int(query_kv(knobs, "num_parallel", default=2, timeout=5.0))
        while queue and len(pending) < limit:
            index = (len(configs) - len(queue)) % len(nodes)  # alternate between the nodes
            config = queue.pop(0)
            node, build_dir = nodes[index], builds[index]
            tag = tag_of(config)
            log = str(work / "logs" / f"{tag}.log")
            ref = node.simulate.options(_chia_tag=tag).chia_remote(build_dir, config, log)
            pending.append(TrackedRef(ref, label=tag))
        ready, pending = chia_wait(pending, num_returns=1, timeout=60.0, pending_timeout=30.0, progress=True)
        for tracked in ready:
            results[tracked.label] = get(tracked.ref)
            if metric is not None:
                log_metric(metric, min(result["cost"] for result in results.values()), step=len(results))
    return results


def cache_provider(tag: str | None, data_path: str | None, *args: Any, **kwargs: Any) -> Any:
    """Bypass provider: replay a simulation from the cache instead of running it."""
    cache = get_active_cache()
    if cache is None or tag is None:
        raise KeyError(f"no cache or no tag to replay (tag {tag!r})")
    hit, value = ray.get(cache.read.remote(tag))
    if not hit:
        raise KeyError(f"cache miss for tag {tag!r}")
    return value


def start_ray() -> Cluster | None:
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, namespace="chia_demo")
        return None
    print("starting a local Ray cluster on 127.0.0.1: a head and two worker nodes ...", flush=True)
    with socket.socket() as probe:  # the state API (stuck-task detection) needs the dashboard: any free port
        probe.bind(("127.0.0.1", 0))
        dashboard_port = probe.getsockname()[1]
    head = {"num_cpus": 0, "include_dashboard": True, "dashboard_port": dashboard_port}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="chia_demo", log_to_driver=False)
    return cluster


def count_processes(marker: str) -> int:
    return len(subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split())


def wait_for_processes(marker: str, count: int, timeout: float = 30.0) -> bool:
    """Poll until exactly ``count`` processes carry ``marker`` (0: all gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count_processes(marker) == count:
            return True
        time.sleep(0.1)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="fewer configurations (CI)")
    parser.add_argument("--out", default=None, help="where logs, cache and profile go (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="chia-demo-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    cluster = start_ray()
    try:
        run_demo(work, configurations(args.short))
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()  # type: ignore[no-untyped-call]
    print(f"\ndone in {time.monotonic() - started:.1f} s; everything is under {work}")


def run_demo(work: Path, configs: list[dict[str, float]]) -> None:
    profiler.start_collector(log_dir=str(work / "profile"))
    config_yaml = work / "chia.yaml"
    config_yaml.write_text("cache:\n  simulate: true\n")
    replay_yaml = work / "replay.yaml"
    replay_yaml.write_text("bypass:\n  simulate:\n    bypass: true\n    tags: ['sim_.*']\n")
    start_cache(size=64, units="MB", cache_dir_path=str(work / "cache"), yaml_path=str(config_yaml))
    knobs = get_or_create_kv_store("dse_knobs", "chia_demo", num_parallel=2)
    print("\n[1] knobs: num_parallel=2 (an operator can change it live:")
    print("    python -m chia.base.chia_kv_store --name dse_knobs --namespace chia_demo --set num_parallel 4)")

    print("\n[2] two simulator nodes: build once per node, simulations pinned next to their build")
    nodes = [SimNode(), SimNode()]
    try:
        builds = [str(work / f"build{i}") for i in range(len(nodes))]
        built = get([node.build.chia_remote(path) for node, path in zip(nodes, builds, strict=True)])
        for index, model in enumerate(built):
            print(f"    node {index}: built {model}")

        Bypass(yaml_path=None)  # first run: everything runs for real
        print(f"\n[3] sweep of {len(configs)} configurations, for real (results written through to the cache)")
        first_start = time.monotonic()
        real = sweep(nodes, builds, configs, work, knobs, metric="best_cost")
        first_time = time.monotonic() - first_start
        best_tag = min(real, key=lambda tag: real[tag]["cost"])
        for tag in sorted(real, key=lambda t: real[t]["cost"]):
            print(f"    {tag:<14} cost {real[tag]['cost']:<10} on node {real[tag]['node']}")

        print("\n[4] the same sweep replayed from the cache through a bypass provider")
        ray.get(knobs.set.remote("num_parallel", 4))  # what the operator's --set would do
        bypass = Bypass(yaml_path=str(replay_yaml))
        bypass.set_provider("simulate", cache_provider)
        second_start = time.monotonic()
        replayed = sweep(nodes, builds, configs, work, knobs)
        second_time = time.monotonic() - second_start
        Bypass(yaml_path=None)
        assert replayed == real, "the replay must give the recorded results"
        print(f"    first run (real simulations): {first_time:6.2f} s")
        print(f"    second run (replayed):        {second_time:6.2f} s  ({first_time / second_time:.1f}x faster)")

        print("\n[5] an agent inspects the best design's simulator log over MCP")
        tool = BashTool("sim_shell", work_dir=str(work), task_options=nodes[0].task_options)
        try:
            llm = ScriptedLLM("You are a DSE assistant.", f"tail -n 3 logs/{best_tag}.log")
            answer = llm.prompt(f"Why is {best_tag} the best design?", tools=[tool])
            print("    " + answer.stream_result.replace("\n", "\n    "))
            print(f"    agent: {answer.result}")
        finally:
            tool.stop()

        print("\n[6] a hung simulation, cancelled with chia_cancel")
        marker = f"chia-demo-hang-{os.getpid()}"
        hung = nodes[1].simulate.chia_remote(builds[1], configs[0], str(work / "logs" / "hung.log"), marker)
        if not wait_for_processes(marker, 2):  # the simulator and its helper grandchild
            raise RuntimeError("the hung simulation never started")
        print(f"    running: the simulator and its helper grandchild ({count_processes(marker)} processes)")
        chia_cancel(hung, grace=2.0)
        gone = wait_for_processes(marker, 0, timeout=10.0)
        print(f"    after chia_cancel: process tree {'gone' if gone else 'STILL ALIVE'}")
        if not gone:
            raise RuntimeError("chia_cancel left processes behind")
        try:
            get(hung, timeout=30)
        except (ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError) as error:
            print(f"    get() of the cancelled task raises {type(error).__name__}")
    finally:
        for node in nodes:
            node.close()
        stop_cache()

    print("\n[7] profile")
    log_path = profiler.stop_collector()
    if log_path is None:
        raise RuntimeError("the profiler collected nothing")
    data = load_profile(log_path)
    trace_path = work / "profile" / "trace.json"
    trace_path.write_text(json.dumps(chrome_trace(data)))
    print(format_summary(summarize(data)))
    print(f"    Chrome trace: {trace_path} (open in https://ui.perfetto.dev or chrome://tracing)")
    report_path = write_report(data, work / "profile" / "report.html", title="chia demo: DSE sweep")
    print(f"    HTML report: {report_path} (one file; opens offline in any browser)")


if __name__ == "__main__":
    main()
