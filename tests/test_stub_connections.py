"""Connection-level limits: a large listen backlog, body and head caps, slow and stalled clients."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import time
from collections.abc import Iterator

import httpx2
import pytest

from provcfg.stub import StubProcess, StubServer
from provcfg.stub.server import DEFAULT_BACKLOG, DEFAULT_MAX_BODY_SIZE, somaxconn

CLIENTS = 400
BODY = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"stream":true}'
REQUEST = (
    b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%b" % (len(BODY), BODY)
)


def _connect_all(
    port: int, count: int, *, enough: int, settle: float = 0.0
) -> tuple[list[socket.socket], int]:
    """Start ``count`` non-blocking connects; return the sockets and how many completed.

    Polls until ``enough`` have completed (at most 20 s), then ``settle`` seconds more
    so that any further connection the kernel would queue is counted too.
    """
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        sockets.append(sock)
    pending = {s.fileno(): s for s in sockets}
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + 20
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            poller.unregister(fd)
            del pending[fd]
        if count - len(pending) >= enough:
            deadline = min(deadline, time.monotonic() + settle)
    return sockets, count - len(pending)


@pytest.fixture
def paused_stub() -> Iterator[StubProcess]:
    """A stub process; tests may SIGSTOP it (it is always continued before it is reaped)."""
    with StubProcess() as child:
        try:
            yield child
        finally:
            assert child.process is not None
            os.kill(child.process.pid, signal.SIGCONT)


def _read_all(sock: socket.socket, deadline: float) -> bytes:
    sock.setblocking(True)
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def test_400_clients_connecting_at_once_are_all_queued_and_answered(
    paused_stub: StubProcess,
) -> None:
    """With the server frozen, 400 connects all complete (backlog); thawed, all get full replies."""
    process = paused_stub.process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)  # nothing is accepted: only the backlog holds them
    sockets, connected = _connect_all(paused_stub.port, CLIENTS, enough=CLIENTS)
    try:
        assert connected == CLIENTS, f"only {connected} of {CLIENTS} connections were queued"
        for sock in sockets:
            sock.setblocking(True)
            sock.sendall(REQUEST)
        os.kill(process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        replies = [_read_all(sock, deadline) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    complete = [r for r in replies if r.startswith(b"HTTP/1.1 200 ") and r.endswith(b"0\r\n\r\n")]
    assert len(complete) == CLIENTS
    assert all(b"event: message_stop" in r for r in complete)


def test_backlog_option_sets_the_queue_length() -> None:
    """--backlog 8 holds back most of 60 connects to a frozen server (the default holds 400)."""
    with StubProcess(["--backlog", "8"]) as child:
        assert child.process is not None
        os.kill(child.process.pid, signal.SIGSTOP)
        try:
            sockets, connected = _connect_all(child.port, 60, enough=8, settle=0.5)
            for sock in sockets:
                sock.close()
        finally:
            os.kill(child.process.pid, signal.SIGCONT)
    assert 8 <= connected <= 30


def test_backlog_defaults_and_is_capped_by_somaxconn() -> None:
    """The default backlog is 4096 capped by the kernel's somaxconn; a smaller one is kept."""
    cap = somaxconn()
    expected = min(DEFAULT_BACKLOG, cap) if cap else DEFAULT_BACKLOG
    assert StubServer().backlog == expected
    assert StubServer(backlog=16).backlog == 16
    assert StubServer().max_body_size == DEFAULT_MAX_BODY_SIZE == 32 * 1024 * 1024


async def _exchange(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Send ``data`` and read until the server closes (at most 30 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
        await writer.wait_closed()


def _split(received: bytes) -> tuple[bytes, dict[str, object]]:
    head, body = received.split(b"\r\n\r\n", 1)
    assert b"connection: close" in head
    return head, json.loads(body)


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/v1/messages", "anthropic"),
        ("/v1/responses", "openai"),
        ("/v1/chat/completions", "openai"),
    ],
)
async def test_declared_body_over_the_cap_gets_413_before_it_is_sent(path: str, shape: str) -> None:
    """A Content-Length above max_body_size is refused with 413 at once, in the API's shape."""
    async with StubServer(max_body_size=4096) as server:
        head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000\r\n\r\n".encode()
        received = await _exchange(server.port, head)
    status, body = _split(received)
    assert status.startswith(b"HTTP/1.1 413 ")
    error = body["error"]
    assert isinstance(error, dict)
    assert "max_body_size of 4,096 bytes" in error["message"]
    if shape == "anthropic":
        assert error["type"] == "request_too_large"
    else:
        assert set(error) == {"message", "type", "param", "code"}


