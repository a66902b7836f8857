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

Hostile or broken clients cost bounded memory and time: a request head over 16 KiB
gets 431, a body over ``max_body_size`` 413 (before it is read, when its length is
declared), malformed HTTP 400, a request not complete within ``request_timeout`` of
its first byte 408; a keep-alive connection idle for ``idle_timeout`` is closed, and
so is one whose client stops reading a reply for that long. Each refusal is a JSON
error in the API's shape, then the connection closes. The listen backlog is large
(4096, capped by the kernel's ``somaxconn``) so that hundreds of clients connecting
at once are queued, not dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import h11

from provcfg._logs import get_logger
from provcfg.stub.config import StubConfig, StubError, check_loopback, check_number
from provcfg.stub.routes import RecordedRequest, Router
from provcfg.stub.wire import Reply

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_REQUEST_TIMEOUT",
    "StubServer",
    "somaxconn",
]

log = get_logger(__name__)

_READ_SIZE = 65536
_BATCH = 65536
_FIRST_BATCH = 2048
# asyncio pauses a writer above this many buffered bytes (its default high-water mark).
_HIGH_WATER = 65536
_MAX_HEAD = 16 * 1024  # h11's default; Node's default header limit is the same
_LINGER = 2.0  # seconds a refused client may keep sending before the connection closes
_SOMAXCONN = Path("/proc/sys/net/core/somaxconn")

DEFAULT_BACKLOG = 4096
DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024  # the Messages API's own request limit
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 300.0
MAX_TIMEOUT = 86_400.0
MAX_BODY_LIMIT = 1024 * 1024 * 1024


