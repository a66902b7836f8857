"""The loopback HTTP/1.1 server: h11 over asyncio streams, keep-alive, chunked streaming.

h11 parses the requests (a well-kept parser rather than a hand-written one: chunked
bodies, pipelining, 100-continue and malformed input are its business). Responses
are framed here, because the stub controls every byte it sends and h11's per-event
validation measured about a third of the stub's per-request CPU.

Every flush is one ``write`` (the head travels with the first frames, the end of the
body with the last ones): on loopback a system call costs far more than joining
bytes. Streamed replies go out in batches that start at 2 KiB (the first delta is
never held back for long) and grow to 64 KiB (a 100,000-delta stream costs the stub
little), or frame by frame with a sleep when a delay is configured. HTTP/1.1 bodies
are chunked and the connection kept alive; HTTP/1.0 ones end with the connection.
:class:`StubServer` runs in the caller's event loop (``async with``) or in a thread
of its own (``running_in_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import h11

from provcfg._logs import get_logger
from provcfg.stub.config import StubConfig, StubError, check_loopback
from provcfg.stub.routes import RecordedRequest, Router
from provcfg.stub.wire import Reply

__all__ = ["StubServer"]

log = get_logger(__name__)

_READ_SIZE = 65536
_BATCH = 65536
_FIRST_BATCH = 2048


def _reason(status: int) -> str:
    if status == 529:
        return "Overloaded"
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class StubServer:
    """A loopback Anthropic/OpenAI-compatible API server for tests and benchmarks.

    Use ``async with StubServer() as stub:`` in the event loop that should host it, or
    ``with StubServer().running_in_thread() as stub:`` to give it a loop and thread of
    its own. ``port=0`` picks a free port; read it back from ``stub.port``.

    Raises:
        StubError: ``host`` is not a loopback address, or ``port`` is not in 0-65535
            (at construction).
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, config: StubConfig | None = None
    ) -> None:
        """Prepare (not start) a server on ``host``:``port`` replying as ``config`` says."""
        self.host = check_loopback(host)
        # Checked here: asyncio reports an out-of-range port as OverflowError at bind time.
        if not 0 <= port <= 65535:
            raise StubError(f"port {port} is out of range; give 1-65535, or 0 for any free port")
        self._requested_port = port
        self.config = config or StubConfig()
        self._router = Router(self.config)
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_stop: asyncio.Event | None = None

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """Return the port the server listens on.

        Raises:
            StubError: the server is not started.
        """
        if self._port is None:
            raise StubError("the stub is not started: use 'async with StubServer()' or start()")
        return self._port

    @property
    def base_url(self) -> str:
        """Return ``http://HOST:PORT`` (no trailing slash, no ``/v1``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- what tests use --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Return the recorded API requests, oldest first."""
        return self._router.requests

    def enqueue_fault(self, spec: str, *, path: str | None = None, times: int = 1) -> None:
        """Make the next ``times`` API requests whose path starts with ``path`` apply ``spec``.

        ``spec`` uses the directive grammar of :mod:`provcfg.stub.faults` (``"429-retry-after-1"``,
        ``"drop-3"``, ``"thinking"``...). Safe to call from any thread.

        Raises:
            StubError: ``spec`` is not in the grammar, or ``times`` < 1.
        """
        self._router.faults.put(spec, path=path, times=times)

    def reset(self) -> None:
        """Forget recorded requests and drop queued faults."""
        self._router.reset()

    # -- lifecycle in the caller's loop -----------------------------------------------------

    async def start(self) -> None:
        """Start listening.

        Raises:
            StubError: the address cannot be bound (in use, or not available here).
        """
        if self._server is not None:
            return
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self._requested_port, limit=_READ_SIZE
            )
        except OSError as exc:
            raise StubError(
                f"cannot listen on {self.host}:{self._requested_port}: {exc.strerror or exc}; "
                "choose another port, or port 0 for any free one"
            ) from None
        self._port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        """Stop listening and end every open connection (hanging ones included)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        """Start the server and return it."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the server."""
        await self.aclose()

    # -- lifecycle in a thread of its own ----------------------------------------------------

    def start_in_thread(self, timeout: float = 10.0) -> Self:
        """Run the server in a new daemon thread with its own event loop; return once listening.

        Raises:
            StubError: the server could not start (bind failure), or did not within ``timeout``.
        """
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._thread_loop = asyncio.get_running_loop()
            self._thread_stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._thread_stop.wait()
            finally:
                await self.aclose()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name="provcfg-stub", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout):
            raise StubError(f"the stub thread did not start within {timeout} s")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a server started with :meth:`start_in_thread` and join its thread."""
        thread, loop, stop = self._thread, self._thread_loop, self._thread_stop
        if thread is None or loop is None or stop is None:
            return
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        self._thread = None

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[Self]:
        """Context manager: :meth:`start_in_thread` on entry, :meth:`stop` on exit."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop()

    # -- connections -------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        number = next(self._connections)
        unread, closed = b"", False
        try:
            while True:
                # h11 parses each request; the response is framed here (see _Framing), so
                # each request gets a fresh parser seeded with what the last one left over
                # (pipelined bytes).
                conn = h11.Connection(h11.SERVER)
                if unread or closed:
                    conn.receive_data(unread)
                    if closed:
                        conn.receive_data(b"")
                if not await self._one_exchange(conn, number, reader, writer):
                    break
                unread, closed = conn.trailing_data
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            pass  # the client went away or spoke bad HTTP: nothing to answer
        except asyncio.CancelledError:
            pass  # server shutdown
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _one_exchange(
        self,
        conn: h11.Connection,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Serve one request; return whether the connection stays open for another."""
        request: h11.Request | None = None
        body: list[bytes] = []
        continued = False
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue and not continued:
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    continued = True
                conn.receive_data(await reader.read(_READ_SIZE))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # ConnectionClosed or PAUSED: the client is done with this connection
                return False
        assert request is not None
        method = request.method.decode("ascii", "replace")
        headers = list(request.headers)  # h11's Headers iterates slowly: once, here
        target = request.target.decode("latin-1")
        reply = self._router.route(method, target, headers, b"".join(body), number)
        framing = _Framing.for_request(request.http_version, headers)
        finished = await self._write(framing, reader, writer, reply, head_only=method == "HEAD")
        return finished and framing.keep_alive

    async def _write(
        self,
        framing: _Framing,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        reply: Reply,
        *,
        head_only: bool,
    ) -> bool:
        """Write ``reply``; return ``False`` when the connection must not be reused."""
        if reply.hang_before_headers:
            await _until_client_leaves(reader)
            return False
        if reply.headers_delay:
            await asyncio.sleep(reply.headers_delay)
        length = None if reply.frames is not None else len(reply.body)
        # One write per flush: on loopback each send() costs far more than joining bytes.
        out = [framing.head(reply.status, reply.headers, length)]
        if head_only:
            pass
        elif reply.frames is None:
            out.append(
                reply.body if reply.end == "complete" else reply.body[: len(reply.body) // 2]
            )
            if reply.end != "complete":
                writer.write(b"".join(out))
                return False
        else:
            await self._stream(framing, writer, reply, out)
            out = []
        if out:
            writer.write(b"".join(out))
        await writer.drain()
        if reply.end == "hang" and not head_only:
            await _until_client_leaves(reader)
        return head_only or (reply.end == "complete" and framing.chunked)

    @staticmethod
    async def _stream(
        framing: _Framing, writer: asyncio.StreamWriter, reply: Reply, out: list[bytes]
    ) -> None:
        """Write the streamed body; ``out`` holds bytes not yet written (the head)."""
        assert reply.frames is not None
        chunk = framing.chunk
        delay = reply.delay
        batch: list[bytes] = []
        size = 0
        # The first flush is small so the first delta is never held back for long; later
        # flushes grow to _BATCH so a long stream costs few system calls.
        limit = _FIRST_BATCH
        for frame in reply.frames:
            batch.append(frame)
            size += len(frame)
            if delay or size >= limit:
                out.append(chunk(b"".join(batch)))
                writer.write(b"".join(out))
                out.clear()
                batch.clear()
                size = 0
                limit = min(limit * 4, _BATCH)
                await writer.drain()
                if delay:
                    await asyncio.sleep(delay)
        if batch:
            out.append(chunk(b"".join(batch)))
        if reply.end == "complete" and framing.chunked:
            out.append(b"0\r\n\r\n")
        if out:
            writer.write(b"".join(out))


class _Framing:
    """How one response is framed: chunked for HTTP/1.1, close-delimited for HTTP/1.0.

    Written by hand rather than through h11: the stub controls every header it sends,
    and h11's per-event validation was about a third of the stub's per-request CPU.
    """

    __slots__ = ("chunked", "keep_alive")

    def __init__(self, *, chunked: bool, keep_alive: bool) -> None:
        self.chunked = chunked
        self.keep_alive = keep_alive

    @classmethod
    def for_request(cls, version: bytes, headers: list[tuple[bytes, bytes]]) -> _Framing:
        http11 = version == b"1.1"
        close = any(name == b"connection" and b"close" in value.lower() for name, value in headers)
        return cls(chunked=http11, keep_alive=http11 and not close)

    def head(self, status: int, headers: list[tuple[str, str]], length: int | None) -> bytes:
        lines = [f"HTTP/1.1 {status} {_reason(status)}", "server: provcfg-stub"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if length is not None:
            lines.append(f"content-length: {length}")
        elif self.chunked:
            lines.append("transfer-encoding: chunked")
        else:
            self.keep_alive = False  # the body ends when the connection does
        if not self.keep_alive:
            lines.append("connection: close")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")

    def chunk(self, data: bytes) -> bytes:
        if not self.chunked:
            return data
        return b"%x\r\n%b\r\n" % (len(data), data) if data else b""


async def _until_client_leaves(reader: asyncio.StreamReader) -> None:
    """Wait, reading and discarding, until the client closes its end."""
    while await reader.read(_READ_SIZE):
        pass
