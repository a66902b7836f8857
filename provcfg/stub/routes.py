"""Request -> :class:`Reply`: routing, directive resolution, request recording.

API routes (``/v1/...``; the ``/v1`` prefix is optional for clients whose base URL
already holds it) answer in their own dialect, errors included. Control routes
under ``/_stub/`` (:mod:`provcfg.stub.control`) let tests (and other processes) queue
faults, set a default fault, read what clients sent, and reset.

Nothing a client sends can make :meth:`Router.route` raise: bad input is a 4xx in the
API's error shape, and an unexpected failure is a 500 in that shape plus one log
line, so the connection always gets an answer.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from provcfg._logs import get_logger
from provcfg.stub import anthropic, openai
from provcfg.stub.config import MAX_UNSTREAMED, StubConfig, StubError, parse_tool_input, safe_text
from provcfg.stub.control import Control
from provcfg.stub.echo import summarize
from provcfg.stub.faults import DefaultFault, Directives, Fault, FaultQueue, parse_directives
from provcfg.stub.records import BODY_KEPT, RecordedRequest, Records
from provcfg.stub.wire import Call, Reply, json_reply

__all__ = ["RecordedRequest", "Router"]

log = get_logger(__name__)

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
_NOTHING = Directives()
_ROUTES = {
    "/v1/messages": "POST",
    "/v1/messages/count_tokens": "POST",
    "/v1/responses": "POST",
    "/v1/chat/completions": "POST",
    "/v1/models": "GET",
}


class _ErrorReply(Protocol):
    def __call__(
        self, status: int, message: str, extra: Sequence[tuple[str, str]] = ..., /
    ) -> Reply: ...


class Router:
    """Turns one parsed HTTP request into a :class:`Reply`; owns the queue and the records."""

    def __init__(self, config: StubConfig, *, max_records: int = 10_000) -> None:
        """Serve replies shaped by ``config``, keeping the last ``max_records`` requests."""
        self.config = config
        self.faults = FaultQueue()
        self.default_fault = DefaultFault()
        self._records = Records(max_records)
        self.control = Control(self.faults, self.default_fault, self._records)
        self._ids = itertools.count(1)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Return the recorded API requests, oldest first (control routes are not recorded)."""
        return self._records.snapshot()

    def reset(self) -> None:
        """Forget the recorded requests, drop queued faults and clear the default fault."""
        self.control.reset()

    def refusal(self, status: int, message: str, target: str | None = None) -> Reply:
        """Return an error reply for a request refused before routing (too large, too slow)."""
        path = _path(target or "/")
        if not path.startswith("/v1/"):
            path = "/v1" + path
        if path.startswith(_OPENAI_PATHS):
            return openai.error_reply(status, message)
        return anthropic.error_reply(status, message, "req_stub_refused")

    def route(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        connection: int,
    ) -> Reply:
        """Return the reply for one request (never raises: bad input becomes a 4xx)."""
        try:
            return self._route(method, target, headers, body, connection)
        except Exception as exc:  # a stub bug costs this request a 500, never the connection
            log.warning("stub.handler_error", error=type(exc).__name__, path=_path(target)[:200])
            return self.refusal(
                500, f"the provcfg stub failed on this request ({type(exc).__name__})", target
            )

    def _route(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        connection: int,
    ) -> Reply:
        path = _path(target)
        if path.startswith("/_stub/"):
            return self.control.handle(method, path, headers, body)
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
        kept = body if len(body) <= BODY_KEPT else b""
        redacted, head_size = _redacted(headers)
        record = RecordedRequest(
            method=method,
            path=path,
            model=model if isinstance(model, str) else None,
            stream=stream,
            headers=redacted,
            body_size=len(body),
            connection=connection,
            directives=tuple(recorded),
            status=reply.status,
            raw_body=kept,
        )
        self._records.add(record, len(kept) + head_size)
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
            message = safe_text(message)
            if is_openai:
                return openai.error_reply(status, message, extra)
            return anthropic.error_reply(status, message, request_id, extra)

        if path.startswith("/v1/models/") and method == "GET":
            return json_reply(200, anthropic.model_entry(path.removeprefix("/v1/models/")))
        allowed = _ROUTES.get(path)
        if allowed is None:
            return error(404, f"{method} {path[:200]}: no such route on the provcfg stub")
        if method != allowed:
            return error(405, f"{method} {path}: method not allowed, use {allowed}")
        body: Any = {}
        if method == "POST":
            body = parsed
            if not isinstance(body, dict):
                return error(
                    400,
                    "the request body must be a JSON object (UTF-8, nested at most about "
                    "1,000 levels deep); the content type is not checked",
                )
        model = body.get("model")
        if isinstance(model, str):
            model = safe_text(model)
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
            message = f"stub fault: HTTP {fault.status}"
            if fault.status == 404:
                message = f"model: {_short(str(model))} (stub fault: not found)"
            return error(fault.status, message, _retry_headers(fault))
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
        if config.echo_conversation:
            summary = summarize(body)
            config = replace(config, text=summary, length=None, deltas=None)
        if not stream and config.reply().length > MAX_UNSTREAMED:
            return error(
                400,
                f"a reply that is not streamed is built in memory: at most {MAX_UNSTREAMED:,} "
                f"characters, this one has {config.reply().length:,}; send stream: true",
            )
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
        directives = _NOTHING
        default = self.default_fault.take(path)
        if default is not None:
            directives = default[0]
            recorded.append(f"default: {default[1]}")
        if isinstance(model, str) and "stub-" in model:
            spec = model.split("stub-", 1)[1]
            parsed = parse_directives(spec, where=f"model {_short(model)!r}")
            # Merging costs microseconds per request: only when there is a default.
            directives = parsed if default is None else directives.merged(parsed)
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


def _path(target: str) -> str:
    return target.split("?", 1)[0].rstrip("/") or "/"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _retry_headers(fault: Fault) -> list[tuple[str, str]]:
    """The retry-after / retry-after-ms headers a status fault asks for."""
    extra: list[tuple[str, str]] = []
    if fault.retry_after is not None:
        form, seconds = fault.retry_after
        if form == "date":
            # An HTTP date has whole seconds: round up, so a client never retries early.
            value = email.utils.formatdate(math.ceil(time.time() + seconds), usegmt=True)
        else:
            value = f"{seconds:.3f}".rstrip("0").rstrip(".")
        extra.append(("retry-after", value))
    if fault.retry_after_ms is not None:
        extra.append(("retry-after-ms", str(fault.retry_after_ms)))
    return extra


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deeply
        return None


def _not_allowed(path: str, method: str, allowed: str) -> Reply:
    message = f"{method} {path}: method not allowed, use {allowed}"
    return json_reply(405, {"error": {"message": message}}, [("allow", allowed)])


def _redacted(
    headers: Sequence[tuple[bytes, bytes]],
) -> tuple[tuple[tuple[str, str], ...], int]:
    """The headers as text, credentials redacted, and their size (the record's weight)."""
    out = []
    size = 0
    for name, value in headers:
        key = name.decode("latin-1").lower()
        text = "<redacted>" if key in _SECRET_HEADERS else value.decode("latin-1")
        out.append((key, text))
        size += len(key) + len(text)
    return tuple(out), size


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
        kind = item.get("type")
        if item.get("role") == "tool" or (isinstance(kind, str) and kind in _TOOL_OUTPUT_ITEMS):
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
