"""Anthropic Messages stream events -> chunks, checked at the boundary, for both transports.

A :class:`MessageState` accumulates what one streamed message carries besides its
text (ids, usage, tool inputs, the stop). :func:`json_event` reads an event decoded
from JSON (the ``fast`` transport) and :func:`sdk_event` one of the SDK's event
objects (the ``sdk`` transport); both return the chunk the event produces, or None.

Every field read from the server is type-checked here: a text that is not a string,
an index that is not an integer, a usage count that is not a number, raise
:class:`~provcfg._providers._wire.MalformedEvent` (a ``ValueError``; the CLI kinds'
parsers use the same checks), which the transports turn into a
``ProviderError`` saying the server sent a malformed event. Nothing else of the
server's choosing can reach a caller as a wrong type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from provcfg._providers._wire import MalformedEvent
from provcfg._providers.base import Chunk, Timings, Usage

__all__ = [
    "JSON_EVENT_KINDS",
    "TEXT_DELTA_PREFIX",
    "MalformedEvent",
    "MessageState",
    "json_event",
    "sdk_event",
    "text_of",
]

USAGE_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
TEXT_DELTA_PREFIX: Final = '"delta":{"type":"text_delta","text":'
"""How the Messages API writes a text delta; the fast transport parses just the string after it."""
_TOOL_BLOCKS: Final = frozenset({"tool_use", "server_tool_use"})


def _str(value: object, what: str) -> str:
    if type(value) is not str:
        raise MalformedEvent(f"{what} is {type(value).__name__}, not a string")
    return value


def _int(value: object, what: str) -> int:
    if type(value) is not int:
        raise MalformedEvent(f"{what} is {type(value).__name__}, not an integer")
    return value


def _dict(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedEvent(f"{what} is {type(value).__name__}, not an object")
    return value


def text_of(value: object) -> str:
    """The text of a text delta, checked."""
    return _str(value, "a text delta's text")


class MessageState:
    """What one streamed message accumulates besides its text: ids, usage, tool inputs."""

    __slots__ = ("id", "model", "stop_reason", "stopped", "tools", "usage")

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.stopped = False
        self.usage: dict[str, int] = {}
        self.tools: dict[int, tuple[str, str, list[str], Any]] = {}

    def add_usage(self, values: Mapping[str, Any]) -> None:
        """Take the usage counts of ``message_start`` or ``message_delta`` (cumulative)."""
        for field in USAGE_FIELDS:
            value = values.get(field)
            if value is None:
                continue
            if type(value) is not int or value < 0:
                raise MalformedEvent(f"usage.{field} is not a non-negative integer")
            self.usage[field] = value

    def start(self, message: Mapping[str, Any]) -> None:
        """``message_start``: the message id, model and first usage."""
        self.id = _optional_str(message.get("id"), "message.id")
        self.model = _optional_str(message.get("model"), "message.model")
        self.add_usage(_dict(message.get("usage") or {}, "message.usage"))

    def delta(self, delta: Mapping[str, Any], usage: Mapping[str, Any]) -> None:
        """``message_delta``: the stop reason and the final usage."""
        if "stop_reason" in delta:
            self.stop_reason = _optional_str(delta.get("stop_reason"), "delta.stop_reason")
        self.add_usage(usage)

    def block_start(
        self, index: int, block_type: str, text: str, tool: tuple[str, str, Any] | None
    ) -> Chunk | None:
        """A content block begins; text or thinking it already holds is a chunk."""
        if block_type in _TOOL_BLOCKS and tool is not None:
            self.tools[index] = (tool[0], tool[1], [], tool[2])
        elif text:
            return Chunk("thinking" if block_type == "thinking" else "text", text)
        return None

    def add_json(self, index: int, partial: str) -> None:
        """A piece of a tool call's JSON input."""
        tool = self.tools.get(index)
        if tool is not None:
            tool[2].append(partial)

    def block_stop(self, index: int) -> Chunk | None:
        """A content block ends: a tool call is complete and becomes a ``tool_use`` chunk."""
        tool = self.tools.pop(index, None)
        if tool is None:
            return None
        tool_id, name, parts, initial = tool
        raw = "".join(parts)
        try:
            value = json.loads(raw) if raw.strip() else (initial if initial is not None else {})
        except ValueError:
            raise MalformedEvent(f"the input of tool call {name!r} is not valid JSON") from None
        return Chunk("tool_use", data={"id": tool_id, "name": name, "input": value})

    def result(self, timings: Timings) -> Chunk:
        """The closing ``result`` chunk."""
        return Chunk(
            "result",
            data={
                "usage": Usage(**self.usage),
                "stop_reason": self.stop_reason,
                "model": self.model,
                "session_id": self.id,
                "cost_usd": None,
                "timings": timings,
            },
        )


