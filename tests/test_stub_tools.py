"""The stub's tool-use scenario in all three dialects, with the tool chosen per request.

Read by real clients: the anthropic SDK for Messages, httpx2 for the OpenAI dialects.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest

from provcfg.stub import StubConfig, StubError, StubServer, parse_directives, tool_words
from provcfg.stub.config import TOOL_INPUT
from provcfg.stub.faults import Directives
from tests.support_stub import stub  # noqa: F401

READ_INPUT = {"file_path": "/tmp/provcfg-test/ünï code.txt", "limit": 5}
READ_WORDS = tool_words("Read", READ_INPUT)
REPLY = StubConfig().reply_text()


async def _sse(response: httpx2.Response) -> AsyncIterator[tuple[str | None, Any]]:
    """Yield (event, parsed data) per SSE block; the [DONE] marker stays a string."""
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                text = "\n".join(data)
                yield event, (text if text == "[DONE]" else json.loads(text))
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


async def _stream(
    base_url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> list[tuple[str | None, Any]]:
    async with (
        httpx2.AsyncClient() as http,
        http.stream("POST", base_url + path, json=body, headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        return [item async for item in _sse(response)]


# --------------------------------------------------------------------------- grammar


def test_tool_words_round_trip() -> None:
    """tool_words builds model words that parse back to the tool name and input."""
    assert READ_WORDS.startswith("tool-Read-input-")
    directives = parse_directives("tool-use-" + READ_WORDS, where="model")
    assert directives.scenario == "tool-use" and directives.tool_name == "Read"
    config = directives.apply(StubConfig())
    assert (config.tool_name, config.tool_call_input()) == ("Read", READ_INPUT)
    assert parse_directives("tool-user", where="m") == Directives(tool_name="user")
    assert parse_directives("tool-use", where="m") == Directives(scenario="tool-use")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tool-use-input-zz", "unknown stub directive 'input'"),
        ("input-7b2", "not hex-encoded UTF-8"),  # an odd number of digits
        ("input-ff", "not hex-encoded UTF-8"),  # not UTF-8
        ("input-" + b"[1]".hex(), "must be a JSON object"),
        ("input-" + b"{".hex(), "not valid JSON"),
    ],
)
def test_bad_tool_input_words_are_errors(spec: str, message: str) -> None:
    """A tool input that is not hex, not JSON or not an object is refused, naming the place."""
    with pytest.raises(StubError, match=message):
        parse_directives(spec, where="model 'x'")


def test_tool_words_refuses_names_the_grammar_cannot_carry() -> None:
    """A tool name with a separator in it cannot be written as a word, so it is refused."""
    with pytest.raises(StubError, match="letters, digits and underscores"):
        tool_words("read-file")
    with pytest.raises(StubError, match="JSON object"):
        StubConfig(tool_input="[]")


# --------------------------------------------------------------------------- /v1/messages


async def test_messages_tool_is_chosen_by_the_model_name(stub: StubServer) -> None:  # noqa: F811
    """The model's tool-NAME and input-HEX words choose the tool_use block's name and input."""
    async with anthropic.AsyncAnthropic(base_url=stub.base_url, api_key="k") as client:
        message = await client.messages.create(
            model="stub-tool-use-" + READ_WORDS,
            max_tokens=5,
            messages=[{"role": "user", "content": "read it"}],
        )
        header = await client.messages.create(
            model="m",
            max_tokens=5,
            messages=[{"role": "user", "content": "read it"}],
            extra_headers={
                "x-stub-scenario": "tool-use tool-Grep",
                "x-stub-tool-input": '{"pattern": "x"}',
            },
        )
    tool = message.content[-1]
    assert tool.type == "tool_use" and (tool.name, tool.input) == ("Read", READ_INPUT)
    tool = header.content[-1]
    assert tool.type == "tool_use" and (tool.name, tool.input) == ("Grep", {"pattern": "x"})


async def test_bad_tool_input_header_is_a_400(stub: StubServer) -> None:  # noqa: F811
    """A tool-input header that is not a JSON object answers 400 naming the header."""
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            stub.base_url + "/v1/messages",
            json={"model": "stub-tool-use", "max_tokens": 5, "messages": []},
            headers={"x-stub-tool-input": "not json"},
        )
    assert response.status_code == 400
    assert "x-stub-tool-input" in response.json()["error"]["message"]


# --------------------------------------------------------------------------- /v1/responses


async def test_responses_tool_use_stream(stub: StubServer) -> None:  # noqa: F811
    """tool-use streams a function_call item: added, argument deltas, done, then completed."""
    body = {"model": "stub-tool-use-" + READ_WORDS, "input": "read it", "stream": True}
    events = await _stream(stub.base_url, "/v1/responses", body)
    names = [name for name, _ in events]
    assert [p["type"] for _, p in events] == names
    assert [p["sequence_number"] for _, p in events] == list(range(len(events)))
    assert names[-1] == "response.completed"
    added = [p for n, p in events if n == "response.output_item.added"]
    assert [a["item"]["type"] for a in added] == ["message", "function_call"]
    call = added[1]["item"]
    assert call["name"] == "Read" and call["arguments"] == "" and added[1]["output_index"] == 1
    pieces = [p for n, p in events if n == "response.function_call_arguments.delta"]
    assert len(pieces) > 1 and {p["item_id"] for p in pieces} == {call["id"]}
    arguments = "".join(p["delta"] for p in pieces)
    assert json.loads(arguments) == READ_INPUT
    done = next(p for n, p in events if n == "response.function_call_arguments.done")
    assert done["arguments"] == arguments
    first = names.index("response.function_call_arguments.delta")
    assert names.index("response.output_item.done") < first  # the text item closed first
    completed = events[-1][1]["response"]
    assert [o["type"] for o in completed["output"]] == ["message", "function_call"]
    function = completed["output"][1]
    assert (function["name"], function["call_id"]) == ("Read", call["call_id"])
    assert json.loads(function["arguments"]) == READ_INPUT
    text_deltas = names.count("response.output_text.delta")
    assert completed["usage"]["output_tokens"] == text_deltas + len(pieces)


async def test_responses_tool_use_non_stream_and_faults(stub: StubServer) -> None:  # noqa: F811
    """Without stream the Response holds the function_call; a drop counts argument deltas."""
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{stub.base_url}/v1/responses", json={"model": "stub-tool-use", "input": "x"}
        )
    output = response.json()["output"]
    assert output[1]["type"] == "function_call" and output[1]["name"] == "get_weather"
    assert json.loads(output[1]["arguments"]) == TOOL_INPUT
    text_deltas = -(-len(REPLY) // 8)
    model = f"stub-tool-use-error-{text_deltas + 2}"
    events = await _stream(stub.base_url, "/v1/responses", {"model": model, "stream": True})
    names = [n for n, _ in events]
    assert names.count("response.function_call_arguments.delta") == 2
    assert names[-1] == "response.failed"


@pytest.mark.parametrize("kind", ["function_call_output", "custom_tool_call_output"])
async def test_responses_answers_text_after_a_tool_output(
    stub: StubServer,  # noqa: F811
    kind: str,
) -> None:
    """An input whose last turn carries a tool's output gets text only: the agent loop ends."""
    items = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]},
        {"type": "function_call", "call_id": "c1", "name": "Read", "arguments": "{}"},
        {"type": kind, "call_id": "c1", "output": "file text"},
        {"type": "reasoning", "summary": []},
    ]
    body = {"model": "stub-tool-use", "input": items, "stream": True}
    events = await _stream(stub.base_url, "/v1/responses", body)
    output = events[-1][1]["response"]["output"]
    assert [o["type"] for o in output] == ["message"]
    # A new user message after the tool output starts a new turn: the tool is called again.
    items.append({"type": "message", "role": "user", "content": "again"})
    events = await _stream(stub.base_url, "/v1/responses", {**body, "input": items})
    assert [o["type"] for o in events[-1][1]["response"]["output"]] == ["message", "function_call"]


