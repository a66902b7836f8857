"""Hostile request bodies, records and queues: every input gets an answer; memory stays bounded."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provcfg.stub import StubConfig, StubServer
from provcfg.stub.faults import MAX_QUEUED, FaultQueue
from provcfg.stub.records import BODY_KEPT, RecordedRequest, Records
from provcfg.stub.routes import Router
from tests.support_stub import stub  # noqa: F401

ROUTES = ["/v1/messages", "/v1/responses", "/v1/chat/completions"]

HOSTILE_BODIES: list[tuple[bytes, str]] = [
    (b"[" * 100_000, "application/json"),  # nested past the parser's recursion limit
    (b'{"model": "m", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json"),
    (b'{"model": "\\ud800", "messages": [], "input": "hi"}', "application/json"),
    (b'{"model": "stub-\\udfff", "messages": []}', "application/json"),
    (b"\xff\xfe not utf-8", "application/json"),
    (b"model=m&messages=[]", "application/x-www-form-urlencoded"),
    (b"--b\r\ncontent-disposition: form-data\r\n\r\nx\r\n--b--", "multipart/form-data; boundary=b"),
    (b'{"model": "m", "max_tokens": 1e999, "messages": []}', "application/json"),
    (b'{"model": "m", "max_tokens": ' + b"9" * 5000 + b', "messages": []}', "application/json"),
    (
        b'{"model": "m", "messages": [{"type": [], "role": {}}], "input": [{"type": {}}]}',
        "text/plain",
    ),
    (b'{"model": ["m"], "messages": []}', "application/json"),
    (b'{"model": "m", "stream": "yes", "stream_options": [1], "messages": "x"}', "text/plain"),
    (b"null", "application/json"),
    (b"", "application/json"),
]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(("body", "content_type"), HOSTILE_BODIES)
async def test_hostile_bodies_get_an_answer(
    stub: StubServer,  # noqa: F811
    path: str,
    body: bytes,
    content_type: str,
) -> None:
    """Deep nesting, lone surrogates, bad UTF-8, forms and wrong types get a 200 or a JSON 400."""
    async with httpx2.AsyncClient(timeout=20) as http:
        response = await http.post(
            stub.base_url + path, content=body, headers={"content-type": content_type}
        )
        assert response.status_code in (200, 400)
        if response.headers["content-type"].startswith("application/json"):
            data = response.json()
            if response.status_code == 400:
                assert isinstance(data["error"]["message"], str)
        else:
            assert response.text  # a whole stream, decodable as UTF-8
        # The connection and the server are fine afterwards.
        assert (await http.get(stub.base_url + "/")).status_code == 200


async def test_a_lone_surrogate_model_is_echoed_replaced(stub: StubServer) -> None:  # noqa: F811
    """A model name holding a lone surrogate is echoed with it replaced, not crashing the reply."""
    async with httpx2.AsyncClient(timeout=20) as http:
        response = await http.post(
            stub.base_url + "/v1/messages", content=b'{"model": "a\\ud800b", "messages": []}'
        )
    assert response.status_code == 200
    assert response.json()["model"] == "a?b"


async def test_json_in_any_content_type_is_served(stub: StubServer) -> None:  # noqa: F811
    """The content type is not checked: JSON sent as text/plain (curl -d style) is served."""
    async with httpx2.AsyncClient(timeout=20) as http:
        response = await http.post(
            stub.base_url + "/v1/messages",
            content=b'{"model": "m", "messages": []}',
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 200


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["role", "content", "type", "text", "name", "input", "output", "tool_calls", "x"]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
_WORDS = st.lists(
    st.sampled_from(
        [
            "thinking",
            "tool-use",
            "echo",
            "429",
            "100",
            "retry-after-1",
            "retry-after-date-2",
            "retry-after-ms-5",
            "drop",
            "drop-2",
            "error-1",
            "bad-json",
            "no-stop",
            "garbage",
            "stall-0",
            "deltas-3",
            "length-9",
            "chunk-size-2",
            "delay-0",
            "headers-delay-0",
            "99999999999999999999",
            "deltas-99999999999999999999",
            "x",
            "-",
            "input-7b7d",
            "input-zz",
            "tool-Read",
            "length-",
            "1.5",
        ]
    ),
    max_size=5,
).map("-".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from([*ROUTES, "/v1/messages/count_tokens", "/v1/models", "/nowhere"]),
    model=st.one_of(_WORDS.map(lambda w: "stub-" + w), _JSON),
    messages=_JSON,
    extra=st.dictionaries(st.sampled_from(["input", "stream", "stream_options", "system"]), _JSON),
    stream=st.booleans(),
)
def test_router_answers_any_body(
    path: str, model: Any, messages: Any, extra: dict[str, Any], stream: bool
) -> None:
    """Any JSON body and directive words give a 2xx/4xx/5xx-fault reply whose frames all render."""
    router = Router(StubConfig())
    body = {"model": model, "messages": messages, "stream": stream, **extra}
    raw = json.dumps(body).encode()
    reply = router.route("POST", path, [(b"content-type", b"application/json")], raw, 1)
    assert 200 <= reply.status <= 599
    if reply.status >= 500:
        assert "stub fault" in reply.body.decode() or "Overloaded" in reply.body.decode()
    if reply.frames is not None:
        for frame in reply.frames:  # generated lazily: errors would surface here
            assert isinstance(frame, bytes)
    elif not reply.body.startswith(b"{this is not json"):  # the bad-json fault's own body
        json.loads(reply.body)


def test_records_are_bounded_by_bytes() -> None:
    """Records past the byte budget are forgotten oldest first; the newest is always kept."""
    records = Records(max_records=1000, max_bytes=1_000_000)
    for number in range(40):
        raw = json.dumps({"n": number, "pad": "x" * 100_000}).encode()
        records.add(_record(number, raw))
    kept = records.snapshot()
    assert records.held_bytes <= 1_000_000
    assert 5 <= len(kept) < 40
    assert kept[-1].body["n"] == 39
    assert [r.connection for r in kept] == list(range(40 - len(kept), 40))


def _record(number: int, raw: bytes) -> RecordedRequest:
    return RecordedRequest(
        method="POST",
        path="/v1/messages",
        model="m",
        stream=False,
        headers=(("host", "x"),),
        body_size=len(raw),
        connection=number,
        directives=(),
        status=200,
        raw_body=raw,
    )


async def test_large_bodies_are_counted_not_kept(stub: StubServer) -> None:  # noqa: F811
    """A body above 256 KiB is recorded by size only; a small one is parsed when read."""
    async with httpx2.AsyncClient(timeout=20) as http:
        big = {"model": "m", "messages": [{"role": "user", "content": "x" * BODY_KEPT}]}
        await http.post(stub.base_url + "/v1/messages", json=big)
        await http.post(stub.base_url + "/v1/messages", json={"model": "m", "messages": []})
        listed = (await http.get(stub.base_url + "/_stub/requests")).json()["requests"]
    large, small = stub.requests
    assert large.body is None
    assert large.body_size > BODY_KEPT
    assert small.body == {"model": "m", "messages": []}
    assert listed[1]["body"] == {"model": "m", "messages": []}
    assert listed[0]["body"] is None


def test_the_fault_queue_is_bounded() -> None:
    """The queue refuses entries beyond its cap, and 'times' outside 1..1e9, naming the fix."""
    queue = FaultQueue()
    for _ in range(MAX_QUEUED):
        queue.put("429")
    with pytest.raises(ValueError, match=r"fault queue is full \(10,000 entries\); use 'times'"):
        queue.put("429")
    for times in (0, -1, 10**20, True, "3", 1.5):
        with pytest.raises(ValueError, match="times"):
            FaultQueue().put("429", times=times)  # type: ignore[arg-type]


async def test_queue_route_refuses_bad_times(stub: StubServer) -> None:  # noqa: F811
    """POST /_stub/faults answers 400 for a bad 'times', and queues nothing."""
    async with httpx2.AsyncClient(timeout=20) as http:
        for times in (0, 10**20, "2", True, None):
            entry = {"spec": "429", "times": times}
            response = await http.post(stub.base_url + "/_stub/faults", json={"faults": [entry]})
            assert response.status_code == 400
            assert "times" in response.json()["error"]["message"]
    assert stub.requests == []
