"""OpenAI-compatible LLM backend: the agentic loop on the client side, ChiaTools over MCP.

:class:`OpenAICompatLLM` drives any endpoint that speaks the Chat Completions API (OpenAI,
vLLM, Ollama, OpenRouter, ...) with the official ``openai`` SDK, an optional extra
(``chia-tools[openai]``): the module imports without it, the constructor says what to
install. Failures are typed (:class:`LLMError` and its subclasses), pickle across Ray,
and name the endpoint and the model, never the API key.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import re
import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from chia.base.llm_call import LLMCallBase, QueryResult
from chia.base.tools._mcp_client import McpFunction, ToolSessions, run_blocking

if TYPE_CHECKING:
    from chia.base.tools.ChiaTool import ChiaTool

__all__ = [
    "LLMAuthenticationError",
    "LLMBillingError",
    "LLMConnectionError",
    "LLMContextOverflowError",
    "LLMError",
    "LLMModelNotFoundError",
    "LLMRateLimitError",
    "LLMRequestError",
    "LLMServerError",
    "LLMTimeoutError",
    "OpenAICompatLLM",
]

logger = logging.getLogger(__name__)

EXTRA_HINT = "install chia-tools with its 'openai' extra (chia-tools[openai]) or the openai package (>= 1.55.3)"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MAX_TOKENS = 4096
# Backoff between retries without a Retry-After header: 1 s, 2 s, 4 s, ... at most 30 s,
# each shortened by up to a quarter at random so parallel agents do not retry in step.
_BACKOFF_FIRST_SECONDS = 1.0
_BACKOFF_MAX_SECONDS = 30.0
# A Retry-After longer than this is not waited for: the error is raised at once.
_MAX_RETRY_AFTER_SECONDS = 120.0
_MAX_DETAIL_CHARS = 500
_CLIENT_KEYWORDS_OWNED = frozenset({"api_key", "base_url", "timeout", "max_retries"})
_CONTEXT_OVERFLOW = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many tokens|prompt is too long|input is too long",
    re.IGNORECASE,
)
_CONTEXT_OVERFLOW_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})


class LLMError(Exception):
    """Experimental. A Chat Completions request failed.

    ``endpoint`` (the base URL without credentials), ``model``, ``status_code`` (None
    without an HTTP answer), ``attempts`` (requests made, retries included) and
    ``retry_after`` (seconds the server asked to wait, if it did). The message names the
    endpoint and the model and never contains the API key. Pickles, so it crosses Ray.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        model: str = "",
        status_code: int | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.model = model
        self.status_code = status_code
        self.attempts = attempts
        self.retry_after = retry_after


class LLMAuthenticationError(LLMError):
    """Experimental. The endpoint refused the API key (HTTP 401, or 403 for a key without access)."""


class LLMBillingError(LLMError):
    """Experimental. The account cannot pay for the request (HTTP 402, or 429 ``insufficient_quota``)."""


class LLMRateLimitError(LLMError):
    """Experimental. Too many requests (HTTP 429); retried with backoff that honours ``Retry-After``."""

    retryable = True


class LLMContextOverflowError(LLMError):
    """Experimental. The conversation no longer fits the model's context (HTTP 400 or 413)."""


class LLMModelNotFoundError(LLMError):
    """Experimental. The endpoint does not know the model, or has no Chat Completions route (HTTP 404)."""


class LLMServerError(LLMError):
    """Experimental. The endpoint failed (HTTP 5xx, 408, 409); retried with backoff."""

    retryable = True


class LLMTimeoutError(LLMError):
    """Experimental. No answer within ``timeout_seconds``; not retried (a slow model stays slow)."""


class LLMConnectionError(LLMError):
    """Experimental. The endpoint could not be reached; retried with backoff."""

    retryable = True


class LLMRequestError(LLMError):
    """Experimental. The endpoint rejected the request for another reason (e.g. HTTP 400, 422)."""


