"""The echo-conversation scenario: the reply summarises every message received, on three APIs."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest

from provcfg.stub import StubConfig, StubServer
from provcfg.stub.echo import MAX_MESSAGES, MAX_PART, MAX_SUMMARY, summarize
from tests.support_stub import stub  # noqa: F401

ECHO = "stub-echo-conversation"


async def _text(client: anthropic.AsyncAnthropic, messages: list[Any], **kw: Any) -> str:
    stream = await client.messages.create(
        model=kw.pop("model", ECHO), max_tokens=64, messages=messages, stream=True, **kw
    )
    return "".join(
        [
            e.delta.text
            async for e in stream
            if e.type == "content_block_delta" and e.delta.type == "text_delta"
        ]
    )


async def test_messages_turn_two_carries_turn_one(stub: StubServer) -> None:  # noqa: F811
    """Three turns through the SDK: each reply lists every earlier turn, in order, exactly."""
    async with httpx2.AsyncClient() as http:
        client = anthropic.AsyncAnthropic(
            base_url=stub.base_url, api_key="k", http_client=http, max_retries=0
        )
        history: list[Any] = [{"role": "user", "content": "Remember the word apple."}]
        first = await _text(client, history, system="ignored: not a message")
        assert first == "1 user: Remember the word apple."
        history += [
            {"role": "assistant", "content": first},
            {"role": "user", "content": [{"type": "text", "text": "Which word?"}]},
        ]
        second = await _text(client, history)
        assert second == (
            "1 user: Remember the word apple.\n"
            "2 assistant: 1 user: Remember the word apple.\n"
            "3 user: Which word?"
        )
        history += [
            {"role": "assistant", "content": second},
            {"role": "user", "content": "And now?"},
        ]
        third = await _text(client, history)
        whole = await client.messages.create(model=ECHO, max_tokens=64, messages=history)
    assert third.startswith("1 user: Remember the word apple.\n2 assistant: ")
    assert third.endswith("\n5 user: And now?")
    assert third.count("\n") == 4  # one line per message, newlines inside turns flattened
    assert whole.content[0].text == third  # streamed and not: the same text


async def test_messages_blocks_are_tagged(stub: StubServer) -> None:  # noqa: F811
    """Tool use, tool results, images and thinking blocks appear as tags with their names/texts."""
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Read  a.txt\n please"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "t1", "name": "Read", "input": {"path": "a.txt"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "42"}],
                },
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
                },
                {"type": "text", "text": "What is in it?"},
            ],
        },
    ]
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            stub.base_url + "/v1/messages",
            json={"model": ECHO, "max_tokens": 9, "messages": messages},
        )
    assert response.json()["content"][0]["text"] == (
        "1 user: Read a.txt please\n"
        "2 assistant: [thinking] | Reading. | [tool_use Read]\n"
        "3 user: [tool_result] 42 | [image] | What is in it?"
    )


def _sse_texts(raw: str, event: str, key: str) -> str:
    out = []
    for block in raw.split("\n\n"):
        lines = block.split("\n")
        data = [line[6:] for line in lines if line.startswith("data: ")]
        if not data or data[0] == "[DONE]":
            continue
        if event and f"event: {event}" not in lines:
            continue
        payload = json.loads(data[0])
        value: Any = payload
        for part in key.split("."):
            value = value[int(part)] if part.isdigit() else value.get(part)
        if isinstance(value, str):
            out.append(value)
    return "".join(out)


async def test_responses_input_is_summarised(stub: StubServer) -> None:  # noqa: F811
    """Responses input items (messages, function calls and outputs, reasoning) are listed."""
    body = {
        "model": ECHO,
        "instructions": "left out",
        "stream": True,
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "Be terse."}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "List files"}],
            },
            {"type": "reasoning", "summary": []},
            {"type": "function_call", "name": "shell", "arguments": "{}", "call_id": "c1"},
            {"type": "function_call_output", "call_id": "c1", "output": "a.txt b.txt"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Two files."}]},
            {"role": "user", "content": "Thanks"},
        ],
    }
    async with httpx2.AsyncClient() as http:
        streamed = (await http.post(stub.base_url + "/v1/responses", json=body)).text
        plain = (
            await http.post(stub.base_url + "/v1/responses", json={**body, "stream": False})
        ).json()
        single = (
            await http.post(stub.base_url + "/v1/responses", json={"model": ECHO, "input": "Hi"})
        ).json()
    expected = (
        "1 developer: Be terse.\n"
        "2 user: List files\n"
        "3 assistant: [reasoning]\n"
        "4 assistant: [function_call shell]\n"
        "5 tool: [function_call_output] a.txt b.txt\n"
        "6 assistant: Two files.\n"
        "7 user: Thanks"
    )
    assert _sse_texts(streamed, "response.output_text.delta", "delta") == expected
    assert plain["output"][0]["content"][0]["text"] == expected
    assert single["output"][0]["content"][0]["text"] == "1 user: Hi"


async def test_chat_messages_are_summarised(stub: StubServer) -> None:  # noqa: F811
    """Chat Completions messages, system and tool ones included, are listed with tool calls."""
    call = {"id": "c1", "type": "function", "function": {"name": "grep", "arguments": "{}"}}
    body = {
        "model": f"openai/{ECHO}",
        "stream": True,
        "messages": [
            {"role": "system", "content": "You are a bot."},
            {"role": "user", "content": [{"type": "text", "text": "Find foo"}]},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "foo.py:1"},
            {"role": "user", "content": "ok"},
        ],
    }
    async with httpx2.AsyncClient() as http:
        streamed = (await http.post(stub.base_url + "/v1/chat/completions", json=body)).text
    assert _sse_texts(streamed, "", "choices.0.delta.content") == (
        "1 system: You are a bot.\n"
        "2 user: Find foo\n"
        "3 assistant: [tool_call grep]\n"
        "4 tool: foo.py:1\n"
        "5 user: ok"
    )


async def test_echo_from_header_and_server_config(stub: StubServer) -> None:  # noqa: F811
    """The x-stub-scenario header and StubConfig(echo_conversation=True) turn echo on too."""
    body = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "ping"}]}
    async with httpx2.AsyncClient() as http:
        by_header = await http.post(
            stub.base_url + "/v1/messages", json=body, headers={"x-stub-scenario": "echo"}
        )
        async with StubServer(config=StubConfig(echo_conversation=True, length=3)) as server:
            by_config = await http.post(server.base_url + "/v1/messages", json=body)
    assert by_header.json()["content"][0]["text"] == "1 user: ping"
    assert by_config.json()["content"][0]["text"] == "1 user: ping"  # length is ignored


async def test_echo_with_tool_use_answers_then_calls(stub: StubServer) -> None:  # noqa: F811
    """Echo changes only the text: with tool-use the summary is followed by the tool call."""
    body = {
        "model": "stub-tool-use-echo",
        "max_tokens": 9,
        "messages": [{"role": "user", "content": "go"}],
    }
    async with httpx2.AsyncClient() as http:
        reply = (await http.post(stub.base_url + "/v1/messages", json=body)).json()
    assert [b["type"] for b in reply["content"]] == ["text", "tool_use"]
    assert reply["content"][0]["text"] == "1 user: go"


def test_summary_is_bounded_and_deterministic() -> None:
    """Long texts are cut, huge conversations stop with a count, and odd shapes never raise."""
    long = {"role": "user", "content": "word " * 1000}
    line = summarize({"messages": [long]})
    assert line == "1 user: " + ("word " * 1000)[:MAX_PART] + "..."
    many = summarize({"messages": [{"role": "user", "content": "x"}] * (MAX_MESSAGES + 5)})
    assert many.endswith("\n... 5 more messages")
    assert many.count("\n") == MAX_MESSAGES
    odd: list[Any] = [
        None,
        5,
        {"role": 7, "content": {"a": 1}},
        {"content": [None, 3, {"type": []}]},
    ]
    assert summarize({"messages": odd}) == "1 ?: [?]\n2 ?: [?]\n3 ?: [?]\n4 ?: [?] | [?] | [?]"
    assert summarize({"messages": "not a list"}) == "(no messages)"
    assert summarize({}) == "(no messages)"
    assert summarize({"messages": [long]}) == line


@pytest.mark.parametrize(
    ("path", "event", "key"),
    [
        ("/v1/messages", "content_block_delta", "delta.text"),
        ("/v1/responses", "response.output_text.delta", "delta"),
        ("/v1/chat/completions", "", "choices.0.delta.content"),
    ],
)
async def test_echo_of_a_huge_conversation_is_bounded(
    stub: StubServer,  # noqa: F811
    path: str,
    event: str,
    key: str,
) -> None:
    """A 6 MB conversation gets a summary of bounded size, streamed, not a failure."""
    parts = [{"type": "text", "text": "y" * 300}] * 200
    messages = [{"role": "user", "content": parts}] * 100
    body = {"model": ECHO, "messages": messages, "input": messages, "stream": True, "max_tokens": 9}
    async with httpx2.AsyncClient(timeout=60) as http:
        response = await http.post(stub.base_url + path, json=body)
    assert response.status_code == 200
    text = _sse_texts(response.text, event, key)
    assert text.startswith("1 user: " + "y" * MAX_PART + "... | ")
    lines = text.split("\n")
    assert all(line.endswith("| ... 150 more parts") for line in lines[:-1])
    assert lines[-1] == f"... {100 - len(lines) + 1} more messages"
    assert MAX_SUMMARY < len(text) < MAX_SUMMARY + 20_000
