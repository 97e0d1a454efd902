"""The FastMCP server a ChiaTool registers its functions on.

Bridges the reference's registration call ``self.mcp.add_tool(fn, name=...)`` onto
FastMCP 4 (whose ``add_tool`` takes a single tool), and makes the server picklable by
rebuilding it from the components registered through it, so a tool object can travel to
the Ray actor that serves it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from fastmcp import FastMCP
from fastmcp.prompts import Prompt
from fastmcp.resources import Resource, ResourceTemplate
from fastmcp.tools import Tool

_Component = Tool | Resource | ResourceTemplate | Prompt

# The MCP specification (2025-11-25, server/tools, "Tool names"): 1-128 characters, only
# ASCII letters, digits, underscore, hyphen and dot; case-sensitive.
_MCP_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
MCP_TOOL_NAME_RULE = (
    "MCP tool names (specification 2025-11-25, 'Tool names') are 1-128 characters among A-Z, a-z, 0-9, '_', '-' and '.'"
)


def check_tool_name(name: object, *, what: str) -> None:
    """Refuse (``ValueError``) a name that MCP's tool-name rule does not allow, quoting the rule."""
    if not isinstance(name, str) or not _MCP_TOOL_NAME.fullmatch(name):
        length = f" ({len(name)} characters)" if isinstance(name, str) else ""
        raise ValueError(f"invalid {what} {name!r}{length}: {MCP_TOOL_NAME_RULE}")


class ToolMCP(FastMCP[Any]):
    """Experimental. The FastMCP server of a ChiaTool (``tool.mcp``): picklable, reference-style ``add_tool``.

    Components registered with ``add_tool``, ``add_resource``, ``add_template`` and
    ``add_prompt`` survive pickling; decorator-registered ones (``@mcp.tool``) do not.
    """

    def __init__(self, name: str, instructions: str | None = None) -> None:
        super().__init__(name=name, instructions=instructions)
        self._registered: list[_Component] = []

    def __reduce__(
        self,
    ) -> tuple[Callable[..., ToolMCP], tuple[str, str | None, tuple[_Component, ...]]]:
        return (_rebuild, (self.name, self.instructions, tuple(self._registered)))

    def add_tool(
        self,
        tool: Tool | Callable[..., Any],
        name: str | None = None,
        description: str | None = None,
        **tool_options: Any,
    ) -> Tool:
        """Register ``tool``; for a function, ``name``/``description``/options go to ``Tool.from_function``."""
        if isinstance(tool, Tool):
            if name is not None or description is not None or tool_options:
                raise TypeError(
                    f"add_tool got a Tool ({tool.name!r}) together with name/description/"
                    "options: pass those only with a plain function"
                )
        elif name is not None or description is not None or tool_options:
            tool = Tool.from_function(tool, name=name, description=description, **tool_options)
        else:
            tool = Tool.from_function(tool)
        check_tool_name(tool.name, what="MCP tool name")
        added = super().add_tool(tool)
        self._registered.append(added)
        return added

    def add_resource(self, resource: Resource | Callable[..., Any]) -> Resource | ResourceTemplate:
        added = super().add_resource(resource)
        self._registered.append(added)
        return added

    def add_template(self, template: ResourceTemplate) -> ResourceTemplate:
        added = super().add_template(template)
        self._registered.append(added)
        return added

    def add_prompt(self, prompt: Prompt | Callable[..., Any]) -> Prompt:
        added = super().add_prompt(prompt)
        self._registered.append(added)
        return added


def _rebuild(name: str, instructions: str | None, components: Sequence[_Component]) -> ToolMCP:
    server = ToolMCP(name, instructions)
    for component in components:
        if isinstance(component, Tool):
            server.add_tool(component)
        elif isinstance(component, ResourceTemplate):
            server.add_template(component)
        elif isinstance(component, Resource):
            server.add_resource(component)
        else:
            server.add_prompt(component)
    return server
