"""The LLM-call base: a provider-neutral prompt interface and its structured result.

Concrete backends (an API client, an agent CLI) subclass ``LLMCallBase``; tools handed to
``prompt`` are ChiaTools whose MCP endpoints the backend wires into the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chia.base.tools.ChiaTool import ChiaTool

__all__ = ["LLMCallBase", "QueryResult"]


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Stable. Structured result from prompting an LLM or agent.

    :param result: the final response from the LLM or agent
    :param returncode: the return code from running the prompt
    :param stderr: the stderr output from running the prompt (CLIs only)
    :param stream_result: the full transcript of all turns of the LLM or agent
    :param success: whether the prompt completed successfully
    """

    result: str
    returncode: int
    stderr: str
    stream_result: str
    success: bool = False


class LLMCallBase(ABC):
    """Stable. Polymorphic base for LLM and agent configuration and behaviour.

    Holds what every backend shares (the system message) so that switching between
    providers, servers and CLIs is a change of subclass::

        class EchoLLM(LLMCallBase):
            def prompt(self, user_message, tools=()):
                return QueryResult(user_message, 0, "", user_message, success=True)
    """

    def __init__(self, system_message: str) -> None:
        self.system_message = system_message

    @abstractmethod
    def prompt(self, user_message: str, tools: Sequence[ChiaTool] | None = ()) -> QueryResult:
        """Stable. Send a prompt to this LLM.

        :param user_message: message used to prompt the LLM
        :param tools: tools available to the LLM during the call
        """

    @staticmethod
    def mcp_servers(tools: Sequence[ChiaTool] | None) -> dict[str, dict[str, Any]]:
        """Experimental. MCP client configuration for ``tools``, keyed by tool name.

        Each entry is ``{"type": "http", "url": ..., "headers": {...}}`` with the URL
        rewritten for the current node and the bearer header when the tool has a token:
        the shape agent CLIs accept under ``mcpServers``. It contains secrets: do not log it.
        """
        return {tool.name: {"type": "http", "url": tool.url, "headers": tool.auth_headers} for tool in tools or ()}
