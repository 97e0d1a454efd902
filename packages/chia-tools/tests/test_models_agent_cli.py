"""AgentCLILLM with a stand-in agent program that calls a real ChiaTool over MCP.

The stand-in (``agent_stand_in.py``) is put on PATH as ``claude``, ``codex`` and
``opencode``: each preset's command line is parsed as that CLI documents it, the MCP
configuration is read the way that CLI reads it, and the transcript comes back in its
output format.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from chia.base.tools.BashTool import BashTool
from chia.base.tools.ChiaTool import ToolServerConfig
from chia.base.tools.serve import serve
from chia.models.agent_cli import PRESETS, AgentCLILLM, AgentCLIPreset, codex_overrides, parse_output, render
from chia_testing import running, wait_until

STAND_IN = Path(__file__).resolve().with_name("agent_stand_in.py")
TOKEN = "agent-cli-test-token-0123456789"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BashTool]:
    """A BashTool with a bearer token, served in this process."""
    work = tmp_path_factory.mktemp("sim")
    tool = serve(BashTool, "sim", work_dir=str(work), server_config=ToolServerConfig(base_port=0, token=TOKEN))
    yield tool
    tool.stop()


@pytest.fixture(scope="module")
def agent_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``claude``, ``codex`` and ``opencode``: the stand-in in each dialect."""
    directory = tmp_path_factory.mktemp("bin")
    for program, dialect in (("claude", "claude"), ("codex", "codex"), ("opencode", "opencode")):
        path = directory / program
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STAND_IN}" {dialect} "$@"\n')
        path.chmod(0o755)
    return directory


@pytest.fixture
def report(tmp_path: Path) -> Path:
    return tmp_path / "report.json"


def stand_in_env(agent_bin: Path, report: Path) -> dict[str, str]:
    return {"PATH": f"{agent_bin}{os.pathsep}{os.environ.get('PATH', '')}", "STAND_IN_REPORT": str(report)}


