"""``chia tools``: MCP tool servers (chia-tools, the ``[tools]`` extra).

Stable. Owns the ``tools`` command group: ``serve`` runs
:func:`chia.base.tools.serve.main` with its arguments as given, under the
name ``chia tools serve`` (its options, messages and exit codes are that
program's: 0 stopped by SIGINT/SIGTERM, 1 the server could not start, 2 usage).
"""

from __future__ import annotations

import click

from chia.cli._extras import TOOLS, needs

__all__ = ["tools"]


@click.group()
def tools() -> None:
    """MCP tool servers (needs chia-tools)."""


@tools.command(
    "serve",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def tools_serve(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Serve a ChiaTool subclass over MCP without Ray: TOOL_CLASS NAME [--host H] [--port N] ... (--help: all)."""
    with needs(TOOLS, "chia tools serve"):
        from chia.base.tools.serve import main as serve_main
    ctx.exit(serve_main(list(args), prog="chia tools serve"))
