"""Request -> :class:`Reply`: routing, directive resolution, request recording, control routes.

API routes (``/v1/...``; the ``/v1`` prefix is optional for clients whose base URL
already holds it) answer in their own dialect, errors included. Control routes
under ``/_stub/`` let tests (and other processes) queue faults, read what clients
sent, and reset.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from provcfg.stub import anthropic, openai
from provcfg.stub.config import StubConfig, StubError, parse_tool_input
from provcfg.stub.faults import Directives, Fault, FaultQueue, parse_directives
from provcfg.stub.wire import Call, Reply, json_reply

__all__ = ["RecordedRequest", "Router"]

_SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "proxy-authorization", "cookie", "api-key", "x-goog-api-key"}
)
_DIRECTIVE_HEADERS = (b"x-stub-scenario", b"x-stub-reply", b"x-stub-fault")
_TOOL_INPUT_HEADER = b"x-stub-tool-input"
# Responses API input items that carry a tool's result back to the model.
_TOOL_OUTPUT_ITEMS = frozenset(
    {"function_call_output", "custom_tool_call_output", "local_shell_call_output"}
)
_OPENAI_PATHS = ("/v1/responses", "/v1/chat/completions")
_BODY_KEPT = 256 * 1024


class _ErrorReply(Protocol):
    def __call__(
        self, status: int, message: str, extra: Sequence[tuple[str, str]] = ..., /
    ) -> Reply: ...


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What one client request looked like, for tests to assert on.

    ``headers``: (name, value) pairs, names lower-case, credential values replaced by
    ``<redacted>``. ``body``: the parsed JSON body when it is at most 256 KiB, else
    ``None``. ``directives``: the spec strings applied (model, headers, queue).
    ``connection``: the server's number for the TCP connection (keep-alive reuse).
    """

    method: str
    path: str
    model: str | None
    stream: bool
    headers: tuple[tuple[str, str], ...]
    body_size: int
    body: Any
    connection: int
    directives: tuple[str, ...]
    status: int

    def header(self, name: str) -> str | None:
        """Return the value of header ``name`` (case-insensitive), or ``None``."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def to_json(self) -> dict[str, Any]:
        """Return this record as a JSON-ready dict."""
        return asdict(self)


class Router:
    """Turns one parsed HTTP request into a :class:`Reply`; owns the queue and the records."""

    def __init__(self, config: StubConfig, *, max_records: int = 10_000) -> None:
        """Serve replies shaped by ``config``, keeping the last ``max_records`` requests."""
        self.config = config
        self.faults = FaultQueue()
        self._records: deque[RecordedRequest] = deque(maxlen=max_records)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Return the recorded API requests, oldest first (control routes are not recorded)."""
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        """Forget the recorded requests and drop every queued fault."""
        self.faults.clear()
        with self._lock:
            self._records.clear()

    def route(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        connection: int,
    ) -> Reply:
        """Return the reply for one request (never raises for bad input: it becomes a 4xx)."""
        path = target.split("?", 1)[0].rstrip("/") or "/"
        if path.startswith("/_stub/"):
            return self._control(method, path, body)
        if path == "/":
            if method in ("GET", "HEAD"):
                return json_reply(200, {"service": "provcfg-stub", "status": "ok"})
            return _not_allowed(path, method, "GET, HEAD")
        if not path.startswith("/v1/"):
            path = "/v1" + path
        ident = next(self._ids)
        recorded: list[str] = []
        payload = _parse(body)
        reply = self._api(
            method, path, headers, raw=body, parsed=payload, ident=ident, recorded=recorded
        )
        model = payload.get("model") if isinstance(payload, dict) else None
        stream = bool(payload.get("stream")) if isinstance(payload, dict) else False
        record = RecordedRequest(
            method=method,
            path=path,
            model=model if isinstance(model, str) else None,
            stream=stream,
            headers=tuple(_redacted(headers)),
            body_size=len(body),
            body=payload if len(body) <= _BODY_KEPT else None,
            connection=connection,
            directives=tuple(recorded),
            status=reply.status,
        )
        with self._lock:
            self._records.append(record)
        reply.headers.append(("request-id", f"req_stub_{ident:06d}"))
        return reply

    def _api(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[bytes, bytes]],
        *,
        raw: bytes,
        parsed: Any,
        ident: int,
        recorded: list[str],
    ) -> Reply:
        is_openai = path.startswith(_OPENAI_PATHS)
        request_id = f"req_stub_{ident:06d}"

        def error(status: int, message: str, extra: Sequence[tuple[str, str]] = (), /) -> Reply:
            if is_openai:
                return openai.error_reply(status, message, extra)
            return anthropic.error_reply(status, message, request_id, extra)

        routes = {
            "/v1/messages": "POST",
            "/v1/messages/count_tokens": "POST",
            "/v1/responses": "POST",
            "/v1/chat/completions": "POST",
            "/v1/models": "GET",
        }
        if path.startswith("/v1/models/") and method == "GET":
            return json_reply(200, anthropic.model_entry(path.removeprefix("/v1/models/")))
        allowed = routes.get(path)
        if allowed is None:
            return error(404, f"{method} {path}: no such route on the provcfg stub")
        if method != allowed:
            return error(405, f"{method} {path}: method not allowed, use {allowed}")
        body: Any = {}
        if method == "POST":
            body = parsed
            if not isinstance(body, dict):
                return error(400, "the request body must be a JSON object")
        model = body.get("model")
        try:
            directives = self._directives(path, model, headers, recorded)
            config = directives.apply(self.config)
        except StubError as exc:
            return error(400, str(exc))
        fault = directives.fault
        reply = self._dispatch(
            path, body, raw=raw, model=model, config=config, fault=fault, ident=ident, error=error
        )
        reply.headers_delay = fault.headers_delay
        reply.hang_before_headers = fault.hang
        return reply

    def _dispatch(
        self,
        path: str,
        body: dict[str, Any],
        *,
        raw: bytes,
        model: Any,
        config: StubConfig,
        fault: Fault,
        ident: int,
        error: _ErrorReply,
    ) -> Reply:
        if fault.status is not None:
            extra: list[tuple[str, str]] = []
            if fault.retry_after is not None:
                extra.append(("retry-after", f"{fault.retry_after:g}"))
                extra.append(("retry-after-ms", f"{fault.retry_after * 1000:.0f}"))
            message = f"stub fault: HTTP {fault.status}"
            if fault.status == 404:
                message = f"model: {model} (stub fault: not found)"
            return error(fault.status, message, extra)
        if path == "/v1/models":
            return anthropic.models()
        if not isinstance(model, str) or not model:
            return error(400, "model: Field required (a non-empty string)")
        stream = body.get("stream") is True
        input_tokens = max(1, len(raw) // 4)
        if path == "/v1/messages/count_tokens":
            return anthropic.count_tokens(input_tokens)
        if path == "/v1/messages" and not isinstance(body.get("messages"), list):
            return error(400, "messages: Field required (a list of messages)")
        options = body.get("stream_options")
        call = Call(
            model=model,
            config=config,
            fault=fault,
            ident=ident,
            input_tokens=input_tokens,
            tool_result=_ends_with_tool_result(body),
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
        )
        if not stream and fault.error_after is not None:
            return error(529, "Overloaded (stub fault: error)")
        if path == "/v1/messages":
            reply = anthropic.messages(call, stream=stream)
        elif path == "/v1/responses":
            reply = openai.responses(call, stream=stream)
        else:
            reply = openai.chat_completions(call, stream=stream)
        if not stream:
            _break_body(reply, fault)
        return reply

    def _directives(
        self,
        path: str,
        model: Any,
        headers: Sequence[tuple[bytes, bytes]],
        recorded: list[str],
    ) -> Directives:
        directives = Directives()
        if isinstance(model, str) and "stub-" in model:
            spec = model.split("stub-", 1)[1]
            directives = parse_directives(spec, where=f"model {model!r}")
            recorded.append(model)
        for name, value in headers:
            if name in _DIRECTIVE_HEADERS:
                text = value.decode("latin-1")
                where = f"header {name.decode()}"
                directives = directives.merged(parse_directives(text, where=where))
                recorded.append(f"{name.decode()}: {text}")
            elif name == _TOOL_INPUT_HEADER:
                text = value.decode("utf-8", "replace")
                parse_tool_input(text, where="header x-stub-tool-input")
                directives = directives.merged(Directives(tool_input=text))
                recorded.append(f"x-stub-tool-input: {text}")
        queued = self.faults.take(path)
        if queued is not None:
            directives = directives.merged(queued[0])
            recorded.append(f"queued: {queued[1]}")
        return directives

    def _control(self, method: str, path: str, raw: bytes) -> Reply:
        if path == "/_stub/requests" and method == "GET":
            return json_reply(200, {"requests": [r.to_json() for r in self.requests]})
        if path == "/_stub/reset" and method == "POST":
            self.reset()
            return json_reply(200, {"ok": True})
        if path == "/_stub/faults" and method == "GET":
            return json_reply(200, {"pending": self.faults.pending()})
        if path == "/_stub/faults" and method == "POST":
            return self._enqueue(raw)
        return json_reply(
            404,
            {"error": {"message": f"{method} {path}: unknown control route; see docs/stub.md"}},
        )

    def _enqueue(self, raw: bytes) -> Reply:
        body = _parse(raw)
        items = body.get("faults", [body]) if isinstance(body, dict) else body
        if not isinstance(items, list):
            items = [items]
        try:
            for item in items:
                if isinstance(item, str):
                    self.faults.put(item)
                elif isinstance(item, dict) and isinstance(item.get("spec"), str):
                    path = item.get("path")
                    times = item.get("times", 1)
                    bad_path = path is not None and not isinstance(path, str)
                    if bad_path or not isinstance(times, int):
                        raise StubError("'path' must be a string and 'times' an integer")
                    self.faults.put(item["spec"], path=path, times=times)
                else:
                    raise StubError(
                        'POST /_stub/faults takes {"faults": ["429-retry-after-1", '
                        '{"spec": "drop-3", "path": "/v1/messages", "times": 2}]}'
                    )
        except StubError as exc:
            return json_reply(400, {"error": {"message": str(exc)}})
        return json_reply(200, {"pending": self.faults.pending()})


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _not_allowed(path: str, method: str, allowed: str) -> Reply:
    message = f"{method} {path}: method not allowed, use {allowed}"
    return json_reply(405, {"error": {"message": message}}, [("allow", allowed)])


def _redacted(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    out = []
    for name, value in headers:
        key = name.decode("latin-1").lower()
        out.append((key, "<redacted>" if key in _SECRET_HEADERS else value.decode("latin-1")))
    return out


def _ends_with_tool_result(body: dict[str, Any]) -> bool:
    """Whether the conversation's last turn hands a tool's result back to the model.

    Then the tool-use scenario answers with text, so that an agent loop ends. The
    three dialects' forms: Messages, a ``tool_result`` block in the last message;
    Chat Completions, a ``role: "tool"`` message; Responses, a
    ``function_call_output`` input item (or another ``*_call_output``). For the
    OpenAI forms, only what follows the last user message counts (clients may add
    assistant or reasoning items after a tool's output).
    """
    messages = body.get("messages")
    items = messages if isinstance(messages, list) else body.get("input")
    if not isinstance(items, list) or not items:
        return False
    last = items[-1]
    content = last.get("content") if isinstance(last, dict) else None
    if isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    ):
        return True
    for item in reversed(items):
        if not isinstance(item, dict):
            continue
        if item.get("role") == "tool" or item.get("type") in _TOOL_OUTPUT_ITEMS:
            return True
        if item.get("role") == "user":
            return False
    return False


def _break_body(reply: Reply, fault: Fault) -> None:
    """Apply the stream faults that have a meaning for a plain JSON body."""
    if fault.bad_json_after is not None:
        reply.body = b"{this is not json"
    if fault.drop_after is not None:
        reply.end = "drop"
    elif fault.stall_after is not None:
        reply.end = "hang"