class _Secret:
    """A string kept out of reprs; it still pickles (the object must travel to workers)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    def __reduce__(self) -> tuple[type[_Secret], tuple[str]]:
        return (_Secret, (self._value,))


def _openai() -> ModuleType:
    try:
        import openai
    except ImportError as error:
        raise ImportError(f"OpenAICompatLLM needs the OpenAI SDK: {EXTRA_HINT}") from error
    return openai


class OpenAICompatLLM(LLMCallBase):
    """Experimental. A model behind an OpenAI-compatible Chat Completions endpoint, with ChiaTools.

    ``prompt(user_message, tools)`` runs the agentic loop here, on the client side: it
    connects to each tool's MCP server (a real MCP client, with the tool's bearer header),
    offers their MCP tools to the model as functions, executes every call the model makes
    over MCP and sends the results back, until the model answers without calling a tool
    or ``max_tool_iterations`` rounds of tool calls have run. The
    :class:`~chia.base.llm_call.QueryResult` holds the final text, the transcript (one
    JSON chat message per line, tool calls and results included) and ``success``::

        llm = OpenAICompatLLM("gpt-4.1-mini", "You tune processors.")
        answer = llm.prompt("Which configuration is fastest?", tools=[sim_shell])

    ``base_url`` and ``api_key`` default to ``$OPENAI_BASE_URL`` (else OpenAI's API) and
    ``$OPENAI_API_KEY``, read when the object is built, as the ``openai`` SDK does; the key
    travels with the object (it pickles, e.g. to a Ray worker) but never appears in its
    repr, in logs, transcripts or exceptions. For a local endpoint without authentication
    (vLLM, Ollama) pass any placeholder key. ``timeout_seconds`` bounds each request to the
    model and each MCP request; ``retries`` is how many times a rate-limited (429), failed
    (5xx) or unreachable request is retried, waiting what ``Retry-After`` asks (up to
    120 s) or else 1, 2, 4... s. ``max_tokens`` caps each answer (None: the endpoint's
    default). ``client_kwargs`` go to ``openai.AsyncOpenAI`` (e.g. ``default_headers``).

    To run the loop on a Ray worker, dispatch ``prompt`` like any chia function: a
    subclass whose ``prompt`` is a ``@ChiaFunction`` calling ``super().prompt(...)`` is
    called as ``llm.prompt.chia_remote(llm, message, tools=[tool])``.
    """

    def __init__(
        self,
        model: str,
        system_message: str = "",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float = 600,
        retries: int = 3,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        max_tool_iterations: int = 100,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        _openai()
        super().__init__(system_message)
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds!r}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries!r}")
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens!r}")
        if max_tool_iterations < 1:
            raise ValueError(f"max_tool_iterations must be >= 1, got {max_tool_iterations!r}")
        owned = sorted(_CLIENT_KEYWORDS_OWNED.intersection(client_kwargs or {}))
        if owned:
            raise ValueError(
                f"client_kwargs may not set {owned}: use OpenAICompatLLM's base_url, api_key, "
                "timeout_seconds and retries"
            )
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {_display_endpoint(url)!r}")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError(
                "no API key: pass api_key=... or set OPENAI_API_KEY (an endpoint without "
                "authentication accepts any placeholder, e.g. api_key='none')"
            )
        self.model = model
        self.base_url = url
        self.timeout_seconds = float(timeout_seconds)
        self.retries = retries
        self.max_tokens = max_tokens
        self.max_tool_iterations = max_tool_iterations
        self.client_kwargs: dict[str, Any] = dict(client_kwargs or {})
        self._api_key = _Secret(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, endpoint={self.endpoint!r})"

    @property
    def endpoint(self) -> str:
        """Experimental. The base URL without credentials or query: what errors and logs show."""
        return _display_endpoint(self.base_url)

    def prompt(self, user_message: str, tools: Sequence[ChiaTool] | None = ()) -> QueryResult:
        """Experimental. Run the agentic loop for ``user_message`` with ``tools``; see the class.

        Raises an :class:`LLMError` subclass when the endpoint fails (after the retries
        that apply), ``ValueError`` when two tools offer the same MCP tool name.
        """
        return run_blocking(self._converse(user_message, self.mcp_servers(tools)))

    async def _converse(self, user_message: str, servers: Mapping[str, Mapping[str, Any]]) -> QueryResult:
        openai = _openai()
        messages: list[dict[str, Any]] = []
        if self.system_message:
            messages.append({"role": "system", "content": self.system_message})
        messages.append({"role": "user", "content": user_message})
        async with ToolSessions(servers, self.timeout_seconds) as sessions:
            client = openai.AsyncOpenAI(
                api_key=self._api_key.reveal(),
                base_url=self.base_url,
                timeout=self.timeout_seconds,
                max_retries=0,  # retried here: counted, and Retry-After honoured the same in every SDK version
                **self.client_kwargs,
            )
            async with client:
                request: dict[str, Any] = {"model": self.model, "messages": messages}
                if sessions.functions:
                    request["tools"] = [_function_spec(function) for function in sessions.functions]
                if self.max_tokens is not None:
                    request["max_tokens"] = self.max_tokens
                rounds = 0
                while True:
                    choice = await self._complete(client, request)
                    message = choice.message
                    calls = list(message.tool_calls or ())
                    messages.append(_assistant_entry(message.content, calls))
                    if not calls:
                        return _final(message.content or "", choice.finish_reason, messages)
                    if rounds == self.max_tool_iterations:
                        stderr = f"no final answer after {self.max_tool_iterations} rounds of tool calls"
                        return QueryResult(message.content or "", 1, stderr, _transcript(messages), success=False)
                    logger.debug("%s: round %d: %d tool call(s)", self.model, rounds + 1, len(calls))
                    for call in calls:
                        messages.append(await _run_tool_call(sessions, call))
                    rounds += 1

    async def _complete(self, client: Any, request: dict[str, Any]) -> Any:
        """One completion: retried as the failure allows; returns its first choice."""
        openai = _openai()
        attempt = 0
        while True:
            attempt += 1
            try:
                completion = await client.chat.completions.create(**request)
            except openai.APIError as error:
                failure = self._failure(openai, error, attempt)
            else:
                if not completion.choices:
                    raise LLMError(
                        f"{self._where()} answered without any choice",
                        endpoint=self.endpoint,
                        model=self.model,
                        attempts=attempt,
                    )
                return completion.choices[0]
            # Raised outside the except block: the SDK's exception (which holds the
            # request and its Authorization header) is neither chained nor pickled.
            delay = self._retry_delay(failure, attempt)
            if delay is None:
                raise failure
            logger.warning("%s; retry %d of %d in %.1f s", failure, attempt, self.retries, delay)
            await asyncio.sleep(delay)

    def _retry_delay(self, failure: LLMError, attempt: int) -> float | None:
        """Seconds to wait before retrying after ``failure``, or None to give up."""
        if not failure.retryable or attempt > self.retries:
            return None
        if failure.retry_after is not None:
            return failure.retry_after if failure.retry_after <= _MAX_RETRY_AFTER_SECONDS else None
        backoff = min(_BACKOFF_FIRST_SECONDS * 2.0 ** (attempt - 1), _BACKOFF_MAX_SECONDS)
        return backoff * (1 - 0.25 * random.random())

    def _where(self) -> str:
        return f"{self.endpoint} (model {self.model!r})"

    def _failure(self, openai: ModuleType, error: Exception, attempt: int) -> LLMError:
        """The typed error for an SDK exception; its text never holds the key."""
        common: dict[str, Any] = {"endpoint": self.endpoint, "model": self.model, "attempts": attempt}
        where = self._where()
        if isinstance(error, openai.APITimeoutError):
            return LLMTimeoutError(f"no answer from {where} within {self.timeout_seconds:g} s", **common)
        if isinstance(error, openai.APIConnectionError):
            cause = error.__cause__ or error
            return LLMConnectionError(f"cannot reach {where}: {self._redact(str(cause))}", **common)
        if not isinstance(error, openai.APIStatusError):
            return LLMError(f"unusable answer from {where}: {self._redact(str(error))}", **common)
        status: int = error.status_code
        code = str(getattr(error, "code", None) or "")
        detail = f"HTTP {status}: {self._server_message(error)}"
        retry_after = _retry_after(error.response.headers)
        common.update(status_code=status, retry_after=retry_after)
        if status in (401, 403):
            return LLMAuthenticationError(
                f"{where} refused the API key ({detail}); check api_key or OPENAI_API_KEY", **common
            )
        if status == 402 or code == "insufficient_quota":
            return LLMBillingError(f"{where} refused to bill the request ({detail})", **common)
        if status == 429:
            wait = "" if retry_after is None else f"; Retry-After {retry_after:g} s"
            return LLMRateLimitError(f"{where} is rate limiting ({detail}{wait})", **common)
        if status == 404:
            return LLMModelNotFoundError(
                f"{where}: no such model, or no /chat/completions under that base_url ({detail})", **common
            )
        if status == 413 or (
            status == 400 and (code in _CONTEXT_OVERFLOW_CODES or _CONTEXT_OVERFLOW.search(detail) is not None)
        ):
            return LLMContextOverflowError(f"the conversation overflows the context of {where} ({detail})", **common)
        if status >= 500 or status in (408, 409):
            return LLMServerError(f"{where} failed ({detail})", **common)
        return LLMRequestError(f"{where} rejected the request ({detail})", **common)

    def _server_message(self, error: Any) -> str:
        body = error.body
        if isinstance(body, Mapping):
            text = body.get("message") or json.dumps(dict(body), default=str)
        elif body:
            text = str(body)
        else:
            text = error.message
        return self._redact(str(text))[:_MAX_DETAIL_CHARS]

    def _redact(self, text: str) -> str:
        key = self._api_key.reveal()
        # A placeholder key (e.g. "none" for a local endpoint) is not a secret worth
        # mangling every word that contains it.
        return text.replace(key, "***") if len(key) >= 8 else text


def _display_endpoint(url: str) -> str:
    """``url`` without user info, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds asked for by ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            if name == "retry-after":
                try:
                    when = email.utils.parsedate_to_datetime(value).timestamp()
                except (TypeError, ValueError):
                    return None
                return max(0.0, when - time.time())
    return None


def _function_spec(function: McpFunction) -> dict[str, Any]:
    parameters = function.parameters or {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {"name": function.name, "description": function.description, "parameters": parameters},
    }


def _assistant_entry(content: str | None, calls: list[Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        entry["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in calls
        ]
    return entry


async def _run_tool_call(sessions: ToolSessions, call: Any) -> dict[str, Any]:
    """Execute one tool call over MCP; the tool message that carries its result."""
    function = getattr(call, "function", None)
    if function is None:
        content = f"unsupported tool call type {getattr(call, 'type', None)!r}: only functions are offered"
    else:
        outcome = await sessions.call(function.name, function.arguments)
        content = f"error: {outcome.text}" if outcome.is_error else outcome.text
    return {"role": "tool", "tool_call_id": call.id, "content": content}


def _final(content: str, finish_reason: str | None, messages: list[dict[str, Any]]) -> QueryResult:
    transcript = _transcript(messages)
    if finish_reason in ("length", "content_filter"):
        stderr = f"the answer stopped early: finish_reason={finish_reason}"
        return QueryResult(content, 1, stderr, transcript, success=False)
    return QueryResult(content, 0, "", transcript, success=True)


def _transcript(messages: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(message, ensure_ascii=False) for message in messages)
