"""The OpenAI dialects: the Responses API (codex) and Chat Completions (opencode), plus errors.

Responses streams send, in order: ``response.created``, ``response.in_progress``,
``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta`` per piece, ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done`` and
``response.completed`` with usage; every event carries a ``sequence_number``.
Chat Completions streams send ``chat.completion.chunk`` objects as bare ``data:``
lines, a finishing chunk, a usage chunk when ``stream_options.include_usage``, then
``data: [DONE]``.

The ``tool-use`` scenario adds a function call after the text (unless the request
already hands a tool's result back): Responses, a ``function_call`` output item with
``response.function_call_arguments.delta`` events; Chat Completions, ``tool_calls``
deltas and ``finish_reason: "tool_calls"``. The ``thinking`` scenario answers text.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from provcfg.stub.config import INLINE_LIMIT, split
from provcfg.stub.wire import (
    FRAME_CACHE_BYTES,
    TEXT_HOLE,
    Call,
    Reply,
    Section,
    dumps,
    json_reply,
    shape,
    sse,
    sse_headers,
    with_text,
)

__all__ = ["chat_completions", "error_reply", "responses"]

_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    503: ("server_error", "server_is_overloaded"),
    529: ("server_error", "server_is_overloaded"),
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """Return the OpenAI error object for ``status``."""
    fallback = ("server_error" if status >= 500 else "invalid_request_error", None)
    kind, code = _ERRORS.get(status, fallback)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def error_reply(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """Return an error :class:`Reply` in the OpenAI shape."""
    return json_reply(status, error_body(status, message), headers)


def _pieces_frames(template: bytes, pieces: Iterable[str], first_seq: int) -> Iterator[bytes]:
    """Render ``template % (json_piece, sequence_number)`` per piece, escaping each text once."""
    cache: dict[str, bytes] = {}
    room = FRAME_CACHE_BYTES
    seq = first_seq
    for piece in pieces:
        escaped = cache.get(piece)
        if escaped is None:
            escaped = dumps(piece).encode()
            if room > 0:
                cache[piece] = escaped
                room -= len(escaped)
        yield template % (escaped, seq)
        seq += 1


def _usage(call: Call, output: int) -> dict[str, Any]:
    return {
        "input_tokens": call.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": call.input_tokens + output,
    }


def _response(
    call: Call, status: str, output: list[Any], usage: Any, created: int
) -> dict[str, Any]:
    return {
        "id": f"resp_stub_{call.ident:06d}",
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": call.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _tool_call(call: Call) -> tuple[str, str] | None:
    """The (tool name, arguments JSON) the reply calls, or None when it answers text only."""
    if call.config.scenario != "tool-use" or call.tool_result:
        return None
    return call.config.tool_name, dumps(call.config.tool_call_input())


def responses(call: Call, *, stream: bool) -> Reply:
    """Return the ``POST /v1/responses`` reply for ``call`` (SSE when ``stream``)."""
    created = int(time.time())
    reply = call.config.reply()
    size = call.config.chunk_size
    count = reply.count(size)
    # A long text is not built: the events that carry it whole are rendered around a
    # hole and the text is poured in as they are sent (wire.with_text).
    lazy = stream and reply.length > INLINE_LIMIT
    text = TEXT_HOLE if lazy else reply.whole()
    item_id = f"msg_stub_{call.ident:06d}"
    part = {"type": "output_text", "text": text, "annotations": []}
    item = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    output: list[Any] = [item]
    tool = _tool_call(call)
    function: dict[str, Any] = {}
    if tool is not None:
        function = {
            "id": f"fc_stub_{call.ident:06d}",
            "type": "function_call",
            "status": "completed",
            "arguments": tool[1],
            "call_id": f"call_stub_{call.ident:06d}",
            "name": tool[0],
        }
        output.append(function)
    tool_count = -(-len(tool[1]) // size) if tool is not None else 0
    done = _response(call, "completed", output, _usage(call, count + tool_count), created)
    if not stream:
        return json_reply(200, done)
    seq = iter(range(1 << 62))

    def event(kind: str, **fields: Any) -> bytes:
        return sse(kind, {"type": kind, **fields, "sequence_number": next(seq)})

    empty = _response(call, "in_progress", [], None, created)
    in_progress = {**item, "status": "in_progress", "content": []}
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    head = [
        event("response.created", response=empty),
        event("response.in_progress", response=empty),
        event("response.output_item.added", output_index=0, item=in_progress),
        event("response.content_part.added", **where, part={**part, "text": ""}),
    ]
    first = next(seq)
    template = (
        "event: response.output_text.delta\ndata: "
        f'{{"type":"response.output_text.delta","item_id":"{item_id}","output_index":0,'
        '"content_index":0,"delta":%s,"logprobs":[],"sequence_number":%d}\n\n'
    ).encode()
    deltas = _pieces_frames(template, reply.pieces(size), first)
    seq = iter(range(first + count, 1 << 62))

    def full(frame: bytes) -> Iterator[bytes]:
        if lazy:
            yield from with_text(frame, reply)
        else:
            yield frame

    def tail() -> Iterator[bytes]:
        # Rendered only after the deltas, so the sequence numbers follow on.
        yield from full(event("response.output_text.done", **where, text=text, logprobs=[]))
        yield from full(event("response.content_part.done", **where, part=part))
        yield from full(event("response.output_item.done", output_index=0, item=item))

    at = {"item_id": function.get("id"), "output_index": 1}

    def tool_head() -> Iterator[bytes]:
        started = {**function, "status": "in_progress", "arguments": ""}
        yield event("response.output_item.added", output_index=1, item=started)

    def tool_deltas(arguments: str) -> Iterator[bytes]:
        for piece in split(arguments, size):
            yield event("response.function_call_arguments.delta", **at, delta=piece)

    def tool_tail(arguments: str) -> Iterator[bytes]:
        yield event("response.function_call_arguments.done", **at, arguments=arguments)
        yield event("response.output_item.done", output_index=1, item=function)

    def terminal() -> Iterator[bytes]:
        yield from full(event("response.completed", response=done))

    def failed() -> bytes:
        error = {"code": "server_error", "message": "The server is overloaded (stub fault: error)"}
        failed_response = {**_response(call, "failed", [], None, created), "error": error}
        return event("response.failed", response=failed_response)

    sections: list[Section] = [(False, head), (True, deltas), (False, tail())]
    if tool is not None:
        sections += [
            (False, tool_head()),
            (True, tool_deltas(tool[1])),
            (False, tool_tail(tool[1])),
        ]
    frames, end = shape(
        sections,
        terminal(),
        call.fault,
        error_frame=failed,
        bad_frame=b"event: response.output_text.delta\ndata: {this is not json\n\n",
    )
    return Reply(headers=sse_headers(), frames=frames, end=end, delay=call.config.delay)


def chat_completions(call: Call, *, stream: bool) -> Reply:
    """Return the ``POST /v1/chat/completions`` reply for ``call`` (SSE when ``stream``)."""
    created = int(time.time())
    reply = call.config.reply()
    size = call.config.chunk_size
    count = reply.count(size)
    ident = f"chatcmpl-stub{call.ident:06d}"
    tool = _tool_call(call)
    call_id = f"call_stub_{call.ident:06d}"
    reason = "stop" if tool is None else "tool_calls"
    if tool is not None:
        count += -(-len(tool[1]) // size)
    usage = {
        "prompt_tokens": call.input_tokens,
        "completion_tokens": count,
        "total_tokens": call.input_tokens + count,
    }
    if not stream:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.whole(),
            "refusal": None,
        }
        if tool is not None:
            function = {"name": tool[0], "arguments": tool[1]}
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": function}]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
        body = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": call.model,
            "choices": [choice],
            "usage": usage,
        }
        return json_reply(200, body)
    base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": call.model}

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse(None, {**base, "system_fingerprint": None, "choices": [choice]})

    prefix = dumps({**base, "system_fingerprint": None})[:-1]
    template = (
        f'data: {prefix},"choices":[{{"index":0,"delta":{{"content":'
        '%s},"logprobs":null,"finish_reason":null}]}\n\n'
    ).encode()
    # Chat chunks carry no sequence number: render each distinct piece once.
    cache: dict[str, bytes] = {}

    def deltas() -> Iterator[bytes]:
        room = FRAME_CACHE_BYTES
        for piece in reply.pieces(size):
            frame = cache.get(piece)
            if frame is None:
                frame = template % dumps(piece).encode()
                if room > 0:
                    cache[piece] = frame
                    room -= len(frame)
            yield frame

    def tool_deltas(arguments: str) -> Iterator[bytes]:
        for piece in split(arguments, size):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}, None)

    finish = [chunk({}, reason)]
    if call.include_usage:
        last = {**base, "system_fingerprint": None, "choices": [], "usage": usage}
        finish.append(sse(None, last))
    error = error_body(500, "The server is overloaded (stub fault: error)")
    sections: list[Section] = [
        (False, [chunk({"role": "assistant", "content": ""}, None)]),
        (True, deltas()),
    ]
    if tool is not None:
        opening = {
            "index": 0,
            "id": call_id,
            "type": "function",
            "function": {"name": tool[0], "arguments": ""},
        }
        sections += [
            (False, [chunk({"tool_calls": [opening]}, None)]),
            (True, tool_deltas(tool[1])),
        ]
    sections.append((False, finish))
    frames, end = shape(
        sections,
        [b"data: [DONE]\n\n"],
        call.fault,
        error_frame=lambda: sse(None, error),
        bad_frame=b"data: {this is not json\n\n",
    )
    return Reply(headers=sse_headers(), frames=frames, end=end, delay=call.config.delay)
