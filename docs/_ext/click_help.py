"""``.. click-help:: module:command``: a click command tree's ``--help``, generated.

The CLI reference is built from the commands themselves (their docstrings and
option help), like the API reference is built from docstrings: one rubric and
literal block per command and sub-command, in the order click lists them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import ClassVar

import click
from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

_WIDTH = 100


def _walk(command: click.Command, ctx: click.Context) -> Iterator[tuple[click.Context, click.Command]]:
    yield ctx, command
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, _context(sub, name, ctx))


def _context(command: click.Command, name: str | None, parent: click.Context | None) -> click.Context:
    """The context click would build for ``command`` (its context_settings apply, e.g. ``-h``)."""
    settings = {"max_content_width": _WIDTH, "terminal_width": _WIDTH, **command.context_settings}
    return click.Context(command, info_name=name, parent=parent, **settings)


class ClickHelp(SphinxDirective):
    """Render the help of a click command and all its sub-commands."""

    required_arguments = 1
    option_spec: ClassVar[dict[str, Callable[[str], str]]] = {"prog": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        module_name, _, attribute = self.arguments[0].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise self.error(f"{self.arguments[0]} is not a click command")
        root = _context(command, self.options.get("prog", command.name), None)
        result: list[nodes.Node] = []
        for ctx, sub in _walk(command, root):
            path = ctx.command_path
            rubric = nodes.rubric(text=path, ids=[nodes.make_id(f"cli {path}")])
            help_text = sub.get_help(ctx)
            result += [rubric, nodes.literal_block(help_text, help_text)]
        return result


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("click-help", ClickHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
