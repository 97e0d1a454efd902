"""Agent-CLI backend: run Claude Code, Codex, OpenCode or any agent command with ChiaTools.

:class:`AgentCLILLM` runs the agent as a subprocess of the calling process (the Ray worker,
when ``prompt`` is dispatched) with the MCP configuration of the ChiaTools handed to it,
under a timeout, and parses the agent's machine-readable output. :data:`PRESETS` holds
the command lines of the CLIs it knows; any other command is a template.

Where each preset's flags come from (the tools' own documentation):

- Claude Code (``claude-code``): the CLI reference and headless-mode docs
  (code.claude.com/docs/en/cli-reference, /headless). ``-p`` runs one prompt without the
  UI; ``--output-format stream-json`` (which needs ``--verbose``) streams one JSON event per
  line (``system``, ``assistant``, ``user``, and a final ``result``); ``--mcp-config FILE``
  loads ``{"mcpServers": {name: {"type": "http", "url", "headers"}}}`` and
  ``--strict-mcp-config`` ignores every other MCP configuration; ``--allowedTools``
  pre-approves the tools (``mcp__<server>__<tool>``), since a headless run cannot ask;
  ``--model``, ``--append-system-prompt``.
- Codex (``codex``): the Codex CLI docs (developers.openai.com/codex: non-interactive
  mode, configuration reference) and openai/codex#4525 (the ``exec --json`` events).
  ``codex exec --json`` prints JSON Lines (``thread.started``, ``turn.*``, ``item.*``; the
  answer is the ``agent_message`` item); ``--skip-git-repo-check`` lets it run outside a
  git repository; ``-m``/``--model``. Codex takes no MCP configuration file: servers come
  as ``-c`` TOML overrides, ``mcp_servers.<name>.url`` and ``.env_http_headers`` (header
  name -> environment variable read at request time), so tokens never reach the command
  line, which other users of the machine can read.
- OpenCode (``opencode``): opencode.ai/docs (cli, config, mcp-servers). ``opencode run
  --format json`` prints JSON Lines (``step_start``, ``text``, ``tool_use``,
  ``step_finish``, ``error``); ``--model provider/model``; the configuration file named by
  ``$OPENCODE_CONFIG`` lists servers under ``"mcp"`` as ``{"type": "remote", "url",
  "headers"}``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import string
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, get_args

from chia.base.llm_call import LLMCallBase, QueryResult
from chia.base.tools._mcp_client import ToolSessions, run_blocking
from chia.base.tools._process import append_line, kill_process_group

if TYPE_CHECKING:
    from chia.base.tools.ChiaTool import ChiaTool

__all__ = ["PRESETS", "AgentCLILLM", "AgentCLIPreset", "ConfigFormat", "OutputFormat"]

logger = logging.getLogger(__name__)

ConfigFormat = Literal["mcpServers", "opencode", "codex"]
OutputFormat = Literal["text", "claude-stream-json", "codex-jsonl", "opencode-jsonl"]
ArgTemplate = str | tuple[str, ...]

PLACEHOLDERS = frozenset(
    {"prompt", "system_message", "model", "mcp_config", "allowed_tools", "mcp_args", "extra_args", "work_dir"}
)
# Placeholders that stand alone in an argument and expand to several arguments.
_LIST_PLACEHOLDERS = frozenset({"mcp_args", "extra_args"})
_TERM_GRACE_SECONDS = 5.0
_DRAIN_SECONDS = 5.0
_OPENCODE_SCHEMA = "https://opencode.ai/config.json"


def _fields(argument: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(argument) if name is not None}


@dataclass(frozen=True, slots=True)
class AgentCLIPreset:
    """Experimental. How one agent CLI takes the MCP configuration, the prompt, and what it prints.

    ``argv`` is a command template: each string may hold placeholders (``{prompt}``,
    ``{system_message}``, ``{model}``, ``{mcp_config}``: the path of the private MCP
    configuration file, ``{allowed_tools}``: ``mcp__<server>__<tool>`` comma-separated,
    ``{work_dir}``); an argument that is exactly ``{mcp_args}`` or ``{extra_args}`` expands
    to several; a tuple is a group of arguments kept only when none of its placeholders
    is empty (e.g. ``("--model", "{model}")``). Literal braces are doubled. When no
    argument uses ``{system_message}``, the system message is put before the prompt.
    ``config_format`` says how the MCP servers are handed over: ``"mcpServers"`` (a JSON
    file ``{"mcpServers": LLMCallBase.mcp_servers(tools)}``), ``"opencode"`` (OpenCode's
    JSON file, named by ``$OPENCODE_CONFIG``) or ``"codex"`` (``-c`` overrides in
    ``{mcp_args}``, headers through the environment). ``output_format`` says how to read
    the result from stdout.
    """

    argv: tuple[ArgTemplate, ...]
    config_format: ConfigFormat = "mcpServers"
    output_format: OutputFormat = "text"

    def __post_init__(self) -> None:
        if not self.argv or not isinstance(self.argv[0], str) or not self.argv[0]:
            raise ValueError(f"argv must start with the program to run, got {self.argv!r}")
        if self.config_format not in get_args(ConfigFormat):
            raise ValueError(f"config_format {self.config_format!r} is not one of {get_args(ConfigFormat)}")
        if self.output_format not in get_args(OutputFormat):
            raise ValueError(f"output_format {self.output_format!r} is not one of {get_args(OutputFormat)}")
        used = set()
        for item in self.argv:
            for argument in (item,) if isinstance(item, str) else item:
                fields = _fields(argument)
                unknown = fields - PLACEHOLDERS
                if unknown:
                    raise ValueError(
                        f"argument {argument!r} uses unknown placeholder(s) {sorted(unknown)}; "
                        f"valid: {sorted(PLACEHOLDERS)} (double literal braces)"
                    )
                listed = fields & _LIST_PLACEHOLDERS
                if listed and argument != "{" + next(iter(listed)) + "}":
                    raise ValueError(f"{sorted(listed)} must stand alone in an argument, got {argument!r}")
                used |= fields
        if "mcp_config" in used and self.config_format == "codex":
            raise ValueError("config_format 'codex' writes no configuration file: use {mcp_args}, not {mcp_config}")

    @property
    def placeholders(self) -> frozenset[str]:
        """The placeholders the command uses."""
        found: set[str] = set()
        for item in self.argv:
            for argument in (item,) if isinstance(item, str) else item:
                found |= _fields(argument)
        return frozenset(found)


PRESETS: Mapping[str, AgentCLIPreset] = MappingProxyType(
    {
        "claude-code": AgentCLIPreset(
            (
                "claude",
                "-p",
                "{prompt}",  # right after -p: --mcp-config and --allowedTools take several values
                "--output-format",
                "stream-json",
                "--verbose",
                "--strict-mcp-config",
                "--mcp-config",
                "{mcp_config}",
                ("--allowedTools", "{allowed_tools}"),
                ("--model", "{model}"),
                ("--append-system-prompt", "{system_message}"),
                "{extra_args}",
            ),
            config_format="mcpServers",
            output_format="claude-stream-json",
        ),
        "codex": AgentCLIPreset(
            (
                "codex",
                "exec",
                "--json",
                "--skip-git-repo-check",
                "{mcp_args}",
                ("--model", "{model}"),
                "{extra_args}",
                "{prompt}",
            ),
            config_format="codex",
            output_format="codex-jsonl",
        ),
        "opencode": AgentCLIPreset(
            ("opencode", "run", "--format", "json", ("--model", "{model}"), "{extra_args}", "{prompt}"),
            config_format="opencode",
            output_format="opencode-jsonl",
        ),
    }
)
"""Experimental. The agent CLIs :class:`AgentCLILLM` knows, by name."""


class AgentCLILLM(LLMCallBase):
    """Experimental. An agent CLI run as a subprocess with ChiaTools handed to it over MCP.

    ``command`` is a preset name (``"claude-code"``, ``"codex"``, ``"opencode"``; see
    :data:`PRESETS`), an :class:`AgentCLIPreset`, or an argv template for any other agent
    (placeholders as in :class:`AgentCLIPreset`; by default its MCP configuration file is
    ``{"mcpServers": ...}`` and its stdout is the answer)::

        agent = AgentCLILLM("claude-code", "You tune processors.", model="sonnet")
        answer = agent.prompt("Which configuration is fastest?", tools=[sim_shell])

        custom = AgentCLILLM(["my-agent", "--mcp", "{mcp_config}", "--ask", "{prompt}"])

    ``prompt`` writes the MCP client configuration of ``tools`` (URLs and bearer headers,
    ``LLMCallBase.mcp_servers``) to a file only this user can read (mode 0600, in a
    private directory removed afterwards), runs the command in ``work_dir`` in a session
    of its own, and returns a :class:`~chia.base.llm_call.QueryResult`: the answer, the
    return code, stderr, and stdout as the transcript. After ``timeout_seconds`` the
    agent's whole process group gets SIGTERM, then SIGKILL, and the result says so
    (``success=False``). ``executable`` replaces the program of the command (e.g. a full
    path), ``env`` adds environment variables, ``extra_args`` go where the template
    says ``{extra_args}`` (at the end otherwise).

    Cancellation: dispatched in a ``@ChiaFunction`` task (with chia-dispatch installed),
    the agent is a subprocess of that task, so ``chia_cancel`` kills it and everything it
    started. Without chia-dispatch, the timeout is the bound.
    """

    def __init__(
        self,
        command: str | AgentCLIPreset | Sequence[str | Sequence[str]] = "claude-code",
        system_message: str = "",
        *,
        model: str | None = None,
        executable: str | None = None,
        work_dir: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout_seconds: float | None = 3600,
        extra_args: Sequence[str] = (),
        config_format: ConfigFormat | None = None,
        output_format: OutputFormat | None = None,
    ) -> None:
        super().__init__(system_message)
        if isinstance(command, str):
            if command not in PRESETS:
                raise ValueError(
                    f"unknown agent preset {command!r}: use one of {sorted(PRESETS)}, or pass the "
                    "command as a list of arguments (a template)"
                )
            preset, self.name = PRESETS[command], command
        elif isinstance(command, AgentCLIPreset):
            preset, self.name = command, str(command.argv[0])
        else:
            preset = AgentCLIPreset(tuple(item if isinstance(item, str) else tuple(item) for item in command))
            self.name = str(preset.argv[0])
        if config_format is not None or output_format is not None:
            preset = AgentCLIPreset(
                preset.argv, config_format or preset.config_format, output_format or preset.output_format
            )
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0 or None, got {timeout_seconds!r}")
        if isinstance(extra_args, str) or not all(isinstance(arg, str) for arg in extra_args):
            raise TypeError(f"extra_args must be a sequence of strings, got {extra_args!r}")
        self.preset = preset
        self.model = model
        self.executable = executable
        self.work_dir = work_dir
        self.env: dict[str, str] = dict(env or {})
        self.timeout_seconds = timeout_seconds
        self.extra_args = tuple(extra_args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, model={self.model!r})"

    def prompt(self, user_message: str, tools: Sequence[ChiaTool] | None = ()) -> QueryResult:
        """Experimental. Run the agent on ``user_message`` with ``tools``; see the class.

        Raises ``FileNotFoundError`` when the program is not installed.
        """
        servers = self.mcp_servers(tools)
        with tempfile.TemporaryDirectory(prefix="chia-agent-", ignore_cleanup_errors=True) as private:
            values, env = self._handover(servers, private)
            values["prompt"] = user_message
            if "system_message" not in self.preset.placeholders and self.system_message:
                values["prompt"] = f"{self.system_message}\n\n{user_message}"
            argv = render(self.preset.argv, values)
            if "extra_args" not in self.preset.placeholders:
                argv += self.extra_args
            if self.executable:
                argv[0] = self.executable
            return self._run(argv, env)

    def _handover(
        self, servers: Mapping[str, Mapping[str, Any]], private: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Placeholder values and the environment that hand ``servers`` to the agent."""
        env = {**os.environ, **self.env}
        values: dict[str, Any] = {
            "system_message": self.system_message,
            "model": self.model or "",
            "work_dir": self.work_dir or os.getcwd(),
            "extra_args": list(self.extra_args),
            "mcp_args": [],
            "mcp_config": "",
            "allowed_tools": "",
        }
        kind = self.preset.config_format
        if kind == "codex":
            values["mcp_args"], header_env = codex_overrides(servers)
            env.update(header_env)
        else:
            if kind == "opencode":
                document: dict[str, Any] = {
                    "$schema": _OPENCODE_SCHEMA,
                    "mcp": {
                        name: {"type": "remote", "url": entry["url"], "headers": dict(entry["headers"])}
                        for name, entry in servers.items()
                    },
                }
            else:
                document = {"mcpServers": {name: dict(entry) for name, entry in servers.items()}}
            values["mcp_config"] = _write_private(os.path.join(private, "mcp.json"), document)
            if kind == "opencode":
                env["OPENCODE_CONFIG"] = values["mcp_config"]
        if "allowed_tools" in self.preset.placeholders and servers:
            listed = run_blocking(_tool_names(servers, self.timeout_seconds))
            values["allowed_tools"] = ",".join(
                f"mcp__{server}__{tool}" for server, names in listed.items() for tool in names
            )
        return values, env

    def _run(self, argv: list[str], env: dict[str, str]) -> QueryResult:
        logger.info("running agent %s (timeout %s s)", argv[0], self.timeout_seconds)
        try:
            # Popen in the calling thread: chia-dispatch's per-task hook (when present)
            # then tracks the agent for chia_cancel.
            proc = subprocess.Popen(
                argv,
                cwd=self.work_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
            )
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"agent program {argv[0]!r} not found on PATH ({self.name}): install it, or pass "
                "executable=<path to it>"
            ) from error
        timed_out = False
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
            logger.info("agent %s timed out after %s s; killing its process group", argv[0], self.timeout_seconds)
            stdout, stderr = _stop(proc)
        finally:
            if proc.poll() is None:  # interrupted (e.g. a cancelled task): leave nothing behind
                kill_process_group(proc.pid, signal.SIGKILL)
                proc.wait()
        answer, completed = parse_output(self.preset.output_format, stdout)
        if timed_out:
            stderr = append_line(
                stderr, f"[timed out after {self.timeout_seconds}s: the agent's process group was killed]"
            )
        success = completed and proc.returncode == 0 and not timed_out
        return QueryResult(answer, proc.returncode, stderr, stdout, success=success)


