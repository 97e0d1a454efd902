"""A stand-in agent CLI for the agent-CLI tests (none of the real CLIs can run here).

    python agent_stand_in.py DIALECT ARGS...     DIALECT: claude, codex, opencode, template

It parses the command line the way that CLI documents it (unknown or missing flags are an
error, exit 2), reads the MCP configuration it was handed the same way (claude:
``--mcp-config FILE``; codex: ``-c mcp_servers...`` overrides whose headers name
environment variables; opencode: ``$OPENCODE_CONFIG``; template: ``--config FILE``),
lists every server's tools through a real MCP client, and acts on the prompt's lines:

- ``COMMAND: <shell command>``: run it with the first ``*_run_command`` tool (for claude,
  only if ``--allowedTools`` approves it, as a headless Claude Code would);
- ``HANG: <file>``: then start a grandchild, write both pids to <file>, wait forever;
- ``FAIL``: fail the way that CLI reports a failed run.

It prints a transcript in the dialect's output format, and writes what it saw as JSON to
``$STAND_IN_REPORT`` when set.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
import tomllib
from typing import Any

Servers = dict[str, tuple[str, dict[str, str]]]


def fail_usage(message: str) -> None:
    print(f"stand-in: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse(dialect: str, args: list[str]) -> dict[str, Any]:
    """Flags and positionals of one dialect's command line."""
    value_flags = {
        "claude": {"--output-format", "--mcp-config", "--allowedTools", "--model", "--append-system-prompt"},
        "codex": {"-c", "--model", "-m"},
        "opencode": {"--format", "--model"},
        "template": {"--config", "--prompt", "--system"},
    }[dialect]
    bool_flags = {
        "claude": {"-p", "--verbose", "--strict-mcp-config"},
        "codex": {"--json", "--skip-git-repo-check"},
        "opencode": set(),
        "template": set(),
    }[dialect]
    if dialect in ("codex", "opencode"):
        subcommand = {"codex": "exec", "opencode": "run"}[dialect]
        if not args or args[0] != subcommand:
            fail_usage(f"expected the {subcommand!r} subcommand, got {args[:1]}")
        args = args[1:]
    flags: dict[str, list[str]] = {}
    positionals: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in value_flags:
            if index + 1 >= len(args):
                fail_usage(f"{arg} needs a value")
            flags.setdefault(arg, []).append(args[index + 1])
            index += 2
        elif arg in bool_flags:
            flags.setdefault(arg, []).append("")
            index += 1
        elif arg.startswith("-") and arg != "-":
            fail_usage(f"unknown option {arg}")
        else:
            positionals.append(arg)
            index += 1
    return {"flags": flags, "positionals": positionals}


def require(flags: dict[str, list[str]], flag: str, value: str | None = None) -> None:
    if flag not in flags or (value is not None and flags[flag][-1] != value):
        fail_usage(f"missing {flag} {value or ''}".strip())


def read_config(path: str, key: str) -> tuple[dict[str, Any], str]:
    mode = oct(stat.S_IMODE(os.stat(path).st_mode))
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)[key], mode


def servers_of(dialect: str, parsed: dict[str, Any], report: dict[str, Any]) -> Servers:
    flags = parsed["flags"]
    servers: Servers = {}
    if dialect in ("claude", "template", "opencode"):
        if dialect == "opencode":
            path = os.environ.get("OPENCODE_CONFIG", "")
            entries, report["config_mode"] = read_config(path, "mcp")
            expected_type = "remote"
        else:
            path = flags["--mcp-config" if dialect == "claude" else "--config"][-1]
            entries, report["config_mode"] = read_config(path, "mcpServers")
            expected_type = "http"
        report["config_path"] = path
        for name, entry in entries.items():
            if entry.get("type") != expected_type:
                fail_usage(f"server {name}: type {entry.get('type')!r}, expected {expected_type!r}")
            servers[name] = (entry["url"], dict(entry.get("headers") or {}))
    else:
        urls: dict[str, str] = {}
        headers: dict[str, dict[str, str]] = {}
        for override in flags.get("-c", []):
            key, _, value = override.partition("=")
            parts = key.split(".")
            if len(parts) != 3 or parts[0] != "mcp_servers":
                fail_usage(f"unexpected override {key}")
            decoded = tomllib.loads(f"v = {value}")["v"]  # -c values are TOML
            if parts[2] == "url":
                urls[parts[1]] = decoded
            elif parts[2] == "env_http_headers":
                headers[parts[1]] = {header: os.environ[variable] for header, variable in decoded.items()}
            else:
                fail_usage(f"unexpected server key {parts[2]}")
        servers = {name: (url, headers.get(name, {})) for name, url in urls.items()}
    return servers


async def use_tools(servers: Servers, command: str | None, allowed: set[str] | None) -> dict[str, Any]:
    seen: dict[str, Any] = {"tools": [], "call": None}
    for server, (url, headers) in servers.items():
        from fastmcp import Client  # only when there is a server: a run without tools starts fast
        from fastmcp.client.transports import StreamableHttpTransport

        async with Client(StreamableHttpTransport(url, headers=headers), timeout=120) as client:
            names = [tool.name for tool in await client.list_tools()]
            seen["tools"] += [f"{server}/{name}" for name in names]
            runner = next((name for name in names if name.endswith("_run_command")), None)
            if command is None or runner is None or seen["call"] is not None:
                continue
            call: dict[str, Any] = {"server": server, "tool": runner, "command": command}
            if allowed is not None and f"mcp__{server}__{runner}" not in allowed:
                call.update(output=f"permission to use {runner} was denied", error=True)
            else:
                result = await client.call_tool_mcp(runner, {"command": command})
                call.update(output="".join(getattr(block, "text", "") for block in result.content), error=False)
            seen["call"] = call
    return seen