def _optional_str(value: object, what: str) -> str | None:
    return None if value is None else _str(value, what)


JSON_EVENT_KINDS: Final = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_stop",
        "content_block_delta",
    }
)
"""The Messages stream's event types :func:`json_event` reads (it ignores any other)."""


def json_event(state: MessageState, kind: str, event: Mapping[str, Any]) -> Chunk | None:
    """The chunk one decoded event produces (fast transport), or None.

    Raises:
        MalformedEvent: a field has the wrong type or is missing.
        KeyError: a required field is missing.
    """
    if kind == "content_block_delta":
        return _json_delta(state, event)
    if kind == "content_block_start":
        return _json_block_start(state, event)
    if kind == "content_block_stop":
        return state.block_stop(_int(event["index"], "index"))
    if kind == "message_start":
        state.start(_dict(event["message"], "message"))
    elif kind == "message_delta":
        delta = _dict(event.get("delta") or {}, "delta")
        state.delta(delta, _dict(event.get("usage") or {}, "usage"))
    elif kind == "message_stop":
        state.stopped = True
    return None


def _json_delta(state: MessageState, event: Mapping[str, Any]) -> Chunk | None:
    delta = _dict(event["delta"], "delta")
    dtype = delta.get("type")
    if dtype == "text_delta":
        return Chunk("text", text_of(delta.get("text")))
    if dtype == "thinking_delta":
        return Chunk("thinking", _str(delta.get("thinking"), "a thinking delta"))
    if dtype == "input_json_delta":
        partial = _str(delta.get("partial_json"), "partial_json")
        state.add_json(_int(event["index"], "index"), partial)
    # signature_delta and citations_delta carry nothing a chunk reports.
    return None


def _json_block_start(state: MessageState, event: Mapping[str, Any]) -> Chunk | None:
    block = _dict(event["content_block"], "content_block")
    btype = block.get("type", "")
    index = _int(event["index"], "index")
    if btype in ("text", "thinking"):
        return state.block_start(index, btype, _str(block.get(btype) or "", btype), None)
    if btype in _TOOL_BLOCKS:
        tool = (
            _str(block.get("id", ""), "tool id"),
            _str(block.get("name", ""), "tool name"),
            block.get("input"),
        )
        return state.block_start(index, btype, "", tool)
    return None


def sdk_event(state: MessageState, event: Any) -> Chunk | None:
    """The same as :func:`json_event` for the SDK's event objects (sdk transport).

    The SDK builds its event objects without validating them, so the same checks apply.
    On provcfg's own SDK client an event comes as what that client's step made of the
    SDK's decoded JSON instead (``_read_json_events`` in
    :mod:`provcfg._providers.anthropic_api`): a text delta's chunk, or the event's dict,
    read by :func:`json_event`.
    """
    cls = event.__class__
    if cls is Chunk:
        chunk: Chunk = event
        return chunk
    if cls is dict:
        return json_event(state, event["type"], event)
    kind = event.type
    if kind == "content_block_delta":
        delta = event.delta
        dtype = delta.type
        if dtype == "text_delta":
            return Chunk("text", text_of(delta.text))
        if dtype == "thinking_delta":
            return Chunk("thinking", _str(delta.thinking, "a thinking delta"))
        if dtype == "input_json_delta":
            state.add_json(_int(event.index, "index"), _str(delta.partial_json, "partial_json"))
        return None
    if kind == "content_block_start":
        return _sdk_block_start(state, event)
    if kind == "content_block_stop":
        return state.block_stop(_int(event.index, "index"))
    if kind == "message_start":
        message = event.message
        state.id = _optional_str(message.id, "message.id")
        state.model = _optional_str(message.model, "message.model")
        state.add_usage(_sdk_usage(message.usage))
    elif kind == "message_delta":
        stop = getattr(event.delta, "stop_reason", state.stop_reason)
        state.stop_reason = _optional_str(stop, "delta.stop_reason")
        state.add_usage(_sdk_usage(event.usage))
    elif kind == "message_stop":
        state.stopped = True
    return None


def _sdk_block_start(state: MessageState, event: Any) -> Chunk | None:
    # Only the attributes the block's type declares: a missing attribute on a pydantic
    # model raises and catches AttributeError inside getattr (~3 us each).
    block = event.content_block
    btype = block.type
    index = _int(event.index, "index")
    if btype == "text":
        return state.block_start(index, btype, _str(block.text, "text"), None)
    if btype == "thinking":
        return state.block_start(index, btype, _str(block.thinking, "thinking"), None)
    if btype in _TOOL_BLOCKS:
        tool = (_str(block.id, "tool id"), _str(block.name, "tool name"), block.input)
        return state.block_start(index, btype, "", tool)
    return None


def _sdk_usage(usage: Any) -> dict[str, Any]:
    return {field: getattr(usage, field, None) for field in USAGE_FIELDS}