def render(argv: Sequence[ArgTemplate], values: Mapping[str, Any]) -> list[str]:
    """Experimental. The arguments of template ``argv`` filled with ``values`` (see :class:`AgentCLIPreset`)."""
    rendered: list[str] = []
    for item in argv:
        group = (item,) if isinstance(item, str) else item
        if not isinstance(item, str) and any(not values.get(name) for arg in group for name in _fields(arg)):
            continue
        for argument in group:
            name = argument[1:-1]
            if name in _LIST_PLACEHOLDERS and argument == "{" + name + "}":
                rendered.extend(str(value) for value in values.get(name) or ())
            else:
                rendered.append(argument.format_map(values))
    return rendered


def codex_overrides(servers: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """Experimental. Codex ``-c`` arguments for ``servers``, and the environment holding their headers."""
    args: list[str] = []
    env: dict[str, str] = {}
    for index, (name, entry) in enumerate(servers.items()):
        args += ["-c", f"mcp_servers.{name}.url={json.dumps(entry['url'])}"]
        headers = dict(entry.get("headers") or {})
        if headers:
            pairs = []
            for header, value in headers.items():
                variable = f"CHIA_MCP_{index}_{re.sub(r'[^A-Z0-9]', '_', header.upper())}"
                env[variable] = value
                pairs.append(f"{json.dumps(header)} = {json.dumps(variable)}")
            args += ["-c", f"mcp_servers.{name}.env_http_headers={{{', '.join(pairs)}}}"]
    return args, env


def _write_private(path: str, document: Mapping[str, Any]) -> str:
    """Write ``document`` as JSON to a new file only this user can read; returns ``path``."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    return path


async def _tool_names(servers: Mapping[str, Mapping[str, Any]], timeout: float | None) -> dict[str, list[str]]:
    async with ToolSessions(servers, timeout) as sessions:
        return sessions.names_by_server()


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM the agent's process group, SIGKILL what is left after a grace; collect its output."""
    kill_process_group(proc.pid, signal.SIGTERM)
    try:
        return proc.communicate(timeout=_TERM_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        kill_process_group(proc.pid, signal.SIGKILL)
    try:
        return proc.communicate(timeout=_DRAIN_SECONDS)
    except subprocess.TimeoutExpired:  # a process that left the group still holds the pipes
        proc.kill()
        proc.wait()
        return "", "[output lost: a process that left the agent's process group kept its pipes open]"


def _json_lines(stdout: str) -> Iterator[dict[str, Any]]:
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            yield event


def parse_output(output_format: OutputFormat, stdout: str) -> tuple[str, bool]:
    """Experimental. ``(answer, completed)`` read from an agent's stdout in ``output_format``.

    ``completed`` is False when the output says the run failed or never finished.
    """
    if output_format == "claude-stream-json":
        return _parse_claude(stdout)
    if output_format == "codex-jsonl":
        return _parse_codex(stdout)
    if output_format == "opencode-jsonl":
        return _parse_opencode(stdout)
    return stdout.strip(), True


def _parse_claude(stdout: str) -> tuple[str, bool]:
    last_text = ""
    for event in _json_lines(stdout):
        if event.get("type") == "result":
            completed = not event.get("is_error") and event.get("subtype", "success") == "success"
            return str(event.get("result") or last_text), bool(completed)
        if event.get("type") == "assistant":
            content = (event.get("message") or {}).get("content") or []
            text = "".join(
                str(block.get("text", ""))
                for block in content
                if isinstance(block, dict) and block.get("type") == "text"
            )
            last_text = text or last_text
    return last_text, False  # no result event: the run did not finish


def _parse_codex(stdout: str) -> tuple[str, bool]:
    answer, finished, failed = "", False, False
    for event in _json_lines(stdout):
        kind = event.get("type")
        if kind == "item.completed":
            item = event.get("item") or {}
            if (item.get("type") or item.get("item_type")) in ("agent_message", "assistant_message"):
                answer = str(item.get("text", ""))
        elif kind == "turn.completed":
            finished = True
        elif kind == "turn.failed":
            failed = True
    return answer, finished and not failed


def _parse_opencode(stdout: str) -> tuple[str, bool]:
    answer, step, failed = "", "", False
    for event in _json_lines(stdout):
        kind = event.get("type")
        if kind == "step_start":
            step = ""
        elif kind == "text":
            step += str((event.get("part") or {}).get("text", ""))
            answer = step
        elif kind == "error":
            failed = True
    return answer, not failed
