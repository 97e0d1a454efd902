r"""Serve ChiaTools without Ray: in the current process, with uvicorn, on a host and port.

For users who install only chia-tools, or who run a tool next to the code that uses it.
Also a command, ``chia tools serve`` (chia-ops), or without chia-ops::

    python -m chia.base.tools.serve chia.base.tools.BashTool:BashTool bash \\
        --arg work_dir=/workspace --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import inspect
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from chia.base.tools._config import (
    DEFAULT_BASE_PORT,
    DEFAULT_HOST,
    DEFAULT_MAX_TRIES,
    TOKEN_ENV,
    ToolServerConfig,
    is_loopback_host,
)
from chia.base.tools.ChiaTool import ChiaTool, _default_server_config, _serve_in_process

__all__ = ["in_process", "main", "serve"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T", bound=ChiaTool)


@contextmanager
def in_process(config: ToolServerConfig | None = None) -> Iterator[None]:
    """Stable. ChiaTools constructed inside this block are served here, not on Ray actors.

    Each tool gets its own uvicorn server in a background thread of this process
    (``start_router``); ``tool.stop()`` shuts it down. ``config`` applies to tools
    constructed without their own ``server_config`` (default: ``ToolServerConfig.from_env()``)::

        with in_process(ToolServerConfig(base_port=9000)):
            bash = BashTool("bash", work_dir="/tmp")
        print(bash.url)  # http://127.0.0.1:9000/bash/mcp
        bash.stop()
    """
    serve_token = _serve_in_process.set(True)
    config_token = _default_server_config.set(config)
    try:
        yield
    finally:
        _default_server_config.reset(config_token)
        _serve_in_process.reset(serve_token)


def serve(tool_class: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Stable. Construct ``tool_class(*args, **kwargs)`` served in this process; return it.

    Example::

        bash = serve(BashTool, "bash", work_dir="/tmp",
                     server_config=ToolServerConfig(base_port=9000))
    """
    with in_process():
        return tool_class(*args, **kwargs)


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Stable. Command line: serve one ChiaTool subclass until SIGINT/SIGTERM; returns the exit code.

    ``chia tools serve`` (chia-ops) is the documented way; it runs this function with
    ``prog="chia tools serve"``, which only changes the program name in usage and messages.
    ``python -m chia.base.tools.serve`` is kept for chialoops users.

    Prints ``chia-tool <name> serving at <url>`` once the endpoint accepts connections.
    The bearer token is read from ``$CHIA_TOOL_TOKEN`` (or ``--token-env``), never from
    the command line. ``--port N`` serves on exactly port N and fails if it is busy;
    ``--port 0`` takes any free port, ``--find-free-port`` tries the ports after N (up to
    ``--max-tries``); without ``--port`` the first free port from 8000 is used.

    Errors are one line on stderr, ``<prog>: error: ...``, naming the option at fault:
    exit code 2 for a usage error (bad option, tool class or tool argument, an unsafe
    bind), 1 when the server cannot start (busy port, the tool failed to start).
    """
    prog = prog or "python -m chia.base.tools.serve"
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
        if args.find_free_port and args.port is None:
            parser.error("--find-free-port needs --port: the first port to try")
        if args.max_tries is not None and not args.find_free_port and args.port is not None:
            parser.error("--max-tries applies only with --find-free-port (--port N alone serves on exactly N)")
    except SystemExit as exit_request:  # --help, or a usage error argparse already reported
        code = exit_request.code
        return EXIT_OK if code is None else code if isinstance(code, int) else EXIT_USAGE
    try:
        return _serve_from_command_line(args)
    except _CommandLineError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return error.exit_code


EXIT_OK = 0
EXIT_SERVE_FAILED = 1
EXIT_USAGE = 2


class _CommandLineError(Exception):
    """A failure to report as one line, with the exit code it deserves."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _serve_from_command_line(args: argparse.Namespace) -> int:
    tool_class = _load_tool_class(args.tool_class)
    kwargs = dict(_parse_arg(item) for item in args.arg)
    token_env = args.token_env or TOKEN_ENV
    token = os.environ.get(token_env) or None
    if not is_loopback_host(args.host) and token is None and not args.allow_unauthenticated:
        raise _CommandLineError(
            f"refusing to serve on non-loopback --host {args.host} without a bearer token: put the token in "
            f"${token_env}{'' if args.token_env else ' (or in the variable named by --token-env NAME)'}, "
            "or pass --allow-unauthenticated explicitly"
        )
    if args.port is None:
        base_port, max_tries = DEFAULT_BASE_PORT, args.max_tries or DEFAULT_MAX_TRIES
    else:
        base_port, max_tries = args.port, (args.max_tries or DEFAULT_MAX_TRIES) if args.find_free_port else 1
    try:
        config = ToolServerConfig(
            host=args.host,
            base_port=base_port,
            max_tries=max_tries,
            token=token,
            allow_unauthenticated=args.allow_unauthenticated,
            allowed_hosts=tuple(args.allowed_host),
        )
    except ValueError as exc:
        raise _CommandLineError(str(exc)) from None
    tool = _construct(tool_class, args, kwargs, config)
    stop_requested = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_requested.set())
    try:
        print(f"chia-tool {tool.name} serving at {tool.url}", flush=True)
        stop_requested.wait()
    finally:
        tool.stop()
    return EXIT_OK


