"""chia demo: a small design-space-exploration (DSE) loop on Ray.

What it shows, in order:

1. a local Ray cluster with two worker nodes (when no RAY_ADDRESS is set);
2. a ``build`` + ``simulate`` pair of ``@ChiaFunction``s running a real
   simulator subprocess, colocated on one worker per ``ColocatedNode``;
3. a sweep of configurations dispatched with ``_chia_tag``s and collected
   with ``chia_wait`` (with progress), its parallelism read live from a KV knob;
4. results written through to the cache (``cache: true``), then a second
   sweep replayed from the cache by a bypass provider — and both timings;
5. an agent step: an ``OpenAICompatLLM`` (its agentic loop dispatched to a worker)
   inspects a simulator log through a BashTool served over MCP from a ChiaTool actor
   on the simulation node; the model is a scripted local endpoint (offline,
   deterministic) unless ``--llm-base-url`` and ``--model`` name a real one;
6. a hung simulation cancelled with ``chia_cancel``: its process tree is gone;
7. the profile exported as a Chrome trace, a per-function summary, and a
   self-contained HTML report (timeline, dataflow, summary, the best cost
   per configuration logged with ``log_metric``).

    scripts/dev demo                 # embedded local Ray (loopback), two worker nodes
    RAY_ADDRESS=host:port scripts/dev demo   # an existing cluster
    scripts/dev demo --short         # fewer configurations (CI)
    OPENAI_API_KEY=... scripts/dev demo --llm-base-url https://api.openai.com/v1 --model gpt-4.1-mini
"""

from __future__ import annotations

import argparse
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
from ray.cluster_utils import Cluster

from chia.base.bypass import Bypass
from chia.base.cache import get_active_cache, start_cache, stop_cache
from chia.base.chia_kv_store import get_or_create_kv_store, query_kv
from chia.base.chia_wait import TrackedRef, chia_wait
from chia.base.ChiaFunction import ChiaFunction, chia_cancel, get
from chia.base.colocated import ColocatedNode
from chia.base.llm_call import QueryResult
from chia.base.tools.BashTool import BashTool
from chia.base.tools.ChiaTool import ChiaTool
from chia.models.openai_compat import OpenAICompatLLM
from chia.models.scripted import ChatRequest, Reply, ScriptedChatServer
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


class DSEAssistant(OpenAICompatLLM):
    """The LLM agent of the flow: its agentic loop runs on a Ray worker, as a chia function."""

    @ChiaFunction(num_cpus=0)
    def prompt(self, user_message: str, tools: Sequence[ChiaTool] | None = ()) -> QueryResult:
        # The base class by name, not super(): this class is pickled by value (__main__).
        return OpenAICompatLLM.prompt(self, user_message, tools)


def scripted_model(tool: str, best_tag: str) -> ScriptedChatServer:
    """A local stand-in for the model: it reads the best design's log, then answers from it."""

    def answer(request: ChatRequest) -> Reply:
        log_tail = str(request.messages[-1]["content"]).strip().splitlines()
        return Reply.answer(f"The best design's log ends with: {log_tail[-1] if log_tail else 'nothing'}")

    return ScriptedChatServer(
        [Reply.tool_call(f"{tool}_run_command", command=f"tail -n 3 logs/{best_tag}.log"), answer]
    ).start()


def show_transcript(transcript: str) -> None:
    """The agent's turns, one line each (tool results abridged)."""
    for line in transcript.splitlines():
        message = json.loads(line)
        if message["role"] == "tool":
            print(f"    tool result: {' | '.join(str(message['content']).strip().splitlines())}")
        elif message.get("tool_calls"):
            for call in message["tool_calls"]:
                print(f"    {message['role']} calls {call['function']['name']}({call['function']['arguments']})")
        elif message["role"] in ("user", "system"):
            print(f"    {message['role']}: {message['content']}")


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
    # Ray gives a starting node a fixed 30 s to register (and the dashboard's modules
    # 30 s to start, raised here); a busy machine can miss that: start again, twice at most.
    os.environ.setdefault("RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT", "180")
    for attempt in (1, 2, 3):
        cluster = Cluster(initialize_head=True, head_node_args=head)
        try:
            cluster.add_node(num_cpus=1)
            cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            break
        except Exception as error:  # Ray raises a bare Exception for a node that missed its startup limit
            cluster.shutdown()  # type: ignore[no-untyped-call]  # Ray leaves it unannotated
            if attempt == 3 or "timed out during startup" not in str(error):
                raise
            print("a node missed Ray's startup limit (a busy machine); starting the cluster again", flush=True)
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
    parser.add_argument(
        "--llm-base-url",
        default=None,
        help="an OpenAI-compatible endpoint for the agent step, key from $OPENAI_API_KEY (default: a scripted local one)",
    )
    parser.add_argument("--model", default=None, help="the model at --llm-base-url")
    args = parser.parse_args()
    if (args.llm_base_url is None) != (args.model is None):
        parser.error("--llm-base-url and --model go together")
    work = Path(args.out or tempfile.mkdtemp(prefix="chia-demo-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    cluster = start_ray()
    try:
        run_demo(work, configurations(args.short), args.llm_base_url, args.model)
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()  # type: ignore[no-untyped-call]
    print(f"\ndone in {time.monotonic() - started:.1f} s; everything is under {work}")


def run_demo(work: Path, configs: list[dict[str, float]], llm_base_url: str | None, model: str | None) -> None:
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
        endpoint = scripted_model(tool.name, best_tag) if llm_base_url is None else None
        try:
            system = "You are a DSE assistant. Read the simulator logs with your shell tool."
            if endpoint is not None:
                llm = DSEAssistant("scripted-dse-assistant", system, base_url=endpoint.base_url, api_key="scripted")
            else:
                llm = DSEAssistant(str(model), system, base_url=llm_base_url)  # the key: $OPENAI_API_KEY
            print(f"    model {llm.model} at {llm.endpoint}; the loop runs on a worker")
            question = f"Why is {best_tag} the best design? Its log is logs/{best_tag}.log."
            answer = get(llm.prompt.chia_remote(llm, question, tools=[tool]))
            show_transcript(answer.stream_result)
            print(f"    agent: {answer.result}")
        finally:
            tool.stop()
            if endpoint is not None:
                endpoint.stop()

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
