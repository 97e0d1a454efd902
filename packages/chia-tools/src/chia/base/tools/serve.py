r"""Serve ChiaTools without Ray: in the current process, with uvicorn, on a host and port.

For users who install only chia-tools, or who run a tool next to the code that uses it.
Also a command::

    python -m chia.base.tools.serve chia.base.tools.BashTool:BashTool bash \\
        --arg work_dir=/workspace --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from chia.base.tools._config import DEFAULT_BASE_PORT, DEFAULT_HOST, TOKEN_ENV, ToolServerConfig
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


def main(argv: Sequence[str] | None = None) -> int:
    """Stable. Command line: serve one ChiaTool subclass until SIGINT/SIGTERM.

    Prints ``chia-tool <name> serving at <url>`` once the endpoint accepts connections.
    The bearer token is read from ``$CHIA_TOOL_TOKEN`` (or ``--token-env``), never from
    the command line.
    """
    args = _parser().parse_args(argv)
    tool_class = _load_tool_class(args.tool_class)
    kwargs = dict(_parse_arg(item) for item in args.arg)
    token_env = args.token_env or TOKEN_ENV
    try:
        config = ToolServerConfig(
            host=args.host,
            base_port=args.port,
            max_tries=args.max_tries,
            token=os.environ.get(token_env) or None,
            allow_unauthenticated=args.allow_unauthenticated,
            allowed_hosts=tuple(args.allowed_host),
        )
    except ValueError as exc:
        raise SystemExit(f"chia-tool: {exc}") from None
    stop_requested = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_requested.set())
    with in_process(config):
        tool = tool_class(args.name, **kwargs)
    try:
        print(f"chia-tool {tool.name} serving at {tool.url}", flush=True)
        stop_requested.wait()
    finally:
        tool.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chia.base.tools.serve",
        description="Serve a ChiaTool subclass over MCP (streamable HTTP) without Ray.",
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
    parser.add_argument("--port", type=int, default=DEFAULT_BASE_PORT, help="first port to try; 0 = any free port")
    parser.add_argument("--max-tries", type=int, default=100, help="ports to try from --port")
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
        raise SystemExit(f"tool class {spec!r} must look like module.path:ClassName")
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, ChiaTool)):
        raise SystemExit(f"{spec!r} is not a ChiaTool subclass")
    return target


def _parse_arg(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.isidentifier():
        raise SystemExit(f"--arg {item!r} must look like KEY=VALUE with KEY a Python identifier")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
