"""A scripted OpenAI-compatible Chat Completions endpoint on 127.0.0.1: offline, deterministic.

For demos, guides and tests of agent flows without a model: each request to
``POST <base_url>/chat/completions`` gets the next reply of a script (an answer, tool
calls, an HTTP error, or no answer at all), in the Chat Completions wire format that the
``openai`` SDK and :class:`~chia.models.openai_compat.OpenAICompatLLM` speak. Standard
library only (``http.server``).
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["ChatRequest", "Reply", "ScriptedChatServer", "Step"]

logger = logging.getLogger(__name__)

_MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """Experimental. One request the endpoint received: JSON body, headers, arrival time.

    ``headers`` has lower-case names and never the ``authorization`` header (``authorized``
    says whether it matched the endpoint's key); ``received_at`` is ``time.monotonic()``.
    """

    body: dict[str, Any]
    headers: dict[str, str]
    authorized: bool
    received_at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's chat messages."""
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def tool_names(self) -> list[str]:
        """Names of the functions offered to the model."""
        return [tool["function"]["name"] for tool in self.body.get("tools", []) if tool.get("type") == "function"]


@dataclass(frozen=True, slots=True)
class Reply:
    """Experimental. One scripted reply; build it with the class methods.

    ``Reply.answer(text)`` ends the turn, ``Reply.tool_call(name, **arguments)`` asks for a
    tool, ``Reply.error(status, message)`` fails the request, ``Reply.hang()`` never answers.
    """

    content: str | None = None
    tool_calls: tuple[tuple[str, str], ...] = ()
    finish_reason: str = "stop"
    status: int = 200
    error_code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    hang_until_stopped: bool = False

    @classmethod
    def answer(cls, text: str, *, finish_reason: str = "stop") -> Reply:
        """The model's final text (``finish_reason="length"`` plays a cut answer)."""
        return cls(content=text, finish_reason=finish_reason)

    @classmethod
    def tool_call(cls, name: str, /, **arguments: Any) -> Reply:
        """One call of function ``name`` with ``arguments``."""
        return cls.tool_calls_of((name, arguments))

    @classmethod
    def tool_calls_of(cls, *calls: tuple[str, Mapping[str, Any] | str]) -> Reply:
        """Several calls in one turn; arguments as a mapping or as raw (possibly invalid) JSON text."""
        encoded = tuple((name, args if isinstance(args, str) else json.dumps(dict(args))) for name, args in calls)
        return cls(tool_calls=encoded, finish_reason="tool_calls")

    @classmethod
    def error(
        cls, status: int, message: str, *, code: str | None = None, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """An HTTP error with an OpenAI-style body ``{"error": {"message", "code", ...}}``."""
        if not 400 <= status <= 599:
            raise ValueError(f"error status must be 4xx or 5xx, got {status}")
        return cls(content=message, status=status, error_code=code, headers=tuple((headers or {}).items()))

    @classmethod
    def hang(cls) -> Reply:
        """No answer until the server stops: plays a model slower than any client timeout."""
        return cls(hang_until_stopped=True)


Step = Reply | Callable[[ChatRequest], Reply]
"""Experimental. One step of a script: a reply, or a function of the request that returns one."""


@dataclass
class _State:
    script: list[Step]
    api_key: str | None
    model: str | None
    stopping: threading.Event
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[ChatRequest] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=itertools.count)


class ScriptedChatServer:
    """Experimental. Plays ``script`` to Chat Completions clients, one step per request.

    A step is a :class:`Reply` or a function of the :class:`ChatRequest` returning one
    (to answer from what the tools returned). Requests beyond the script get HTTP 500.
    With ``api_key``, requests without ``Authorization: Bearer <api_key>`` get 401; with
    ``model``, requests for another model get 404. Binds 127.0.0.1 (port 0: any free one)::

        with ScriptedChatServer([Reply.tool_call("sim_run_command", command="ls"),
                                 lambda request: Reply.answer(request.messages[-1]["content"])]) as server:
            llm = OpenAICompatLLM("scripted", base_url=server.base_url, api_key="unused")
            print(llm.prompt("What is there?", tools=[sim]).result)
    """

    def __init__(
        self,
        script: Iterable[Step],
        *,
        api_key: str | None = None,
        model: str | None = None,
        port: int = 0,
    ) -> None:
        self._state = _State(list(script), api_key, model, threading.Event())
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    def start(self) -> ScriptedChatServer:
        """Listen on 127.0.0.1 and serve from a daemon thread. Returns ``self``."""
        if self._server is not None:
            raise RuntimeError("ScriptedChatServer is already started")
        server = ThreadingHTTPServer(("127.0.0.1", self._port), _handler_class(self._state))
        server.daemon_threads = True
        self._server = server
        self._base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        self._thread = threading.Thread(target=server.serve_forever, name="chia-scripted-chat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still hanging are released (their connections close). Idempotent."""
        self._state.stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> ScriptedChatServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what to pass as ``base_url`` (kept after ``stop``)."""
        if self._base_url is None:
            raise RuntimeError("ScriptedChatServer is not started")
        return self._base_url

    @property
    def requests(self) -> list[ChatRequest]:
        """The requests received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    def __repr__(self) -> str:
        where = self._base_url if self._server is not None else "stopped"
        return f"<ScriptedChatServer {where} steps left={len(self._state.script)}>"


def _handler_class(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(_ChatHandler):
        shared = state

    return Handler


class _ChatHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    disable_nagle_algorithm = True  # headers and body are two writes: Nagle would hold the body ~40 ms
    shared: _State

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("scripted endpoint: " + format, *args)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if not self.path.rstrip("/").endswith("/chat/completions") or length > _MAX_BODY_BYTES:
            self._send(404, _error_body(f"no route {self.path}: POST <base_url>/chat/completions", "not_found"))
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as error:
            self._send(400, _error_body(f"request body is not JSON: {error}", "invalid_request"))
            return
        state = self.shared
        authorized = state.api_key is None or self.headers.get("authorization") == f"Bearer {state.api_key}"
        headers = {name.lower(): value for name, value in self.headers.items() if name.lower() != "authorization"}
        request = ChatRequest(body, headers, authorized, time.monotonic())
        known_model = state.model is None or body.get("model") == state.model
        with state.lock:
            state.requests.append(request)
            step = state.script.pop(0) if authorized and known_model and state.script else None
        if not authorized:
            self._send(401, _error_body("Incorrect API key provided.", "invalid_api_key"))
        elif not known_model:
            self._send(404, _error_body(f"The model {body.get('model')!r} does not exist.", "model_not_found"))
        elif step is None:
            self._send(500, _error_body("the scripted endpoint has no reply left", "script_exhausted"))
        else:
            try:
                reply = step if isinstance(step, Reply) else step(request)
            except Exception as error:  # a broken script answers, rather than dropping the connection
                logger.exception("scripted endpoint: a step raised")
                self._send(
                    500, _error_body(f"the scripted step raised {type(error).__name__}: {error}", "script_error")
                )
                return
            self._play(reply, body)

    def _play(self, reply: Reply, body: dict[str, Any]) -> None:
        if reply.hang_until_stopped:
            self.shared.stopping.wait()
            self.close_connection = True
            return
        if reply.status != 200:
            self._send(reply.status, _error_body(reply.content or "", reply.error_code), dict(reply.headers))
            return
        number = next(self.shared.ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{number}_{index}", "type": "function", "function": {"name": name, "arguments": args}}
                for index, (name, args) in enumerate(reply.tool_calls)
            ]
        completion = {
            "id": f"chatcmpl-scripted-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }
        self._send(200, completion)

    def _send(self, status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _error_body(message: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "scripted_error", "param": None, "code": code}}
