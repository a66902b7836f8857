"""The Anthropic Messages API dialect: SSE streams, Message JSON, count_tokens, models, errors.

Streams follow the Messages streaming spec event by event: ``message_start`` (with
usage), per content block ``content_block_start`` / ``content_block_delta`` /
``content_block_stop`` (a ``ping`` after the first start), ``message_delta`` with
``stop_reason`` and ``usage.output_tokens``, then ``message_stop``. The scenarios
cover every delta type: ``text_delta``, ``input_json_delta`` (tool-use) and
``thinking_delta`` + ``signature_delta`` (thinking).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from provcfg.stub.config import ReplyText, split
from provcfg.stub.wire import (
    FRAME_CACHE_BYTES,
    Call,
    Reply,
    Section,
    dumps,
    json_reply,
    shape,
    sse,
    sse_headers,
)

__all__ = ["count_tokens", "error_reply", "error_type", "messages", "models"]

THINKING = "The user wants a reply. I will answer briefly and clearly."
SIGNATURE = "c3R1Yi1zaWduYXR1cmUtcHJvdmNmZw=="  # opaque to clients, like the real one
MODELS = ("claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-1-20250805")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """Return the Anthropic error ``type`` for an HTTP ``status``."""
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str, request_id: str) -> dict[str, Any]:
    """Return the Anthropic error object for ``status``."""
    return {
        "type": "error",
        "error": {"type": error_type(status), "message": message},
        "request_id": request_id,
    }


def error_reply(
    status: int, message: str, request_id: str, headers: Iterable[tuple[str, str]] = ()
) -> Reply:
    """Return an error :class:`Reply` in the Anthropic shape."""
    return json_reply(status, error_body(status, message, request_id), headers)


def count_tokens(input_tokens: int) -> Reply:
    """Return the ``/v1/messages/count_tokens`` reply."""
    return json_reply(200, {"input_tokens": input_tokens})


def model_entry(model_id: str) -> dict[str, Any]:
    """Return one model object, readable by both the Anthropic and the OpenAI SDKs."""
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": "2025-09-29T00:00:00Z",
        "object": "model",
        "created": 1759104000,
        "owned_by": "provcfg-stub",
    }


def models(ids: Iterable[str] = MODELS) -> Reply:
    """Return a model list readable by both the Anthropic and the OpenAI SDKs."""
    data = [model_entry(i) for i in ids]
    return json_reply(
        200,
        {
            "object": "list",
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        },
    )


def messages(call: Call, *, stream: bool) -> Reply:
    """Return the ``POST /v1/messages`` reply for ``call`` (SSE when ``stream``)."""
    return _stream(call) if stream else _message(call)


def _plan(call: Call) -> tuple[bool, bool, ReplyText, dict[str, Any]]:
    scenario = call.config.scenario
    thinking = scenario == "thinking"
    tool = scenario == "tool-use" and not call.tool_result
    tool_input = call.config.tool_call_input() if tool else {}
    return thinking, tool, call.config.reply(), tool_input


def _count(text: str, size: int) -> int:
    return -(-len(text) // size)


def _usage(call: Call, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": call.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def _message(call: Call) -> Reply:
    thinking, tool, text, tool_input = _plan(call)
    tool_json = dumps(tool_input)
    size = call.config.chunk_size
    content: list[dict[str, Any]] = []
    output = 0
    if thinking:
        content.append({"type": "thinking", "thinking": THINKING, "signature": SIGNATURE})
        output += _count(THINKING, size)
    content.append({"type": "text", "text": text.whole()})
    output += text.count(size)
    if tool:
        content.append(_tool_block(call, tool_input))
        output += _count(tool_json, size)
    body = {
        "id": f"msg_stub_{call.ident:06d}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content,
        "stop_reason": "tool_use" if tool else "end_turn",
        "stop_sequence": None,
        "usage": _usage(call, output),
    }
    return json_reply(200, body)


def _tool_block(call: Call, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": f"toolu_stub_{call.ident:06d}",
        "name": call.config.tool_name,
        "input": tool_input,
    }


def _deltas(index: int, kind: str, key: str, pieces: Iterable[str]) -> Iterator[bytes]:
    head = (
        'event: content_block_delta\ndata: {"type":"content_block_delta",'
        f'"index":{index},"delta":{{"type":"{kind}","{key}":'
    ).encode()
    # Long replies repeat a short text, so the distinct frames are few: render each once.
    cache: dict[str, bytes] = {}
    room = FRAME_CACHE_BYTES
    for piece in pieces:
        frame = cache.get(piece)
        if frame is None:
            frame = head + dumps(piece).encode() + b"}}\n\n"
            if room > 0:
                cache[piece] = frame
                room -= len(frame)
        yield frame


def _start(index: int, block: dict[str, Any]) -> bytes:
    return sse(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


def _stop(index: int) -> bytes:
    return sse("content_block_stop", {"type": "content_block_stop", "index": index})


# Frames that never vary, rendered once.
_PING = sse("ping", {"type": "ping"})
_STOPS = tuple(_stop(i) for i in range(3))
_TEXT_STARTS = tuple(_start(i, {"type": "text", "text": ""}) for i in range(3))
_MESSAGE_STOP = sse("message_stop", {"type": "message_stop"})


def _stream(call: Call) -> Reply:
    thinking, tool, text, tool_input = _plan(call)
    tool_json = dumps(tool_input)
    size = call.config.chunk_size
    request_id = f"req_stub_{call.ident:06d}"
    ping = _PING
    start = {
        "type": "message_start",
        "message": {
            "id": f"msg_stub_{call.ident:06d}",
            "type": "message",
            "role": "assistant",
            "model": call.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(call, 1),
        },
    }
    sections: list[Section] = [(False, [sse("message_start", start)])]
    index = 0
    output = 0
    if thinking:
        block = {"type": "thinking", "thinking": "", "signature": ""}
        sections.append((False, [_start(index, block), ping]))
        sections.append((True, _deltas(index, "thinking_delta", "thinking", split(THINKING, size))))
        signature = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "signature_delta", "signature": SIGNATURE},
        }
        sections.append((False, [sse("content_block_delta", signature), _STOPS[index]]))
        output += _count(THINKING, size)
        index += 1
    text_start = [_TEXT_STARTS[index]]
    sections.append((False, text_start if thinking else [*text_start, ping]))
    sections.append((True, _deltas(index, "text_delta", "text", text.pieces(size))))
    sections.append((False, [_STOPS[index]]))
    output += text.count(size)
    if tool:
        index += 1
        sections.append((False, [_start(index, _tool_block(call, {}))]))
        pieces = split(tool_json, size)
        sections.append((True, _deltas(index, "input_json_delta", "partial_json", pieces)))
        sections.append((False, [_STOPS[index]]))
        output += _count(tool_json, size)
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use" if tool else "end_turn", "stop_sequence": None},
        "usage": _usage(call, output),
    }
    sections.append((False, [sse("message_delta", delta)]))
    terminal = [_MESSAGE_STOP]
    overloaded = error_body(529, "Overloaded (stub fault: error)", request_id)
    frames, end = shape(
        sections,
        terminal,
        call.fault,
        error_frame=lambda: sse("error", overloaded),
        bad_frame=b"event: content_block_delta\ndata: {this is not json\n\n",
    )
    return Reply(headers=sse_headers(), frames=frames, end=end, delay=call.config.delay)