async def test_chunked_body_over_the_cap_gets_413() -> None:
    """A chunked body is counted as it arrives and refused once it passes the cap."""
    async with StubServer(max_body_size=4096) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        received = b""
        for _ in range(100):  # 100 KiB offered; the reply must come long before
            writer.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
            await writer.drain()
            try:
                received += await asyncio.wait_for(reader.read(65536), 0.2)
            except TimeoutError:
                continue
            if received:
                break
        received += await asyncio.wait_for(reader.read(), 30)
        writer.close()
    assert received.startswith(b"HTTP/1.1 413 ")


async def test_sdk_style_client_sees_the_413() -> None:
    """A client that sends its whole oversized body first still reads the 413 (no reset)."""
    async with StubServer(max_body_size=65536) as server, httpx2.AsyncClient() as http:
        big = {"model": "m", "messages": [{"role": "user", "content": "x" * 200_000}]}
        response = await http.post(server.base_url + "/v1/messages", json=big)
        after = await http.post(
            server.base_url + "/v1/messages", json={"model": "m", "messages": []}
        )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert after.status_code == 200
    assert len(server.requests) == 1  # the refused request is not routed


async def test_a_head_over_16_kib_gets_431() -> None:
    """A request head beyond 16 KiB is refused with 431 instead of buffering it."""
    async with StubServer() as server:
        head = b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 20_000 + b"\r\n\r\n"
        received = await _exchange(server.port, head)
    status, body = _split(received)
    assert status.startswith(b"HTTP/1.1 431 ")
    error = body["error"]
    assert isinstance(error, dict)
    assert "16,384 bytes" in error["message"]


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x01 not http at all\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 1" + b"0" * 5000 + b"\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{",
    ],
)
async def test_malformed_requests_get_an_error_reply_then_close(data: bytes) -> None:
    """Malformed or truncated requests get a 4xx JSON reply and a close; the server serves on."""
    async with StubServer() as server:
        received = await _exchange(server.port, data, half_close=True)
        async with httpx2.AsyncClient() as http:
            assert (await http.get(server.base_url + "/")).status_code == 200
    status, body = _split(received)
    assert status.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 413 "))
    assert "error" in body


async def test_a_slowloris_client_gets_408() -> None:
    """A client trickling its head byte by byte gets 408 once request_timeout has passed."""
    async with StubServer(request_timeout=0.5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)

        async def trickle() -> None:
            for byte in b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-slow: " + b"z" * 1000:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)

        sender = asyncio.create_task(trickle())
        try:
            received = await asyncio.wait_for(reader.read(), 30)
        finally:
            sender.cancel()
            writer.close()
    status, _ = _split(received)
    assert status.startswith(b"HTTP/1.1 408 ")


async def test_an_idle_connection_is_closed_quietly() -> None:
    """A connection that sends nothing, or idles after a reply, is closed without a reply."""
    async with StubServer(idle_timeout=0.3) as server:
        assert await _exchange(server.port, b"") == b""
        keep_alive = REQUEST.replace(b"connection: close\r\n", b"")
        received = await _exchange(server.port, keep_alive)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith(b"0\r\n\r\n")  # the whole reply, then the close
    assert received.count(b"HTTP/1.1") == 1


def test_a_client_that_stops_reading_is_let_go() -> None:
    """A client that stops reading a long stream is cut off after idle_timeout, not waited for."""
    body = json.dumps({"model": "stub-deltas-9000000", "messages": [], "stream": True}).encode()
    request = b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%b" % (
        len(body),
        body,
    )
    server = StubServer(idle_timeout=0.5)
    with server.running_in_thread(), socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills up sooner
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(request)
        while not server.requests:
            time.sleep(0.05)
        time.sleep(3.0)  # not reading: the server's buffers fill and its drain times out
        sock.settimeout(30)
        total, tail = 0, b""
        try:
            while chunk := sock.recv(1 << 20):
                total += len(chunk)
                tail = (tail + chunk)[-16:]
        except ConnectionResetError:
            pass  # the server aborted the connection, dropping what it had buffered
    assert 0 < total < 72_000_000  # far from the whole 72 MB stream
    assert not tail.endswith(b"0\r\n\r\n")