def emit(dialect: str, prompt: str, seen: dict[str, Any], answer: str, failed: bool) -> None:
    call = seen["call"]
    lines: list[dict[str, Any]] = []
    if dialect == "claude":
        lines.append({"type": "system", "subtype": "init", "session_id": "stand-in", "tools": seen["tools"]})
        if call:
            name = f"mcp__{call['server']}__{call['tool']}"
            lines.append(
                {
                    "type": "assistant",
                    "message": {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "toolu_1", "name": name, "input": {"command": call["command"]}}
                        ],
                    },
                }
            )
            lines.append(
                {
                    "type": "user",
                    "message": {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "toolu_1",
                                "content": call["output"],
                                "is_error": call["error"],
                            }
                        ],
                    },
                }
            )
        lines.append(
            {"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": answer}]}}
        )
        subtype = "error_during_execution" if failed else "success"
        lines.append({"type": "result", "subtype": subtype, "is_error": failed, "result": answer, "num_turns": 2})
    elif dialect == "codex":
        lines += [{"type": "thread.started", "thread_id": "stand-in"}, {"type": "turn.started"}]
        lines.append({"type": "error", "message": "Reconnecting... 1/5"})  # transient: not a failure
        if call:
            item = {"id": "item_0", "type": "mcp_tool_call", "server": call["server"], "tool": call["tool"]}
            lines.append({"type": "item.started", "item": {**item, "status": "in_progress"}})
            lines.append({"type": "item.completed", "item": {**item, "status": "completed"}})
        if failed:
            lines.append({"type": "turn.failed", "error": {"message": answer}})
        else:
            lines.append({"type": "item.completed", "item": {"id": "item_1", "type": "agent_message", "text": answer}})
            lines.append({"type": "turn.completed", "usage": {"input_tokens": 1, "output_tokens": 1}})
    elif dialect == "opencode":
        lines.append({"type": "step_start", "sessionID": "ses_stand_in", "part": {"type": "step-start"}})
        if call:
            state = {"status": "completed", "input": {"command": call["command"]}, "output": call["output"]}
            tool = f"{call['server']}_{call['tool']}"
            lines.append({"type": "tool_use", "part": {"type": "tool", "tool": tool, "state": state}})
            lines.append({"type": "text", "part": {"type": "text", "text": "Let me look. "}})
            lines.append({"type": "step_finish", "part": {"type": "step-finish", "reason": "tool-calls"}})
            lines.append({"type": "step_start", "part": {"type": "step-start"}})
        if failed:
            lines.append({"type": "error", "error": {"name": "UnknownError", "data": {"message": answer}}})
        else:
            for piece in (answer[: len(answer) // 2], answer[len(answer) // 2 :]):
                lines.append({"type": "text", "part": {"type": "text", "text": piece}})
            lines.append({"type": "step_finish", "part": {"type": "step-finish", "reason": "stop"}})
    else:
        print(answer, flush=True)
        return
    for line in lines:
        print(json.dumps(line), flush=True)


def hang(pid_file: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    temporary = pid_file + ".tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump({"agent": os.getpid(), "grandchild": child.pid}, handle)
    os.replace(temporary, pid_file)
    while True:
        time.sleep(60)


def main() -> None:
    dialect, args = sys.argv[1], sys.argv[2:]
    parsed = parse(dialect, args)
    flags, positionals = parsed["flags"], parsed["positionals"]
    if dialect == "claude":
        require(flags, "-p")
        require(flags, "--output-format", "stream-json")
        require(flags, "--verbose")  # stream-json needs it
        require(flags, "--mcp-config")
    elif dialect == "codex":
        require(flags, "--json")
    elif dialect == "opencode":
        require(flags, "--format", "json")
    else:
        require(flags, "--config")
    prompt = flags["--prompt"][-1] if dialect == "template" else (positionals[-1] if positionals else "")
    report: dict[str, Any] = {
        "dialect": dialect,
        "argv": sys.argv[1:],
        "prompt": prompt,
        "model": (flags.get("--model") or flags.get("-m") or [None])[-1],
        "system": (flags.get("--append-system-prompt") or flags.get("--system") or [None])[-1],
        "allowed_tools": (flags.get("--allowedTools") or [None])[-1],
    }
    servers = servers_of(dialect, parsed, report)
    report["servers"] = {name: url for name, (url, _) in servers.items()}
    lines = prompt.splitlines()
    command = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("COMMAND:")), None)
    allowed = set(report["allowed_tools"].split(",")) if dialect == "claude" and report["allowed_tools"] else None
    if dialect == "claude" and allowed is None:
        allowed = set()
    seen = asyncio.run(use_tools(servers, command, allowed))
    report["tools"] = seen["tools"]
    report["call"] = seen["call"]
    if os.environ.get("STAND_IN_REPORT"):
        with open(os.environ["STAND_IN_REPORT"], "w", encoding="utf-8") as handle:
            json.dump(report, handle)
    failed = "FAIL" in lines
    call = seen["call"]
    answer = "the run failed" if failed else (f"tool said: {call['output'].strip()}" if call else "no tool was called")
    emit(dialect, prompt, seen, answer, failed)
    pid_file = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("HANG:")), None)
    if pid_file:
        hang(pid_file)
    if failed:
        print("stand-in: the run failed", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
