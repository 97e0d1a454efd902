"""One tool call inside OpenAICompatLLM's agentic loop vs a bare FastMCP client call.

Both sides call ``echo(x: int) -> int`` on the same ChiaTool (a Ray actor, streamable HTTP
on loopback), sequentially, over one open MCP session each. The loop side runs what
``OpenAICompatLLM.prompt`` runs for each tool call the model makes: the arguments as the
model wrote them (JSON text) through the prompt's MCP session (``ToolSessions``) to the
tool message sent back. The bare side is ``fastmcp.Client.call_tool``. Rounds alternate
between the sides; prints the median over rounds of each side's p50 (and p90) and the
ratio, target: loop / bare p50 <= 1.1. For scale it also times, against a scripted Chat
Completions endpoint, a prompt answered without tools (the fixed cost of one ``prompt``:
event loop, SDK client, MCP sessions) and the rounds of a prompt with ``--turns`` tool calls.

    python benchmarks/llm_loop.py [--calls 300] [--rounds 7] [--warmup 50] [--turns 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from types import SimpleNamespace

import ray
from fastmcp import Client
from tools_mcp import EchoTool, percentile, timed_calls

from chia.base.tools._mcp_client import ToolSessions
from chia.models.openai_compat import OpenAICompatLLM, _run_tool_call
from chia.models.scripted import Reply, ScriptedChatServer


async def loop_calls(sessions: ToolSessions, n: int) -> list[float]:
    call = SimpleNamespace(id="call_0", type="function", function=SimpleNamespace(name="echo", arguments='{"x": 1}'))
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        message = await _run_tool_call(sessions, call)
        samples.append(time.perf_counter() - start)
    assert message["content"] == "1", message
    return samples


async def bench(url: str, calls: int, rounds: int, warmup: int) -> dict[str, list[list[float]]]:
    results: dict[str, list[list[float]]] = {"bare": [], "loop": []}
    async with Client(url) as client, ToolSessions({"bench": {"url": url, "headers": {}}}, 600) as sessions:
        await timed_calls(client, warmup)
        await loop_calls(sessions, warmup)
        for index in range(rounds):
            order = ["bare", "loop"] if index % 2 == 0 else ["loop", "bare"]
            for side in order:
                samples = await (timed_calls(client, calls) if side == "bare" else loop_calls(sessions, calls))
                results[side].append(samples)
    return results


def whole_turns(tool: EchoTool, turns: int) -> float:
    """Seconds per round of the loop (one model request, one tool call) against a scripted endpoint."""
    script = [Reply.tool_call("echo", x=1) for _ in range(turns)] + [Reply.answer("done")]
    with ScriptedChatServer(script) as server:
        llm = OpenAICompatLLM("bench", base_url=server.base_url, api_key="unused", max_tool_iterations=turns)
        start = time.perf_counter()
        result = llm.prompt("echo", tools=[tool])
        elapsed = time.perf_counter() - start
    assert result.success, result.stderr
    return elapsed / (turns + 1)


def fixed_cost(tool: EchoTool, prompts: int = 10) -> float:
    """Median seconds of a prompt the model answers at once (tools offered, none called)."""
    with ScriptedChatServer([Reply.answer("done")] * prompts) as server:
        llm = OpenAICompatLLM("bench", base_url=server.base_url, api_key="unused")
        samples = []
        for _ in range(prompts):
            start = time.perf_counter()
            llm.prompt("echo", tools=[tool])
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    tool = EchoTool("bench")
    try:
        results = asyncio.run(bench(tool.url, args.calls, args.rounds, args.warmup))
        per_turn = whole_turns(tool, args.turns)
        per_prompt = fixed_cost(tool)
    finally:
        tool.stop()
        ray.shutdown()

    labels = {"bare": "bare FastMCP client call", "loop": "tool call inside the loop"}
    p50 = {side: statistics.median(percentile(r, 0.5) for r in results[side]) for side in results}
    p90 = {side: statistics.median(percentile(r, 0.9) for r in results[side]) for side in results}
    print(f"calls/round={args.calls} rounds={args.rounds} (medians over rounds), ChiaTool in a Ray actor")
    for side, label in labels.items():
        print(f"{label:28} p50 {p50[side] * 1e3:7.3f} ms   p90 {p90[side] * 1e3:7.3f} ms")
    ratio = p50["loop"] / p50["bare"]
    verdict = "OK" if ratio <= 1.1 else "ABOVE TARGET"
    print(f"ratio loop / bare p50 = {ratio:.3f} (target <= 1.1): {verdict}")
    print(f"prompt answered at once (fixed cost of one prompt): {per_prompt * 1e3:.3f} ms")
    print(f"loop round over {args.turns} tool calls (scripted model request + tool call): {per_turn * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
