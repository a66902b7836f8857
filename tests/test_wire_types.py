"""Wrong types from the wire: random JSON in every field every parser reads.

Hypothesis takes a real event of each type each parser reads (the shapes of the pinned
CLIs' transcripts and of the Messages API), puts a random JSON value (a number, a
string, null, a list, an object, NaN, ...) at one or more of its fields, nested ones
included, and feeds it through the real parser, then a few through real processes (a
fake CLI printing the events) and a real loopback server (both API transports). The
only outcomes allowed are chunks whose fields have the documented types, or a
ProviderError: never another exception, never a number where a text belongs.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provcfg._contract import Chunk, Timings, Usage
from provcfg._errors import ProviderError
from provcfg._manifest import ClaudeCodeSpec, CodexSpec, OpenCodeSpec
from provcfg._metrics import Metrics
from provcfg._providers._cli import EventParser
from provcfg._providers.claude_code import ClaudeCodeParser, ClaudeCodeProvider
from provcfg._providers.codex import CodexParser, CodexProvider
from provcfg._providers.opencode import OpenCodeParser, OpenCodeProvider
from tests.support_fake_cli import REPLAY
from tests.support_hostile_servers import (
    HostileServer,
    Seen,
    head,
    outcome,
    pooled,
)

# ----------------------------------------------------------------------------- values

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities too: Python's json.loads accepts them
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)

# ----------------------------------------------------------------------------- real events

CLAUDE: dict[str, dict[str, Any]] = {
    "init": {"type": "system", "subtype": "init", "session_id": "s-1", "model": "claude-x",
             "tools": ["Read", "Bash"], "permissionMode": "default", "cwd": "/w"},
    "retry": {"type": "system", "subtype": "api_retry", "attempt": 1, "max_retries": 3,
              "retry_delay_ms": 500, "error_status": 529, "error": "overloaded"},
    "start": {"type": "stream_event", "event": {"type": "message_start",
                                                "message": {"id": "m-1"}}},
    "text_delta": {"type": "stream_event", "parent_tool_use_id": None,
                   "event": {"type": "content_block_delta",
                             "delta": {"type": "text_delta", "text": "Hel"}}},
    "thinking_delta": {"type": "stream_event",
                       "event": {"type": "content_block_delta",
                                 "delta": {"type": "thinking_delta", "thinking": "hmm"}}},
    "assistant": {"type": "assistant", "parent_tool_use_id": None,
                  "message": {"id": "m-2", "content": [
                      {"type": "text", "text": "Hello"},
                      {"type": "thinking", "thinking": "so"},
                      {"type": "tool_use", "id": "t-1", "name": "Read",
                       "input": {"file_path": "a.txt"}}]}},
    "user": {"type": "user", "parent_tool_use_id": None,
             "message": {"role": "user", "content": [
                 {"type": "tool_result", "tool_use_id": "t-1", "content": "text",
                  "is_error": False},
                 {"type": "tool_result", "tool_use_id": "t-2",
                  "content": [{"type": "text", "text": "x"}]}]}},
    "result": {"type": "result", "subtype": "success", "is_error": False, "num_turns": 2,
               "result": "Hello", "stop_reason": "end_turn", "session_id": "s-1",
               "total_cost_usd": 0.19, "api_error_status": None,
               "usage": {"input_tokens": 3, "output_tokens": 5, "cache_read_input_tokens": 0,
                         "cache_creation_input_tokens": 0}},
    "error_result": {"type": "result", "subtype": "success", "is_error": True,
                     "api_error_status": 429, "result": "API Error: 429",
                     "errors": ["a", "b"], "session_id": "s-1"},
}  # fmt: skip

OPENCODE: dict[str, dict[str, Any]] = {
    "step_start": {"type": "step_start", "sessionID": "ses-1", "part": {"type": "step-start"}},
    "text": {"type": "text", "sessionID": "ses-1", "part": {"type": "text", "text": "Hello"}},
    "reasoning": {"type": "reasoning", "part": {"type": "reasoning", "text": "hmm"}},
    "tool_use": {"type": "tool_use", "part": {"type": "tool", "tool": "read", "callID": "c-1",
                                              "id": "p-1",
                                              "state": {"status": "completed",
                                                        "input": {"path": "a"},
                                                        "output": "text", "error": None}}},
    "step_finish": {"type": "step_finish", "sessionID": "ses-1",
                    "part": {"reason": "stop", "cost": 0.01,
                             "tokens": {"input": 3, "output": 4, "reasoning": 1,
                                        "cache": {"read": 0, "write": 2}}}},
    "error": {"type": "error", "error": {"name": "APIError",
                                         "data": {"message": "HTTP 401", "statusCode": 401}}},
}  # fmt: skip

CODEX: dict[str, dict[str, Any]] = {
    "thread": {"type": "thread.started", "thread_id": "th-1"},
    "turn": {"type": "turn.started"},
    "command_started": {"type": "item.started",
                        "item": {"id": "i-1", "type": "command_execution", "command": "ls",
                                 "aggregated_output": "", "exit_code": None,
                                 "status": "in_progress"}},
    "command_done": {"type": "item.completed",
                     "item": {"id": "i-1", "type": "command_execution", "command": "ls",
                              "aggregated_output": "a\n", "exit_code": 0,
                              "status": "completed"}},
    "mcp_done": {"type": "item.completed",
                 "item": {"id": "i-2", "type": "mcp_tool_call", "server": "s", "tool": "t",
                          "arguments": {"q": 1}, "result": {"content": []}, "error": None,
                          "status": "completed"}},
    "file_change": {"type": "item.completed",
                    "item": {"id": "i-3", "type": "file_change", "status": "completed",
                             "changes": [{"path": "a", "kind": "add"}]}},
    "web_search": {"type": "item.completed",
                   "item": {"id": "i-4", "type": "web_search", "query": "x"}},
    "message": {"type": "item.completed",
                "item": {"id": "i-5", "type": "agent_message", "text": "Hello"}},
    "reasoning": {"type": "item.completed",
                  "item": {"id": "i-6", "type": "reasoning", "text": "hmm"}},
    "item_error": {"type": "item.completed",
                   "item": {"id": "i-7", "type": "error", "message": "careful"}},
    "stream_error": {"type": "error", "message": "reconnecting 1/5"},
    "completed": {"type": "turn.completed",
                  "usage": {"input_tokens": 9, "cached_input_tokens": 1, "output_tokens": 4}},
    "failed": {"type": "turn.failed", "error": {"message": "status 429"}},
}  # fmt: skip

PARSERS: dict[str, tuple[Any, dict[str, dict[str, Any]]]] = {
    "claude-code": (lambda: ClaudeCodeParser("agent", Metrics(), partial=True), CLAUDE),
    "opencode": (lambda: OpenCodeParser("agent", Metrics()), OPENCODE),
    "codex": (lambda: CodexParser("agent", Metrics()), CODEX),
}

# ----------------------------------------------------------------------------- the contract


def _is_json(value: object) -> bool:
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) in (list, tuple):
        return all(_is_json(v) for v in value)  # type: ignore[union-attr]
    if type(value) is dict:
        return all(type(k) is str and _is_json(v) for k, v in value.items())  # type: ignore[union-attr]
    return False


def _optional(value: object, kind: type) -> bool:
    return value is None or type(value) is kind


# The documented types of each chunk's data (docs/providers.md, "Chunks").
_DATA_FIELDS: dict[str, dict[str, Any]] = {
    "tool_use": {"id": (str,), "name": (str,), "input": "json", "parent_tool_use_id": (str,)},
    "tool_result": {"tool_use_id": (str,), "content": "json", "is_error": bool,
                    "parent_tool_use_id": (str,), "exit_code": (int,)},
    "system": {"subtype": str, "session_id": (str,), "model": (str,), "tools": "names",
               "permission_mode": (str,), "cwd": (str,)},
    "retry": {"attempt": (int,), "max_retries": (int,), "delay_seconds": float,
              "status": (int,), "error": (str,)},
    "error": {"message": str, "fatal": bool},
}  # fmt: skip


def check_chunk(chunk: Chunk) -> None:
    """Fail unless ``chunk`` has exactly the documented types."""
    assert type(chunk) is Chunk
    assert type(chunk.text) is str, chunk
    if chunk.type in ("text", "thinking"):
        assert chunk.data is None, chunk
        return
    if chunk.type == "result":
        check_final(dict(chunk.data or {}))
        assert type(chunk.data["timings"]) is Timings  # type: ignore[index]
        return
    fields = _DATA_FIELDS[chunk.type]
    assert isinstance(chunk.data, Mapping), chunk
    assert set(chunk.data) <= set(fields), chunk
    for name, value in chunk.data.items():
        rule = fields[name]
        if rule == "json":
            assert _is_json(value), chunk
        elif rule == "names":
            assert type(value) is tuple and all(type(v) is str for v in value), chunk
        elif isinstance(rule, tuple):
            assert _optional(value, rule[0]), chunk
        else:
            assert type(value) is rule, chunk
        if type(value) is float:
            assert math.isfinite(value), chunk


def check_final(final: dict[str, Any]) -> None:
    """Fail unless the accounting of a request has the documented types."""
    usage = final["usage"]
    assert type(usage) is Usage
    assert all(type(getattr(usage, f)) is int and getattr(usage, f) >= 0 for f in Usage.__slots__)
    cost = final.get("cost_usd")
    assert cost is None or (type(cost) is float and math.isfinite(cost)), final
    for name in ("stop_reason", "session_id", "model"):
        assert _optional(final.get(name), str), final
    assert _optional(final.get("num_turns"), int), final


# ----------------------------------------------------------------------------- mutations


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in ``node`` a value sits (keys of objects, indices of lists), nested."""
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        yield (*prefix, key)
        yield from paths(value, (*prefix, key))


