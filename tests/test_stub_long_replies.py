"""Long replies are generated lazily: a 160 MB stream keeps the stub's memory flat, every route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest

from provcfg.stub import StubConfig, StubProcess, StubServer
from provcfg.stub.config import INLINE_LIMIT, MAX_UNSTREAMED
from tests.support_stub import stub  # noqa: F401

# The 160 MB reply of issue 9 (20,000,000 deltas of 8 characters).
HUGE = "stub-deltas-20000000"
# Far more than a lazy stub ever holds, far less than the 160 MB a built reply takes.
RSS_GROWTH_LIMIT = 48 * 1024 * 1024


def _rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def _body(path: str, model: str, *, stream: bool = True) -> dict[str, Any]:
    return {"model": model, "max_tokens": 5, "messages": [], "input": "hi", "stream": stream}


@pytest.fixture(scope="module")
def stub_child() -> Any:
    """One real stub process shared by the memory tests (its RSS is what they measure)."""
    with StubProcess() as child:
        yield child


@pytest.mark.parametrize(
    ("path", "marker"),
    [
        ("/v1/messages", b'"text_delta"'),
        ("/v1/responses", b"response.output_text.delta"),
        ("/v1/chat/completions", b'"delta":{"content"'),
    ],
)
def test_huge_stream_keeps_the_stub_memory_flat(stub_child: Any, path: str, marker: bytes) -> None:
    """Reading 8 MB of a 160 MB stream, then closing, leaves the stub's RSS near where it was."""
    pid = stub_child.process.pid
    with httpx2.Client(timeout=60) as http:
        assert http.get(stub_child.base_url + "/").status_code == 200  # warm
        before = _rss(pid)
        read, peak = 0, before
        with http.stream("POST", stub_child.base_url + path, json=_body(path, HUGE)) as response:
            assert response.status_code == 200
            for chunk in response.iter_raw(65536):
                read += len(chunk)
                if read > 8 * 1024 * 1024:
                    assert marker in chunk
                    peak = _rss(pid)
                    break
        assert peak - before < RSS_GROWTH_LIMIT, f"RSS grew {(peak - before) >> 20} MiB"
        # The stub stopped writing the abandoned stream and serves on.
        small = http.post(stub_child.base_url + path, json=_body(path, "m", stream=False))
        assert small.status_code == 200


def test_responses_done_events_carry_a_huge_text_without_building_it(stub_child: Any) -> None:
    """Well into the done events of a 39 MB Responses stream, the stub still holds little."""
    pid = stub_child.process.pid
    model = "stub-chunk-size-65536-deltas-600"  # 39,321,600 characters
    with httpx2.Client(timeout=120) as http:
        before = _rss(pid)
        seen = bytearray()
        peak = before
        url = stub_child.base_url + "/v1/responses"
        with http.stream("POST", url, json=_body("", model)) as response:
            chunks = response.iter_raw(1 << 20)
            for chunk in chunks:
                seen += chunk
                if b"response.output_text.done" in seen:
                    break
                del seen[:-100]  # a marker split between two reads is still found
            else:
                raise AssertionError("the stream ended before response.output_text.done")
            for index, _ in enumerate(chunks):
                if index == 16:  # 16 MB into the done events
                    peak = max(peak, _rss(pid))
                    break
            else:
                raise AssertionError("the done events ended early")
    assert peak - before < RSS_GROWTH_LIMIT, f"RSS grew {(peak - before) >> 20} MiB"


def _events(raw: bytes) -> list[tuple[str, Any]]:
    """(event, data) pairs of an SSE body, skipping comment and unknown-field lines."""
    events = []
    for block in raw.decode().split("\n\n"):
        name, data = "", []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events


@pytest.mark.parametrize("garbage", [False, True])
async def test_lazily_rendered_responses_stream_is_exact(stub: StubServer, garbage: bool) -> None:  # noqa: F811
    """Above the inline limit, the done events hold exactly the streamed text, as valid JSON."""
    length = INLINE_LIMIT + 12_345
    model = f"stub-length-{length}-chunk-size-1000" + ("-garbage" if garbage else "")
    async with httpx2.AsyncClient(timeout=60) as http:
        response = await http.post(stub.base_url + "/v1/responses", json=_body("", model))
    events = _events(response.content)
    deltas = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
    expected = StubConfig(length=length).reply_text()
    assert deltas == expected
    done = dict(events[-4:])
    assert done["response.output_text.done"]["text"] == expected
    assert done["response.content_part.done"]["part"]["text"] == expected
    assert done["response.output_item.done"]["item"]["content"][0]["text"] == expected
    completed = done["response.completed"]["response"]
    assert completed["output"][0]["content"][0]["text"] == expected
    numbers = [d["sequence_number"] for _, d in events]
    assert numbers == list(range(len(numbers)))
    assert (b": stub garbage" in response.content) is garbage


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/responses", "/v1/chat/completions"])
async def test_a_huge_reply_that_is_not_streamed_is_refused(stub: StubServer, path: str) -> None:  # noqa: F811
    """A non-streamed reply above the in-memory cap is a 400 that says to stream."""
    async with httpx2.AsyncClient(timeout=20) as http:
        refused = await http.post(stub.base_url + path, json=_body(path, HUGE, stream=False))
        limit = await http.post(
            stub.base_url + path, json=_body(path, "stub-length-4096", stream=False)
        )
    assert refused.status_code == 400
    message = refused.json()["error"]["message"]
    assert f"at most {MAX_UNSTREAMED:,} characters" in message
    assert "stream: true" in message
    assert limit.status_code == 200


async def test_long_custom_text_streams_exactly(stub: StubServer) -> None:  # noqa: F811
    """A reply cut lazily from a long unit text equals the text repeated and cut."""
    text = "".join(chr(0x41 + i % 26) for i in range(997)) + 'é"\\\n'
    config = StubConfig(text=text, length=INLINE_LIMIT + 5003, chunk_size=7)
    async with StubServer(config=config) as server, httpx2.AsyncClient(timeout=60) as http:
        response = await http.post(
            server.base_url + "/v1/messages", json={"model": "m", "messages": [], "stream": True}
        )
    deltas = [
        d["delta"]["text"]
        for n, d in _events(response.content)
        if n == "content_block_delta" and d["delta"]["type"] == "text_delta"
    ]
    assert "".join(deltas) == (text * (len(deltas) * 7 // len(text) + 2))[: INLINE_LIMIT + 5003]
    assert all(len(d) == 7 for d in deltas[:-1])