def _construct(
    tool_class: Callable[..., ChiaTool], args: argparse.Namespace, kwargs: dict[str, Any], config: ToolServerConfig
) -> ChiaTool:
    """Build and serve the tool, turning each way it can fail into a one-line error naming the option."""
    class_name = getattr(tool_class, "__qualname__", args.tool_class)
    accepted = _accepted_arguments(tool_class)
    unknown = sorted(set(kwargs) - set(accepted)) if accepted is not None else []
    if unknown:
        raise _CommandLineError(_unknown_arguments(class_name, unknown, accepted or []))
    try:
        with in_process(config):
            return tool_class(args.name, **kwargs)
    except TypeError as exc:
        raise _CommandLineError(f"{class_name} refused its --arg values ({exc})") from None
    except ValueError as exc:
        raise _CommandLineError(f"{class_name}({args.name!r}, ...) refused its arguments: {exc}") from None
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise _CommandLineError(f"cannot serve on --host {args.host}: {exc}", EXIT_SERVE_FAILED) from None
        if args.port is None:
            raise _CommandLineError(
                f"no free port on {args.host} in {config.base_port}..{config.base_port + config.max_tries - 1}; "
                "pass --port N for another port, or --port 0 for any free port",
                EXIT_SERVE_FAILED,
            ) from None
        if config.max_tries == 1:
            raise _CommandLineError(
                f"port {args.port} on {args.host} is in use (--port {args.port}); pass --port 0 for any free "
                f"port, or --find-free-port to try the ports after {args.port}",
                EXIT_SERVE_FAILED,
            ) from None
        raise _CommandLineError(
            f"no free port on {args.host} in {args.port}..{args.port + config.max_tries - 1} "
            f"(--port {args.port} --find-free-port --max-tries {config.max_tries}); pass --port 0 for any free port",
            EXIT_SERVE_FAILED,
        ) from None
    except Exception as exc:
        raise _CommandLineError(
            f"{class_name} failed to start: {type(exc).__name__}: {exc}", EXIT_SERVE_FAILED
        ) from None


_BASE_ARGUMENTS = ("name", "self", "task_options", "server_config")


def _accepted_arguments(tool_class: Callable[..., ChiaTool]) -> list[str] | None:
    """Keyword arguments the tool's constructor (and its ``setup``) takes; None if it takes any."""
    targets: list[Callable[..., Any]] = [tool_class]
    setup = getattr(tool_class, "setup", None)
    if setup is not None and getattr(setup, "__qualname__", "") != "ChiaTool.setup":
        targets.append(setup)  # a generated or template __init__ passes its **kwargs to setup
    names: list[str] = []
    for target in targets:
        try:
            parameters = list(inspect.signature(target).parameters.values())
        except (TypeError, ValueError):
            return None
        if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters) and target is targets[-1]:
            return None
        names += [
            parameter.name
            for parameter in parameters
            if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            and parameter.name not in _BASE_ARGUMENTS
            and parameter.name not in names
        ]
    return names


def _unknown_arguments(class_name: str, unknown: list[str], accepted: list[str]) -> str:
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, accepted, n=1)
        hints.append(f"--arg {key}=..." + (f" (did you mean --arg {close[0]}=...?)" if close else ""))
    valid = ", ".join(accepted) if accepted else "none"
    return f"{class_name} takes no argument {', '.join(hints)}; its --arg names: {valid}"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is outside 0..65535 (0: any free port)")
    return port


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Serve a ChiaTool subclass over MCP (streamable HTTP) without Ray. The documented way is "
            "`chia tools serve` (chia-ops), which runs this same program."
        ),
        epilog="Exit codes: 0 stopped by SIGINT/SIGTERM, 1 the server could not start (e.g. busy port), 2 usage error.",
    )
    parser.add_argument("tool_class", help="the tool class as module:Class, e.g. chia.base.tools.BashTool:BashTool")
    parser.add_argument("name", help="tool name: URL path /<name>/mcp and tool-name prefix")
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor keyword argument; VALUE is parsed as JSON when it is valid JSON",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"bind address (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port",
        type=_port,
        help=f"serve on exactly this port (0: any free port); default: the first free port from {DEFAULT_BASE_PORT}",
    )
    parser.add_argument(
        "--find-free-port", action="store_true", help="with --port N: if N is busy, try the ports after it"
    )
    parser.add_argument(
        "--max-tries",
        type=_positive,
        help=f"ports to try with --find-free-port or without --port (default {DEFAULT_MAX_TRIES})",
    )
    parser.add_argument("--token-env", help=f"environment variable holding the bearer token (default {TOKEN_ENV})")
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve a non-loopback host without a token (not recommended)",
    )
    parser.add_argument("--allowed-host", action="append", default=[], help="extra Host header value to accept")
    return parser


def _load_tool_class(spec: str) -> Callable[..., ChiaTool]:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise _CommandLineError(f"tool class {spec!r} must look like module.path:ClassName")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise _CommandLineError(f"tool class {spec!r}: cannot import {module_name} ({exc})") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise _CommandLineError(f"tool class {spec!r}: {module_name} has no attribute {attr!r}") from None
    if not (isinstance(target, type) and issubclass(target, ChiaTool)):
        raise _CommandLineError(f"tool class {spec!r} is not a ChiaTool subclass")
    return target


def _parse_arg(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.isidentifier():
        raise _CommandLineError(f"--arg {item!r} must look like KEY=VALUE with KEY a Python identifier")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
