"""The default fault (slow, then recover, a running stub) and the control routes' loopback guard."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from provcfg.stub import StubError, StubProcess, StubServer
from tests.support_stub import stub, stub_process, stub_thread  # noqa: F401

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
SLOW = "headers-delay-30"  # far beyond the impatient client's 0.5 s


def _slow_then_fast(base_url: str, switch: Any) -> None:
    """Assert requests time out while the stub is slowed, and are answered once it recovers."""
    impatient = httpx2.Client(timeout=httpx2.Timeout(20, read=0.5))
    with impatient:
        switch(SLOW)
        for _ in range(2):  # every request, not only the next one
            with pytest.raises(httpx2.ReadTimeout):
                impatient.post(base_url + "/v1/messages", json=BODY)
        switch(None)
    with httpx2.Client(timeout=20) as patient:
        response = patient.post(base_url + "/v1/messages", json=BODY)
        assert response.status_code == 200
        recorded = patient.get(base_url + "/_stub/requests").json()["requests"]
    assert [r["directives"] for r in recorded] == [[f"default: {SLOW}"]] * 2 + [[]]


def test_python_api_slows_and_recovers_a_running_stub(stub_thread: StubServer) -> None:  # noqa: F811
    """set_default_fault makes every request slow, and None makes the same server fast again."""
    _slow_then_fast(stub_thread.base_url, stub_thread.set_default_fault)
    assert stub_thread.default_fault is None


def test_http_route_slows_and_recovers_a_stub_process(stub_process: StubProcess) -> None:  # noqa: F811
    """POST /_stub/default-fault slows a separate stub process; DELETE makes it fast again."""
    url = stub_process.base_url + "/_stub/default-fault"

    def switch(spec: str | None) -> None:
        with httpx2.Client(timeout=20) as http:
            if spec is None:
                assert http.delete(url).json() == {"default": None}
            else:
                reply = http.post(url, json={"spec": spec})
                assert reply.json() == {"default": {"spec": spec, "rate": 1.0, "path": None}}
                assert http.get(url).json() == reply.json()

    _slow_then_fast(stub_process.base_url, switch)


async def test_rate_picks_a_deterministic_share(stub: StubServer) -> None:  # noqa: F811
    """rate 0.25 fails exactly every fourth matching request; other paths are untouched."""
    stub.set_default_fault("529", rate=0.25, path="/v1/messages")
    async with httpx2.AsyncClient(timeout=20) as http:
        statuses = [
            (await http.post(stub.base_url + "/v1/messages", json=BODY)).status_code
            for _ in range(8)
        ]
        chat = await http.post(stub.base_url + "/v1/chat/completions", json=BODY)
    assert statuses == [200, 200, 200, 529] * 2
    assert chat.status_code == 200


async def test_per_request_words_apply_on_top(stub: StubServer) -> None:  # noqa: F811
    """The default is the lowest layer: model-name words and the queue still win."""
    stub.set_default_fault("503-retry-after-seconds-7")
    stub.enqueue_fault("429")
    async with httpx2.AsyncClient(timeout=20) as http:
        queued = await http.post(stub.base_url + "/v1/messages", json=BODY)
        default = await http.post(stub.base_url + "/v1/messages", json=BODY)
        named = await http.post(stub.base_url + "/v1/messages", json={**BODY, "model": "stub-401"})
    assert (queued.status_code, queued.headers["retry-after"]) == (429, "7")
    assert (default.status_code, default.headers["retry-after"]) == (503, "7")
    assert named.status_code == 401


async def test_reset_clears_the_default(stub: StubServer) -> None:  # noqa: F811
    """POST /_stub/reset (and reset()) clear the default fault too."""
    stub.set_default_fault("500")
    async with httpx2.AsyncClient(timeout=20) as http:
        await http.post(stub.base_url + "/_stub/reset")
        assert (await http.post(stub.base_url + "/v1/messages", json=BODY)).status_code == 200
    assert stub.default_fault is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"spec": "headers-delay-99999999999999999999"}, "out of range"),
        ({"spec": "hnag"}, "unknown stub directive 'hnag'"),
        ({"spec": "529", "rate": 0}, "rate must be a number greater than 0"),
        ({"spec": "529", "rate": 1.5}, "rate must be"),
        ({"spec": "529", "rate": "half"}, "rate must be"),
        ({"spec": "529", "rate": True}, "rate must be"),
        ({"spec": "529", "path": 5}, "'path' must be a string"),
        ({"spec": 529}, "POST /_stub/default-fault takes"),
        ({"spec": "529", "extra": 1}, "POST /_stub/default-fault takes"),
        ([1, 2], "POST /_stub/default-fault takes"),
    ],
)
async def test_bad_default_fault_is_a_400(stub: StubServer, body: Any, message: str) -> None:  # noqa: F811
    """A bad spec, rate, path or shape is refused with 400 and leaves the default unset."""
    async with httpx2.AsyncClient(timeout=20) as http:
        response = await http.post(stub.base_url + "/_stub/default-fault", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert stub.default_fault is None


def test_set_default_fault_validates() -> None:
    """The Python API raises StubError for the same mistakes."""
    server = StubServer()
    with pytest.raises(StubError, match="rate"):
        server.set_default_fault("529", rate=-1)
    with pytest.raises(StubError, match="unknown stub directive"):
        server.set_default_fault("slow")
    server.set_default_fault("529", rate=0.5, path="/v1/responses")
    assert server.default_fault == {"spec": "529", "rate": 0.5, "path": "/v1/responses"}


async def test_put_and_other_methods(stub: StubServer) -> None:  # noqa: F811
    """PUT sets like POST; an unsupported method gets 405 with the allowed ones."""
    async with httpx2.AsyncClient(timeout=20) as http:
        put = await http.put(stub.base_url + "/_stub/default-fault", json={"spec": "delay-0.01"})
        patch = await http.patch(stub.base_url + "/_stub/default-fault", json={})
    assert put.json()["default"]["spec"] == "delay-0.01"
    assert patch.status_code == 405
    assert "DELETE" in patch.headers["allow"]


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "evil.example"},
        {"host": "evil.example:8765"},
        {"host": "[::1"},
        {"origin": "http://evil.example"},
        {"origin": "null"},
    ],
)
async def test_control_routes_refuse_foreign_pages(
    stub: StubServer,  # noqa: F811
    headers: dict[str, str],
) -> None:
    """A DNS-rebound Host or a cross-site Origin cannot drive the control routes (403)."""
    async with httpx2.AsyncClient(timeout=20) as http:
        for method, route in [
            ("POST", "/_stub/default-fault"),
            ("POST", "/_stub/faults"),
            ("POST", "/_stub/reset"),
            ("GET", "/_stub/requests"),
        ]:
            response = await http.request(
                method, stub.base_url + route, json={"spec": "500"}, headers=headers
            )
            assert response.status_code == 403, route
        api = await http.post(stub.base_url + "/v1/messages", json=BODY, headers=headers)
    assert stub.default_fault is None
    assert api.status_code == 200  # API routes change nothing, so they answer anyone


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "localhost:1"},
        {"host": "127.0.0.9"},
        {"host": "[::1]:80"},
        {"origin": "http://localhost:3000"},
    ],
)
async def test_control_routes_accept_loopback_pages(
    stub: StubServer,  # noqa: F811
    headers: dict[str, str],
) -> None:
    """Loopback Host and Origin values are accepted."""
    async with httpx2.AsyncClient(timeout=20) as http:
        response = await http.post(
            stub.base_url + "/_stub/default-fault", json={"spec": "500"}, headers=headers
        )
    assert response.status_code == 200