def replaced(event: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(event)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@st.composite
def mutated(draw: st.DrawFn, events: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A real event with random JSON at one to three of its fields (or a whole new field)."""
    event = events[draw(st.sampled_from(sorted(events)))]
    for _ in range(draw(st.integers(1, 3))):
        places = list(paths(event))
        if draw(st.booleans()) or not places:
            path = draw(st.sampled_from(places))
        else:
            path = (draw(st.text(max_size=6)),)
        event = replaced(event, path, draw(JSON))
        if not isinstance(event, dict):
            break
    return event


def run_parser(parser: EventParser, events: list[dict[str, Any]]) -> list[Chunk] | ProviderError:
    """Feed ``events`` through the parser's one entry point, as the runner does."""
    chunks: list[Chunk] = []
    try:
        for event in events:
            chunks.extend(parser.parse(event))
        parser.finish()
    except ProviderError as error:
        return error
    return chunks


@pytest.mark.parametrize("kind", sorted(PARSERS))
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_json_in_any_field_gives_typed_chunks_or_a_provider_error(
    kind: str, data: st.DataObject
) -> None:
    """Any mix of real and field-mutated events through a CLI kind's parser: chunks of the
    documented types, a final accounting of the documented types, or a ProviderError."""
    factory, events = PARSERS[kind]
    stream = data.draw(
        st.lists(st.sampled_from(list(events.values())) | mutated(events), min_size=1, max_size=6)
    )
    parser = factory()
    result = run_parser(parser, stream)
    if isinstance(result, ProviderError):
        assert result.kind == "server_error"
        assert "malformed event" in result.message
        assert result.__context__ is None and result.__cause__ is None
        return
    for chunk in result:
        check_chunk(chunk)
    if parser.final is not None:
        check_final(parser.final)
    if parser.error is not None:
        assert type(parser.error.message) is str
        assert parser.error.status is None or type(parser.error.status) is int


@pytest.mark.parametrize("kind", sorted(PARSERS))
@pytest.mark.parametrize("value", [12345, 1.5, None, True, [], ["x"], {}, {"a": 1}, "s"])
def test_each_field_of_each_real_event_alone(kind: str, value: Any) -> None:
    """Every field of every real event, one at a time, replaced by each kind of JSON
    value: the same contract, exhaustively for the basic values."""
    factory, events = PARSERS[kind]
    for name, event in events.items():
        for path in paths(event):
            parser = factory()
            result = run_parser(parser, [replaced(event, path, value)])
            if isinstance(result, ProviderError):
                assert result.kind == "server_error", (name, path, result)
                continue
            for chunk in result:
                check_chunk(chunk)
            if parser.final is not None:
                check_final(parser.final)


def test_the_issue_s_example_is_a_server_error_naming_the_field() -> None:
    """A text that is a number (the example of issue 9) names the field and the type."""
    event = replaced(CLAUDE["text_delta"], ("event", "delta", "text"), 12345)
    error = run_parser(ClaudeCodeParser("agent", Metrics(), partial=True), [event])
    assert isinstance(error, ProviderError)
    assert error.kind == "server_error"
    assert "event.delta.text is an integer, not a string" in error.message


# ----------------------------------------------------------------------------- real processes

KINDS = {
    "claude-code": (ClaudeCodeProvider, ClaudeCodeSpec, CLAUDE, "result"),
    "opencode": (OpenCodeProvider, OpenCodeSpec, OPENCODE, "step_finish"),
    "codex": (CodexProvider, CodexSpec, CODEX, "completed"),
}


def _fake_cli(tmp: Path, lines: list[str]) -> Path:
    scenario = tmp / "scenario.txt"
    scenario.write_text("".join(line + "\n" for line in lines))
    cli = tmp / "fake-cli"
    cli.write_text(
        f"#!/bin/sh\nFAKE_SCENARIO='{scenario}' exec '{sys.executable}' '{REPLAY}' \"$@\"\n"
    )
    cli.chmod(0o755)
    return cli


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_json_through_a_real_cli_process(
    kind: str, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """The same contract end to end: a fake CLI in a real process prints mutated events
    then its closing line; the stream gives typed chunks and a result, or a ProviderError."""
    from provcfg.testing import make_context

    provider_cls, spec_cls, events, closing = KINDS[kind]
    stream = data.draw(st.lists(mutated(events), min_size=1, max_size=3))
    lines = [json.dumps(e) for e in [*stream, events[closing]]]
    cli = _fake_cli(tmp_path_factory.mktemp("cli"), lines)
    spec = spec_cls(kind=kind, model="m-1", kill_grace=0.5)
    provider = provider_cls(make_context(spec, name="agent", cli_path=cli))

    async def run() -> list[Chunk] | ProviderError:
        try:
            return await outcome(provider.stream("hi"))
        finally:
            await provider.aclose()

    result = asyncio.run(run())
    if isinstance(result, ProviderError):
        assert result.__context__ is None
        return
    for chunk in result:
        check_chunk(chunk)
    assert result[-1].type == "result"


# ----------------------------------------------------------------------------- the API kind

API_EVENTS: dict[str, dict[str, Any]] = {
    "message_start": {"type": "message_start",
                      "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                  "model": "claude-x", "content": [],
                                  "usage": {"input_tokens": 3, "output_tokens": 1}}},
    "text_start": {"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}},
    "text_delta": {"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": "Hello"}},
    "thinking_start": {"type": "content_block_start", "index": 1,
                       "content_block": {"type": "thinking", "thinking": ""}},
    "thinking_delta": {"type": "content_block_delta", "index": 1,
                       "delta": {"type": "thinking_delta", "thinking": "hmm"}},
    "tool_start": {"type": "content_block_start", "index": 2,
                   "content_block": {"type": "tool_use", "id": "t-1", "name": "get",
                                     "input": {}}},
    "tool_delta": {"type": "content_block_delta", "index": 2,
                   "delta": {"type": "input_json_delta", "partial_json": "{\"a\": 1}"}},
    "block_stop": {"type": "content_block_stop", "index": 2},
    "message_delta": {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                      "usage": {"output_tokens": 4}},
}  # fmt: skip
API_ORDER = list(API_EVENTS)


def _api_body(stream: list[dict[str, Any]]) -> bytes:
    events = [*stream, {"type": "message_stop"}]
    body = b"".join(
        f"event: {e.get('type') if isinstance(e.get('type'), str) else 'x'}\n"
        f"data: {json.dumps(e)}\n\n".encode()
        for e in events
    )
    return head(200, {"content-type": "text/event-stream", "connection": "close"}) + body


@pytest.mark.parametrize("transport", ["sdk", "fast"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_json_in_api_events_through_both_transports(
    transport: str, data: st.DataObject
) -> None:
    """A real loopback server sends a real Messages stream with random JSON in some fields
    of some events: each transport yields typed chunks ending in a result, or raises a
    ProviderError (the SDK builds its event objects without validating them)."""
    stream = []
    for name in API_ORDER:
        event = API_EVENTS[name]
        if data.draw(st.integers(0, 3)) == 0:
            event = data.draw(mutated({name: event}))
        stream.append(event)
    body = _api_body(stream)

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(body)

    async def run() -> list[Chunk] | ProviderError:
        async with HostileServer(answer) as server, pooled(server.base_url, transport) as provider:
            return await outcome(provider.stream("hi"))

    result = asyncio.run(run())
    if isinstance(result, ProviderError):
        assert result.__context__ is None and result.__cause__ is None
        return
    for chunk in result:
        check_chunk(chunk)
    assert result[-1].type == "result"