def read(report: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def test_claude_code_preset_hands_the_tools_over_in_a_private_file(
    sim: BashTool, agent_bin: Path, report: Path
) -> None:
    agent = AgentCLILLM("claude-code", "You tune processors.", model="sonnet", env=stand_in_env(agent_bin, report))
    result = agent.prompt("COMMAND: echo $((6 * 7))", tools=[sim])
    assert (result.result, result.returncode, result.success) == ("tool said: 42", 0, True), result.stderr
    events = [json.loads(line) for line in result.stream_result.splitlines()]
    assert [event["type"] for event in events] == ["system", "assistant", "user", "assistant", "result"]
    seen = read(report)
    assert seen["config_mode"] == "0o600"
    assert not os.path.exists(seen["config_path"]) and not os.path.exists(os.path.dirname(seen["config_path"]))
    assert seen["servers"] == {"sim": sim.url}
    assert seen["allowed_tools"] == "mcp__sim__sim_run_command"
    assert (seen["model"], seen["system"], seen["prompt"]) == (
        "sonnet",
        "You tune processors.",
        "COMMAND: echo $((6 * 7))",
    )
    assert not any(TOKEN in arg for arg in seen["argv"])


def test_codex_preset_passes_servers_as_overrides_and_the_token_through_the_environment(
    sim: BashTool, agent_bin: Path, report: Path
) -> None:
    agent = AgentCLILLM("codex", "Be brief.", model="gpt-5-codex", env=stand_in_env(agent_bin, report))
    result = agent.prompt("COMMAND: echo codex", tools=[sim])
    assert (result.result, result.success) == ("tool said: codex", True), result.stderr
    seen = read(report)
    assert seen["call"]["error"] is False and seen["servers"] == {"sim": sim.url}
    assert seen["model"] == "gpt-5-codex"
    assert seen["prompt"] == "Be brief.\n\nCOMMAND: echo codex"  # codex has no system-prompt flag
    assert not any(TOKEN in arg for arg in seen["argv"])
    assert "--skip-git-repo-check" in seen["argv"] and "--json" in seen["argv"]


def test_opencode_preset_reads_its_config_file_from_the_environment(
    sim: BashTool, agent_bin: Path, report: Path
) -> None:
    agent = AgentCLILLM("opencode", env=stand_in_env(agent_bin, report))
    result = agent.prompt("COMMAND: echo open", tools=[sim])
    assert (result.result, result.success) == ("tool said: open", True), result.stderr
    seen = read(report)
    assert seen["config_mode"] == "0o600" and not os.path.exists(seen["config_path"])
    assert seen["tools"] == ["sim/sim_run_command"]


def test_any_command_is_a_template(sim: BashTool, report: Path, tmp_path: Path) -> None:
    template = [
        sys.executable,
        str(STAND_IN),
        "template",
        "--config",
        "{mcp_config}",
        ("--system", "{system_message}"),
        "--prompt",
        "{prompt}",
    ]
    agent = AgentCLILLM(template, env={"STAND_IN_REPORT": str(report)}, work_dir=str(tmp_path))
    result = agent.prompt("COMMAND: pwd", tools=[sim])
    assert (result.result, result.success) == (f"tool said: {sim.work_dir}", True), result.stderr
    seen = read(report)
    assert seen["system"] is None  # an empty placeholder drops its group
    assert seen["config_mode"] == "0o600"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_failed_run_is_reported_in_each_format(sim: BashTool, agent_bin: Path, report: Path, preset: str) -> None:
    agent = AgentCLILLM(preset, env=stand_in_env(agent_bin, report))
    result = agent.prompt("COMMAND: echo x\nFAIL", tools=[sim])
    assert (result.success, result.returncode) == (False, 1)
    assert "the run failed" in result.stderr


def test_claude_code_calls_only_the_tools_it_was_allowed(sim: BashTool, agent_bin: Path, report: Path) -> None:
    allowed_nothing = AgentCLIPreset(
        tuple(item for item in PRESETS["claude-code"].argv if item != ("--allowedTools", "{allowed_tools}")),
        "mcpServers",
        "claude-stream-json",
    )
    agent = AgentCLILLM(allowed_nothing, env=stand_in_env(agent_bin, report))
    result = agent.prompt("COMMAND: echo x", tools=[sim])
    assert result.result == "tool said: permission to use sim_run_command was denied"


def test_timeout_kills_the_agent_and_everything_it_started(agent_bin: Path, report: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.json"
    agent = AgentCLILLM("claude-code", env=stand_in_env(agent_bin, report), timeout_seconds=10)
    result = agent.prompt(f"HANG: {pid_file}")
    assert result.success is False and result.returncode < 0
    assert "[timed out after 10s: the agent's process group was killed]" in result.stderr
    assert '"type": "result"' in result.stream_result  # what it printed before hanging is kept
    pids = json.loads(pid_file.read_text())
    wait_until(
        lambda: not running(pids["agent"]) and not running(pids["grandchild"]),
        timeout=60,
        message="the agent and its grandchild to be gone",
    )


def test_a_missing_program_is_named() -> None:
    agent = AgentCLILLM("opencode", executable="/nonexistent/opencode")
    with pytest.raises(FileNotFoundError, match=r"'/nonexistent/opencode' not found.*executable="):
        agent.prompt("hi")


def test_bad_commands_are_refused_with_what_is_valid() -> None:
    with pytest.raises(ValueError, match=r"unknown agent preset 'claude'.*claude-code.*list of arguments"):
        AgentCLILLM("claude")
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \['promt'\]"):
        AgentCLILLM(["agent", "{promt}"])
    with pytest.raises(ValueError, match=r"must stand alone"):
        AgentCLILLM(["agent", "--x={extra_args}"])
    with pytest.raises(ValueError, match=r"'codex' writes no configuration file"):
        AgentCLILLM(["agent", "{mcp_config}"], config_format="codex")
    with pytest.raises(ValueError, match=r"output_format 'json' is not one of"):
        AgentCLILLM(["agent"], output_format="json")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_seconds"):
        AgentCLILLM("codex", timeout_seconds=0)


def test_templates_render_groups_lists_and_literal_braces() -> None:
    argv = ("a", ("--model", "{model}"), "{extra_args}", "{{literal}}", "{prompt}")
    assert render(argv, {"model": "", "extra_args": ["-x", "y"], "prompt": "p {q}"}) == [
        "a",
        "-x",
        "y",
        "{literal}",
        "p {q}",
    ]
    assert render(argv, {"model": "m", "extra_args": [], "prompt": "p"}) == ["a", "--model", "m", "{literal}", "p"]


def test_codex_overrides_are_toml_and_keep_tokens_in_the_environment() -> None:
    servers = {"sim": {"url": "http://127.0.0.1:1/sim/mcp", "headers": {"Authorization": "Bearer t"}}}
    args, env = codex_overrides(servers)
    assert args == [
        "-c",
        'mcp_servers.sim.url="http://127.0.0.1:1/sim/mcp"',
        "-c",
        'mcp_servers.sim.env_http_headers={"Authorization" = "CHIA_MCP_0_AUTHORIZATION"}',
    ]
    assert env == {"CHIA_MCP_0_AUTHORIZATION": "Bearer t"}


def test_output_parsers_find_the_answer_and_failures() -> None:
    claude_cut = '{"type":"assistant","message":{"content":[{"type":"text","text":"partial"}]}}\n'
    assert parse_output("claude-stream-json", claude_cut) == ("partial", False)  # no result event
    codex = (
        '{"type":"turn.started"}\n{"type":"error","message":"Reconnecting... 1/5"}\n'
        '{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"done"}}\n'
        '{"type":"turn.completed","usage":{}}\n'
    )
    assert parse_output("codex-jsonl", codex) == ("done", True)
    assert parse_output("codex-jsonl", '{"type":"turn.failed","error":{"message":"x"}}') == ("", False)
    assert parse_output("text", "  plain answer\n") == ("plain answer", True)


@pytest.mark.ray_compat
def test_the_agent_pickles_and_runs_on_a_ray_worker(
    ray_cluster: None, sim: BashTool, agent_bin: Path, report: Path
) -> None:
    agent = AgentCLILLM("codex", model="m", env=stand_in_env(agent_bin, report), timeout_seconds=300)
    copy = pickle.loads(pickle.dumps(agent))
    assert (copy.preset, copy.model, copy.env, repr(copy)) == (
        agent.preset,
        "m",
        agent.env,
        "AgentCLILLM('codex', model='m')",
    )

    @ray.remote(num_cpus=0)
    def on_worker(llm: AgentCLILLM, tool: BashTool) -> tuple[str, bool]:
        result = llm.prompt("COMMAND: echo from a worker", tools=[tool])
        return result.result, result.success

    assert ray.get(on_worker.remote(agent, sim)) == ("tool said: from a worker", True)
