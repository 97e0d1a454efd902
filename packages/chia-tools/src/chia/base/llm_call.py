"""The LLM-call base: a provider-neutral prompt interface and its structured result.

Concrete backends (an API client, an agent CLI) subclass ``LLMCallBase``; tools handed to
``prompt`` are ChiaTools whose MCP endpoints the backend wires into the model.
"""

from __future__ import annotations

import enum
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

if TYPE_CHECKING:
    from chia.base.tools.ChiaTool import ChiaTool

__all__ = ["UNSET", "LLMCallBase", "QueryResult", "Unset"]


class Unset(enum.Enum):
    """Stable. The type of :data:`UNSET`: "the caller did not pass this option"."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> Literal[False]:
        return False


#: Stable. Default of the optional ``LLMCallBase`` options: not passed, so the backend's own default applies.
UNSET: Final = Unset.UNSET


@dataclass(slots=True)
class QueryResult:
    """Stable. Structured result from prompting an LLM or agent.

    Fields can be set after construction (a backend fills them in as the
    prompt runs), as in chialoops; the object pickles, so it can be the
    result of a Ray task.

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

    Holds what every backend shares (the system message and the optional
    ``dangerously_skip_permissions`` and ``config``) so that switching between
    providers, servers and CLIs is a change of subclass::

        class EchoLLM(LLMCallBase):
            def prompt(self, user_message, tools=()):
                return QueryResult(user_message, 0, "", user_message, success=True)

    An option left at :data:`UNSET` was not passed: the backend applies its
    own default. A backend declares which options it honours with the class
    flags ``supports_dangerously_skip_permissions`` and ``supports_config``
    (both False here); passing an option the backend does not support warns
    (``UserWarning`` naming the backend and the option) and the option is
    kept on the instance but has no effect.
    """

    #: Stable. True in backends that honour ``dangerously_skip_permissions`` (e.g. an agent CLI).
    supports_dangerously_skip_permissions: ClassVar[bool] = False
    #: Stable. True in backends that honour ``config`` (backend-specific settings).
    supports_config: ClassVar[bool] = False

    def __init__(
        self,
        system_message: str,
        dangerously_skip_permissions: bool | Unset = UNSET,
        config: Any = UNSET,
    ) -> None:
        self.system_message = system_message
        self.dangerously_skip_permissions = dangerously_skip_permissions
        self.config = config
        for option, value, supported in (
            ("dangerously_skip_permissions", dangerously_skip_permissions, self.supports_dangerously_skip_permissions),
            ("config", config, self.supports_config),
        ):
            if value is not UNSET and not supported:
                warnings.warn(
                    f"{type(self).__qualname__} does not support {option}; the value passed ({option}={value!r}) "
                    f"has no effect (a backend that honours it sets supports_{option} = True)",
                    UserWarning,
                    stacklevel=2,
                )

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
