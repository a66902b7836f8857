"""The stub server itself: loopback-only binding, keep-alive, control routes, threads, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from provcfg.stub import StubConfig, StubError, StubProcess, StubServer, main
from provcfg.stub.config import check_loopback
from tests.support_stub import stub, stub_process, stub_thread  # noqa: F401

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", ""])
def test_non_loopback_bind_is_refused(host: str) -> None:
    """Any address outside 127.0.0.0/8, ::1 and localhost is refused with the fix named."""
    with pytest.raises(StubError, match=r"only listens on loopback.*127\.0\.0\.1"):
        StubServer(host=host)


@pytest.mark.parametrize(
    ("host", "bound"),
    [
        ("localhost", "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.3.2.1", "127.3.2.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
    ],
)
def test_loopback_addresses_are_accepted(host: str, bound: str) -> None:
    """Loopback spellings map to the address that is bound, localhost without DNS."""
    assert check_loopback(host) == bound


async def test_serves_on_another_loopback_address() -> None:
    """A 127.x.y.z address other than 127.0.0.1 binds and serves."""
    async with StubServer(host="127.0.0.2") as server, httpx2.AsyncClient() as http:
        assert server.base_url.startswith("http://127.0.0.2:")
        assert (await http.get(server.base_url + "/")).json()["status"] == "ok"


async def test_port_in_use_is_a_clear_error(stub: StubServer) -> None:  # noqa: F811
    """Binding a port that is taken raises StubError naming the address and the fix."""
    with pytest.raises(StubError, match=rf"127\.0\.0\.1:{stub.port}.*port 0"):
        await StubServer(port=stub.port).start()


async def test_head_and_get_root(stub: StubServer) -> None:  # noqa: F811
    """HEAD / answers 200 with no body and GET / a tiny JSON document."""
    async with httpx2.AsyncClient() as http:
        head = await http.head(stub.base_url + "/")
        get = await http.get(stub.base_url + "/")
    assert head.status_code == 200
    assert head.content == b""
    assert get.json() == {"service": "provcfg-stub", "status": "ok"}


async def test_keep_alive_reuses_one_connection(stub: StubServer) -> None:  # noqa: F811
    """A pooled client sends a Messages stream, a JSON call and a Chat stream on one connection."""
    async with httpx2.AsyncClient() as http:
        sdk = anthropic.AsyncAnthropic(
            base_url=stub.base_url, api_key="k", http_client=http, max_retries=0
        )
        stream = await sdk.messages.create(model="m", max_tokens=5, messages=MESSAGES, stream=True)
        assert [e.type async for e in stream][-1] == "message_stop"
        await sdk.messages.create(model="m", max_tokens=5, messages=MESSAGES)
        async with http.stream(
            "POST",
            stub.base_url + "/v1/chat/completions",
            json={"model": "m", "messages": [], "stream": True},
        ) as response:
            await response.aread()
    connections = [r.connection for r in stub.requests]
    assert len(connections) == 3
    assert len(set(connections)) == 1


async def test_dropped_connection_is_not_reused(stub: StubServer) -> None:  # noqa: F811
    """After a drop fault the client opens a fresh connection for the next request."""
    async with httpx2.AsyncClient() as http:
        body = {"model": "stub-drop-1", "messages": [], "max_tokens": 5, "stream": True}
        with pytest.raises(httpx2.RemoteProtocolError):
            await http.post(stub.base_url + "/v1/messages", json=body)
        body["model"] = "m"
        assert (await http.post(stub.base_url + "/v1/messages", json=body)).status_code == 200
    first, second = stub.requests
    assert first.connection != second.connection


async def test_unknown_directive_is_a_400_naming_it(stub: StubServer) -> None:  # noqa: F811
    """A typo in a stub model name answers 400 in the API's shape, naming the bad word."""
    async with httpx2.AsyncClient() as http:
        body = {"model": "stub-fault-drpo-3", "messages": [], "max_tokens": 5}
        response = await http.post(stub.base_url + "/v1/messages", json=body)
        openai_response = await http.post(
            stub.base_url + "/v1/responses", json={"model": "m"}, headers={"x-stub-fault": "hnag"}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "'drpo'" in error["message"]
    assert "model 'stub-fault-drpo-3'" in error["message"]
    assert openai_response.status_code == 400
    assert "header x-stub-fault" in openai_response.json()["error"]["message"]


async def test_bad_requests_get_api_errors(stub: StubServer) -> None:  # noqa: F811
    """Bad JSON, a missing model and unknown routes answer in the API's error shape."""
    async with httpx2.AsyncClient() as http:
        bad_json = await http.post(stub.base_url + "/v1/messages", content=b"{nope")
        no_model = await http.post(stub.base_url + "/v1/messages", json={"messages": []})
        unknown = await http.post(stub.base_url + "/v1/nothing", json={})
        wrong_method = await http.get(stub.base_url + "/v1/messages")
    assert bad_json.status_code == 400
    assert bad_json.json()["type"] == "error"
    assert no_model.status_code == 400
    assert "model" in no_model.json()["error"]["message"]
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "not_found_error"
    assert wrong_method.status_code == 405


async def test_control_routes_over_http(stub: StubServer) -> None:  # noqa: F811
    """/_stub/faults queues faults, /_stub/requests lists requests, /_stub/reset clears both."""
    async with httpx2.AsyncClient() as http:
        queued = await http.post(
            stub.base_url + "/_stub/faults",
            json={"faults": ["529", {"spec": "401", "path": "/v1/chat", "times": 2}]},
        )
        assert queued.json()["pending"] == [
            {"spec": "529", "path": None, "times": 1},
            {"spec": "401", "path": "/v1/chat", "times": 2},
        ]
        body = {"model": "m", "messages": [], "max_tokens": 5}
        assert (await http.post(stub.base_url + "/v1/messages", json=body)).status_code == 529
        assert (await http.post(stub.base_url + "/v1/messages", json=body)).status_code == 200
        chat = stub.base_url + "/v1/chat/completions"
        assert [(await http.post(chat, json=body)).status_code for _ in range(3)] == [401, 401, 200]
        recorded = (await http.get(stub.base_url + "/_stub/requests")).json()["requests"]
        assert [r["status"] for r in recorded] == [529, 200, 401, 401, 200]
        assert {r["path"] for r in recorded} == {"/v1/messages", "/v1/chat/completions"}
        bad = await http.post(stub.base_url + "/_stub/faults", json={"faults": ["explode"]})
        assert bad.status_code == 400
        assert "'explode'" in bad.json()["error"]["message"]
        stub.enqueue_fault("500")
        await http.post(stub.base_url + "/_stub/reset")
        assert (await http.get(stub.base_url + "/_stub/faults")).json() == {"pending": []}
        assert (await http.get(stub.base_url + "/_stub/requests")).json() == {"requests": []}


async def test_close_ends_hanging_connections() -> None:
    """aclose() returns while a client still waits on a hang fault; the client sees an error."""
    server = StubServer()
    await server.start()
    async with httpx2.AsyncClient() as http:
        waiting = asyncio.create_task(
            http.post(server.base_url + "/v1/messages", json={"model": "stub-hang", "messages": []})
        )
        while not server.requests:
            await asyncio.sleep(0.01)
        await asyncio.wait_for(server.aclose(), 5)
        with pytest.raises(httpx2.RemoteProtocolError):
            await waiting


def test_threaded_server_serves_sync_clients(stub_thread: StubServer) -> None:  # noqa: F811
    """The thread-hosted server answers a sync client and shares its fault queue."""
    stub_thread.enqueue_fault("429")
    with httpx2.Client() as http:
        body = {"model": "m", "messages": [], "max_tokens": 5}
        assert http.post(stub_thread.base_url + "/v1/messages", json=body).status_code == 429
        assert http.post(stub_thread.base_url + "/v1/messages", json=body).status_code == 200
    assert len(stub_thread.requests) == 2


def test_thread_start_failure_is_raised() -> None:
    """A bind failure inside the thread surfaces in the caller as StubError."""
    with (
        StubServer().running_in_thread() as first,
        pytest.raises(StubError, match="cannot listen"),
    ):
        StubServer(port=first.port).start_in_thread()


def test_stub_process_fixture(stub_process: StubProcess) -> None:  # noqa: F811
    """The child-process stub answers, and its control routes reach its queue."""
    with httpx2.Client() as http:
        http.post(stub_process.base_url + "/_stub/faults", json={"faults": ["404"]})
        body = {"model": "m", "messages": [], "max_tokens": 5}
        assert http.post(stub_process.base_url + "/v1/messages", json=body).status_code == 404
        assert http.post(stub_process.base_url + "/v1/messages", json=body).status_code == 200


def test_stub_process_reply_options() -> None:
    """CLI reply options reach the child: --text, --chunk-size and --deltas shape the stream."""
    args = ["--text", "xy", "--chunk-size", "1", "--deltas", "5"]
    with StubProcess(args) as child, httpx2.Client() as http:
        body = {"model": "m", "messages": [], "max_tokens": 5}
        message = http.post(child.base_url + "/v1/messages", json=body).json()
    assert message["content"][0]["text"] == "xyxyx"
    assert message["usage"]["output_tokens"] == 5


def test_cli_writes_port_file_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    """python -m provcfg.stub writes the port atomically, logs once (on stderr, at info), and
    SIGTERM exits 0."""
    port_file = tmp_path / "port"
    child = subprocess.Popen(
        [sys.executable, "-m", "provcfg.stub", "--port", "0", "--port-file", str(port_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PROVCFG_LOG_LEVEL": "info"},
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "no port file"
            time.sleep(0.01)
        port = int(port_file.read_text())
        assert list(tmp_path.iterdir()) == [port_file]  # the temporary file was renamed
        assert httpx2.head(f"http://127.0.0.1:{port}/").status_code == 200
        child.send_signal(signal.SIGTERM)
        stdout, stderr = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, stderr
    assert stdout == b""
    assert stderr.count(b"stub.listening") == 1
    assert f"port={port}".encode() in stderr
    assert b"Traceback" not in stderr


def test_cli_sigint_exits_0(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) stops the CLI cleanly with exit code 0."""
    with StubProcess() as child:
        assert child.process is not None
        child.process.send_signal(signal.SIGINT)
        assert child.process.wait(timeout=10) == 0


def test_cli_refuses_non_loopback_host(capsys: pytest.CaptureFixture[str]) -> None:
    """main() exits 2 for a non-loopback --host, with the fix on stderr and no traceback."""
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("provcfg stub: ")
    assert "127.0.0.1" in err


def test_cli_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """Unusable option values exit 2 with a message, never a traceback."""
    assert main(["--chunk-size", "0"]) == 2
    assert "chunk_size is out of range (0): give 1 to 65,536" in capsys.readouterr().err
    assert main(["--port", "nope"]) == 2


def test_cli_port_in_use_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """main() exits 1 when the port is taken, naming the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--port", str(port)]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


def test_stub_process_reports_a_failed_start() -> None:
    """StubProcess raises StubError with the child's stderr when the child cannot start."""
    with pytest.raises(StubError, match="only listens on loopback"):
        StubProcess(["--host", "0.0.0.0"]).start()


def test_config_validation() -> None:
    """StubConfig refuses sizes and delays that make no sense, naming the field."""
    for kwargs, field in [
        ({"chunk_size": 0}, "chunk_size"),
        ({"length": -1}, "length"),
        ({"deltas": -1}, "deltas"),
        ({"delay": -0.5}, "delay"),
        ({"text": "", "length": 3}, "text"),
        ({"scenario": "poem"}, "scenario"),
    ]:
        with pytest.raises(StubError, match=field):
            StubConfig(**kwargs)  # type: ignore[arg-type]
    assert StubConfig(text="abc", length=7).reply_text() == "abcabca"
    assert StubConfig(text="abc", deltas=2, chunk_size=2).reply_text() == "abca"
    assert StubConfig(length=0).reply_text() == ""


async def _raw_exchange(stub: StubServer, data: bytes) -> bytes:  # noqa: F811
    """Send raw bytes, half-close, and return everything the server sends back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stub.port)
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    received = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    return received


def _post(body: bytes, *, version: str = "1.1", extra: str = "") -> bytes:
    return (
        f"POST /v1/messages HTTP/{version}\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


STREAM_BODY = b'{"model":"m","max_tokens":5,"messages":[],"stream":true}'


async def test_pipelined_requests_get_two_chunked_responses(stub: StubServer) -> None:  # noqa: F811
    """Two requests sent in one write are both answered, in order, on one connection."""
    received = await _raw_exchange(stub, _post(STREAM_BODY) + _post(b'{"model":"m","messages":[]}'))
    first, second = received.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert b"transfer-encoding: chunked" in first
    assert first.endswith(b"0\r\n\r\n")
    assert b"event: message_stop" in first
    assert b"content-length: " in second
    assert b'"type":"message"' in second
    assert {r.connection for r in stub.requests} == {1}


async def test_http10_gets_a_close_delimited_stream(stub: StubServer) -> None:  # noqa: F811
    """An HTTP/1.0 client gets the SSE body unchunked, ended by closing the connection."""
    received = await _raw_exchange(stub, _post(STREAM_BODY, version="1.0"))
    head, body = received.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding" not in head
    assert b"connection: close" in head
    assert body.startswith(b"event: message_start\n")
    assert body.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


async def test_connection_close_is_honoured(stub: StubServer) -> None:  # noqa: F811
    """A request with Connection: close gets its reply and then the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stub.port)
    writer.write(_post(STREAM_BODY, extra="connection: close\r\n"))
    await writer.drain()
    received = await asyncio.wait_for(reader.read(), 10)  # returns only once the server closes
    writer.close()
    await writer.wait_closed()
    assert b"connection: close" in received
    assert received.endswith(b"0\r\n\r\n")


async def test_expect_100_continue(stub: StubServer) -> None:  # noqa: F811
    """A client that waits for 100 Continue gets it before sending its body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stub.port)
    head = _post(STREAM_BODY, extra="expect: 100-continue\r\n")[: -len(STREAM_BODY)]
    writer.write(head)
    await writer.drain()
    assert (
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        == b"HTTP/1.1 100 Continue\r\n\r\n"
    )
    writer.write(STREAM_BODY)
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()


async def test_malformed_http_gets_a_400_and_the_connection_closes(
    stub: StubServer,  # noqa: F811
) -> None:
    """Bytes that are not HTTP get a 400 JSON error, then the server closes; it serves on."""
    received = await _raw_exchange(stub, b"\x00\x01 not http at all\r\n\r\n")
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in head
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert "malformed HTTP request" in json.loads(body)["error"]["message"]
    async with httpx2.AsyncClient() as http:
        assert (await http.get(stub.base_url + "/")).status_code == 200
