"""MCP tool-call round trip: a ChiaTool in a Ray actor vs the same tool on a bare FastMCP server.

Every server exposes ``echo(x: int) -> int`` over streamable HTTP on loopback. The ChiaTool
runs in a Ray actor (uvicorn thread, Host/Origin guard on). The baseline is a plain
``FastMCP.http_app()`` on uvicorn in a thread of this process; the same bare server in a
separate plain process shows what the process boundary alone costs. One FastMCP client
session per server makes sequential calls; rounds rotate between servers. Prints the
median over rounds of each side's p50 (and p90) and the ratios, target: chia / bare
in-process p50 <= 1.1. For scale it also prints a raw Ray actor method round trip.

    python benchmarks/tools_mcp.py [--calls 300] [--rounds 7] [--warmup 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray
import uvicorn
from fastmcp import Client, FastMCP

from chia.base.tools.ChiaToolTemplate import ChiaToolTemplate


def echo(x: int) -> int:
    """Return x."""
    return x


class EchoTool(ChiaToolTemplate):
    def setup(self) -> None:
        self.mcp.add_tool(echo, name="echo")


@ray.remote(num_cpus=0)
class RawEcho:
    def echo(self, x: int) -> int:
        return x


def serve_bare() -> tuple[str, uvicorn.Server, threading.Thread]:
    """The same tool on a plain FastMCP app, uvicorn in a thread of this process (port 0)."""
    server = FastMCP("bare")
    server.add_tool(echo)
    app = server.http_app(path="/bare/mcp")
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not uv.started and time.monotonic() < deadline:
        thread.join(0.01)
    port = uv.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}/bare/mcp", uv, thread


def spawn_bare_process() -> tuple[str, subprocess.Popen[str]]:
    """The bare server in a child process (this script with --serve-bare); returns its URL."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    return child.stdout.readline().strip(), child


def serve_bare_until_stdin_closes() -> None:
    url, server, thread = serve_bare()
    print(url, flush=True)
    sys.stdin.read()
    server.should_exit = True
    thread.join(10)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_calls(client: Client[Any], n: int) -> list[float]:
    """Latency of ``n`` sequential ``echo`` tool calls through ``client``."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await client.call_tool("echo", {"x": 1})
        samples.append(time.perf_counter() - start)
    return samples


async def bench(urls: dict[str, str], calls: int, rounds: int, warmup: int) -> dict[str, list[list[float]]]:
    """Per server name, one list of call latencies per round."""
    results: dict[str, list[list[float]]] = {name: [] for name in urls}
    async with contextlib.AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(Client(url)) for name, url in urls.items()}
        for client in clients.values():
            await timed_calls(client, warmup)
        names = list(urls)
        for round_index in range(rounds):
            for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
                results[name].append(await timed_calls(clients[name], calls))
    return results


def raw_ray_round_trips(calls: int, rounds: int) -> list[float]:
    actor = RawEcho.remote()  # type: ignore[attr-defined]
    ray.get(actor.echo.remote(0))
    p50s = []
    for _ in range(rounds):
        samples = []
        for _ in range(calls):
            start = time.perf_counter()
            ray.get(actor.echo.remote(1))
            samples.append(time.perf_counter() - start)
        p50s.append(percentile(samples, 0.5))
    ray.kill(actor)
    return p50s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare_until_stdin_closes()
        return

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    tool = EchoTool("bench")
    bare_url, bare_server, bare_thread = serve_bare()
    process_url, bare_process = spawn_bare_process()
    try:
        urls = {"bare": bare_url, "bare-process": process_url, "chia": tool.url}
        results = asyncio.run(bench(urls, args.calls, args.rounds, args.warmup))
        raw = raw_ray_round_trips(args.calls, args.rounds)
    finally:
        tool.stop()
        bare_server.should_exit = True
        bare_thread.join(10)
        bare_process.communicate(timeout=30)
        ray.shutdown()

    labels = {
        "bare": "bare FastMCP, in-process",
        "bare-process": "bare FastMCP, own process",
        "chia": "ChiaTool in a Ray actor",
    }
    p50 = {name: statistics.median(percentile(r, 0.5) for r in results[name]) for name in results}
    p90 = {name: statistics.median(percentile(r, 0.9) for r in results[name]) for name in results}
    print(f"calls/round={args.calls} rounds={args.rounds} (medians over rounds)")
    for name, label in labels.items():
        print(f"{label:28} p50 {p50[name] * 1e3:7.3f} ms   p90 {p90[name] * 1e3:7.3f} ms")
    print(f"{'raw Ray actor call':28} p50 {statistics.median(raw) * 1e3:7.3f} ms")
    ratio = p50["chia"] / p50["bare"]
    verdict = "OK" if ratio <= 1.1 else "ABOVE TARGET"
    print(f"ratio chia / bare in-process  p50 = {ratio:.3f} (target <= 1.1): {verdict}")
    print(f"ratio chia / bare own process p50 = {p50['chia'] / p50['bare-process']:.3f}")


if __name__ == "__main__":
    main()