# --------------------------------------------------------------------------- /v1/chat/completions


async def test_chat_tool_use_stream(stub: StubServer) -> None:  # noqa: F811
    """tool-use streams tool_calls deltas (id and name first) and finish_reason tool_calls."""
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "read it"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"x-stub-scenario": "tool-use-" + READ_WORDS}
    events = await _stream(stub.base_url, "/v1/chat/completions", body, headers)
    assert events[-1][1] == "[DONE]"
    chunks = [data for _, data in events[:-1]]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    text = "".join(d.get("content") or "" for d in deltas)
    assert text == REPLY
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["id"] and calls[0]["type"] == "function"
    assert calls[0]["function"] == {"name": "Read", "arguments": ""}
    assert all(c["index"] == 0 and "id" not in c for c in calls[1:])
    assert json.loads("".join(c["function"]["arguments"] for c in calls[1:])) == READ_INPUT
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "tool_calls" and set(finish[:-1]) == {None}
    assert chunks[-1]["usage"]["completion_tokens"] == len(finish) - 3  # role, opening, finish


async def test_chat_tool_use_non_stream_then_tool_message(stub: StubServer) -> None:  # noqa: F811
    """Without stream the message holds tool_calls; after a role "tool" message: text only."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather?"}]
    async with httpx2.AsyncClient() as http:
        url = f"{stub.base_url}/v1/chat/completions"
        first = (await http.post(url, json={"model": "stub-tool-use", "messages": messages})).json()
        choice = first["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        call = choice["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == TOOL_INPUT
        messages += [
            choice["message"],
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        ]
        body = {"model": "stub-tool-use", "messages": messages, "stream": True}
        async with http.stream("POST", url, json=body) as response:
            events = [item async for item in _sse(response)]
    deltas = [d["choices"][0]["delta"] for _, d in events[:-1] if d["choices"]]
    assert not any("tool_calls" in d for d in deltas)
    assert events[-2][1]["choices"][0]["finish_reason"] == "stop"