def somaxconn() -> int | None:
    """Return the kernel's cap on a listen backlog (Linux ``somaxconn``), or ``None`` if unknown."""
    try:
        return int(_SOMAXCONN.read_text())
    except (OSError, ValueError):
        return None


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

    ``backlog``: connections the kernel queues before the server accepts them (1-65535,
    capped by ``somaxconn``). ``max_body_size``: request body bytes (1 KiB-1 GiB; larger
    gets 413). ``request_timeout``: seconds from a request's first byte to its last
    (larger gets 408). ``idle_timeout``: seconds a keep-alive connection may wait for
    its next request, or a client may stop reading a reply, before it is closed.

    Raises:
        StubError: ``host`` is not a loopback address, or ``port``, ``backlog``, a size or
            a timeout is out of its range (at construction).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        config: StubConfig | None = None,
        *,
        backlog: int = DEFAULT_BACKLOG,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        """Prepare (not start) a server on ``host``:``port`` replying as ``config`` says."""
        self.host = check_loopback(host)
        # Checked here: asyncio reports an out-of-range port as OverflowError at bind time.
        if not 0 <= port <= 65535:
            raise StubError(f"port {port} is out of range; give 1-65535, or 0 for any free port")
        check_number("backlog", backlog, 1, 65535, " connections")
        check_number("max_body_size", max_body_size, 1024, MAX_BODY_LIMIT, " bytes")
        check_number("request_timeout", request_timeout, 0.001, MAX_TIMEOUT, " seconds")
        check_number("idle_timeout", idle_timeout, 0.001, MAX_TIMEOUT, " seconds")
        cap = somaxconn()
        self.backlog = min(backlog, cap) if cap else backlog
        self.max_body_size = max_body_size
        self.request_timeout = float(request_timeout)
        self.idle_timeout = float(idle_timeout)
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

    def set_default_fault(
        self, spec: str | None, *, rate: float = 1.0, path: str | None = None
    ) -> None:
        """Apply ``spec`` to every API request (or a share ``rate`` of them) until cleared.

        The slow/recover switch of a running server: ``set_default_fault("headers-delay-2")``
        makes each reply wait 2 s for its headers, ``set_default_fault(None)`` makes the
        stub fast again. ``rate`` (0 < rate <= 1) picks a deterministic share of requests
        (``"529", rate=0.25``: every fourth request is overloaded); ``path`` limits it to
        paths starting with that prefix. Per-request directives still apply on top. The
        same as ``POST /_stub/default-fault``; safe to call from any thread.

        Raises:
            StubError: ``spec`` is not in the grammar, or ``rate`` is not in (0, 1].
        """
        self._router.default_fault.set(spec, rate=rate, path=path)

    @property
    def default_fault(self) -> dict[str, object] | None:
        """Return the default fault (``spec``, ``rate``, ``path``), or ``None`` when none is set."""
        return self._router.default_fault.describe()

    def reset(self) -> None:
        """Forget recorded requests, drop queued faults and clear the default fault."""
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
                self._serve,
                self.host,
                self._requested_port,
                limit=_READ_SIZE,
                backlog=self.backlog,
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
                conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
                if unread or closed:
                    conn.receive_data(unread)
                    if closed:
                        conn.receive_data(b"")
                if not await self._one_exchange(
                    conn, number, reader, writer, task, begun=bool(unread)
                ):
                    break
                unread, closed = conn.trailing_data
        except TimeoutError:
            # The client stopped reading for idle_timeout: drop what is buffered for it,
            # or closing would wait for it to read again.
            writer.transport.abort()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # server shutdown
        except Exception as exc:  # a stub bug: this connection ends, the server goes on
            log.warning("stub.connection_error", error=type(exc).__name__)
            writer.transport.abort()
        finally:
            writer.close()
            # Closing waits for buffered bytes to reach a client that may never read
            # them: give it idle_timeout, then drop them. The task stays in _tasks until
            # here, so aclose() can cancel it too.
            try:
                async with asyncio.timeout(self.idle_timeout):
                    await writer.wait_closed()
            except TimeoutError:
                writer.transport.abort()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                self._tasks.discard(task)

    async def _one_exchange(
        self,
        conn: h11.Connection,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[None],
        *,
        begun: bool,
    ) -> bool:
        """Serve one request; return whether the connection stays open for another."""
        # One timer per request, not asyncio.timeout(): a plain call_at costs a third as
        # much, and the stub's per-request CPU is the floor of every benchmark.
        loop = asyncio.get_running_loop()
        incoming = _Incoming(loop.time(), begun)
        first = min(self.idle_timeout, self.request_timeout)
        incoming.timer = loop.call_at(incoming.started + first, self._watch, task, incoming)
        try:
            refusal = await self._receive(conn, reader, writer, incoming)
        except asyncio.CancelledError:
            if not incoming.expired or task.uncancel() > 0:
                raise  # the server is shutting down
            if not incoming.begun:
                return False  # idle keep-alive connection: close it quietly
            refusal = self._refusal(
                408,
                f"the request was not complete within {self.request_timeout:g} s of its "
                "first byte (request_timeout)",
                incoming,
            )
        except (h11.RemoteProtocolError, ValueError) as exc:
            hint = getattr(exc, "error_status_hint", 400)
            problem = "too large" if hint == 431 else "malformed"
            refusal = self._refusal(
                hint,
                f"{problem} HTTP request ({str(exc)[:120]}); the head holds at most "
                f"{_MAX_HEAD:,} bytes",
                incoming,
            )
        finally:
            incoming.timer.cancel()
        if refusal is not None:
            await self._refuse(refusal, reader, writer)
            return False
        request = incoming.request
        if request is None:  # the client closed the connection
            return False
        method = request.method.decode("ascii", "replace")
        headers = list(request.headers)  # h11's Headers iterates slowly: once, here
        target = request.target.decode("latin-1")
        reply = self._router.route(method, target, headers, b"".join(incoming.body), number)
        framing = _Framing.for_request(request.http_version, headers)
        finished = await self._write(framing, reader, writer, reply, head_only=method == "HEAD")
        return finished and framing.keep_alive

    def _watch(self, task: asyncio.Task[None], incoming: _Incoming) -> None:
        """Timer callback: end the wait for a request that is overdue, or re-arm.

        Overdue: no byte within idle_timeout, or not complete within request_timeout of
        its first byte. The timer first fires at the earlier of the two limits and is
        re-armed for the later one only when the wait gets that long.
        """
        if incoming.begun:
            due = incoming.begun_at + self.request_timeout
        else:
            due = incoming.started + self.idle_timeout
        loop = asyncio.get_running_loop()
        if loop.time() < due:
            incoming.timer = loop.call_at(due, self._watch, task, incoming)
            return
        incoming.expired = True
        task.cancel()

    async def _receive(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        incoming: _Incoming,
    ) -> Reply | None:
        """Read one request into ``incoming``; return a refusal if it must not be served."""
        continued = False
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue and not continued:
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    continued = True
                data = await reader.read(_READ_SIZE)
                if data and not incoming.begun:
                    # The first byte: from now on the whole request has request_timeout.
                    incoming.begun = True
                    incoming.begun_at = asyncio.get_running_loop().time()
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                incoming.request = event
                # h11 bounds a head that arrives in pieces; one read may bring a whole
                # larger one, so its size is checked here as well.
                if _head_size(event) > _MAX_HEAD:
                    return self._refusal(
                        431, f"the request head is larger than {_MAX_HEAD:,} bytes", incoming
                    )
                declared = _content_length(event.headers)
                if declared is not None and declared > self.max_body_size:
                    return self._too_large(incoming, declared)
            elif isinstance(event, h11.Data):
                incoming.size += len(event.data)
                if incoming.size > self.max_body_size:
                    return self._too_large(incoming, incoming.size)
                incoming.body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return None
            else:  # ConnectionClosed or PAUSED: the client is done with this connection
                incoming.request = None
                return None

    def _too_large(self, incoming: _Incoming, size: int) -> Reply:
        return self._refusal(
            413,
            f"the request body ({size:,} bytes or more) is larger than the stub's "
            f"max_body_size of {self.max_body_size:,} bytes",
            incoming,
        )

    def _refusal(self, status: int, message: str, incoming: _Incoming) -> Reply:
        request = incoming.request
        target = request.target.decode("latin-1") if request is not None else None
        return self._router.refusal(status, message, target)

    async def _refuse(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Send ``reply`` and close: first let the client finish sending, for a while.

        Closing with unread bytes in the socket would reset the connection and the
        client could lose the reply, so input is read and dropped for up to _LINGER s.
        """
        framing = _Framing(chunked=False, keep_alive=False)
        writer.write(framing.head(reply.status, reply.headers, len(reply.body)) + reply.body)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_LINGER):
                await _until_client_leaves(reader)

    async def _drain(self, writer: asyncio.StreamWriter) -> None:
        """Wait for the client to take what was written; at most ``idle_timeout`` when it stalls."""
        if writer.transport.get_write_buffer_size() <= _HIGH_WATER:
            await writer.drain()  # not paused: returns at once
            return
        async with asyncio.timeout(self.idle_timeout):
            await writer.drain()

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
        await self._drain(writer)
        if reply.end == "hang" and not head_only:
            await _until_client_leaves(reader)
        return head_only or (reply.end == "complete" and framing.chunked)

    async def _stream(
        self, framing: _Framing, writer: asyncio.StreamWriter, reply: Reply, out: list[bytes]
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
                await self._drain(writer)
                if delay:
                    await asyncio.sleep(delay)
        if batch:
            out.append(chunk(b"".join(batch)))
        if reply.end == "complete" and framing.chunked:
            out.append(b"0\r\n\r\n")
        if out:
            writer.write(b"".join(out))


class _Incoming:
    """What one request has delivered so far, and the timer watching it."""

    __slots__ = ("begun", "begun_at", "body", "expired", "request", "size", "started", "timer")

    def __init__(self, started: float, begun: bool) -> None:
        self.started = started
        self.begun = begun
        self.begun_at = started
        self.expired = False
        self.request: h11.Request | None = None
        self.body: list[bytes] = []
        self.size = 0
        self.timer: asyncio.TimerHandle


def _head_size(request: h11.Request) -> int:
    return len(request.target) + sum(len(n) + len(v) + 4 for n, v in request.headers.raw_items())


def _content_length(headers: h11._headers.Headers) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            # h11 checked it is digits; a very long one is larger than any limit.
            return int(value) if len(value) <= 18 else 1 << 62
    return None


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
