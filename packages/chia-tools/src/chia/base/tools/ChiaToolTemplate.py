"""ChiaToolTemplate: the setup-style ChiaTool base with a constructor that accepts setup's arguments."""

from __future__ import annotations

from typing import Any

from chia.base.tools.ChiaTool import ChiaTool, ToolServerConfig, _setup_style

__all__ = ["ChiaToolTemplate"]


class ChiaToolTemplate(ChiaTool):
    """Stable. Start a new tool here: override ``setup`` and register functions in it.

    Same behaviour as a setup-style ``ChiaTool`` subclass, but the constructor is written
    out, so type checkers accept the extra arguments that are forwarded to ``setup``::

        class GrepTool(ChiaToolTemplate):
            def setup(self, root: str = "/") -> None:
                self.root = root
                self.mcp.add_tool(self.grep, name=f"{self.name}_grep")

            def grep(self, pattern: str) -> str: ...

        tool = GrepTool("grep", root="/src", task_options=node.task_options)
    """

    @_setup_style
    def __init__(
        self,
        name: str,
        *args: Any,
        task_options: dict[str, Any] | None = None,
        logging_level: int = 10,
        server_config: ToolServerConfig | None = None,
        **kwargs: Any,
    ) -> None:
        """Initializes ChiaTool with a name and optional resource requirements."""
        super().__init__(name, task_options=task_options, logging_level=logging_level, server_config=server_config)
        self.setup(*args, **kwargs)
        self.__post_init__()
