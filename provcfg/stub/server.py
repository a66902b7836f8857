"""The loopback HTTP/1.1 server: h11 over asyncio streams, keep-alive, chunked streaming.

h11 does the HTTP parsing and framing (a well-kept library rather than a hand-written
parser); this module moves bytes. Streamed replies go out frame by frame for the
first few frames (so the first delta is never held back), then in ~64 KiB batches
(so a 100,000-delta stream costs the stub little), or frame by frame with a sleep
when a delay is configured. :class:`StubServer` runs in the caller's event loop
(``async with``) or in a thread of its own (``running_in_thread``).
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
import structlog

from provcfg.stub.config import StubConfig, StubError, check_loopback
from provcfg.stub.routes import RecordedRequest, Router
from provcfg.stub.wire import Reply

__all__ = ["StubServer"]

log = structlog.get_logger(__name__)

_READ_SIZE = 65536
_BATCH = 65536
_EAGER_FRAMES = 8  # written one by one, so first-chunk latency never waits for a batch
_SERVER_HEADER = ("server", "provcfg-stub")


def _reason(status: int) -> bytes:
    if status == 529:
        return b"Overloaded"
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


class StubServer:
    """A loopback Anthropic/OpenAI-compatible API server for tests and benchmarks.

    Use ``async with StubServer() as stub:`` in the event loop that should host it, or
    ``with StubServer().running_in_thread() as stub:`` to give it a loop and thread of
    its own. ``port=0`` picks a free port; read it back from ``stub.port``.

    Raises:
        StubError: ``host`` is not a loopback address (at construction).
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, config: StubConfig | None = None
    ) -> None:
        """Prepare (not start) a server on ``host``:``port`` replying as ``config`` says."""
        self.host = check_loopback(host)
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
        conn = h11.Connection(h11.SERVER)
        try:
            while await self._one_exchange(conn, number, reader, writer):
                conn.start_next_cycle()
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
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    writer.write(
                        conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
                    )
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
        reply = self._router.route(
            method, request.target.decode("latin-1"), request.headers, b"".join(body), number
        )
        finished = await self._write(conn, reader, writer, reply, head_only=method == "HEAD")
        return finished and conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _write(
        self,
        conn: h11.Connection,
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
        headers = [_SERVER_HEADER, *reply.headers]
        if reply.frames is None:
            headers.append(("content-length", str(len(reply.body))))
        reason = _reason(reply.status)
        response = h11.Response(status_code=reply.status, headers=headers, reason=reason)
        writer.write(conn.send(response) or b"")
        if head_only:
            writer.write(conn.send(h11.EndOfMessage()) or b"")
            await writer.drain()
            return True
        if reply.frames is None:
            if reply.end == "complete":
                writer.write(conn.send(h11.Data(data=reply.body)) or b"")
                writer.write(conn.send(h11.EndOfMessage()) or b"")
            elif reply.end == "drop":
                writer.write(reply.body[: len(reply.body) // 2])
        else:
            await self._stream(conn, writer, reply)
        await writer.drain()
        if reply.end == "hang":
            await _until_client_leaves(reader)
        return reply.end == "complete"

    @staticmethod
    async def _stream(conn: h11.Connection, writer: asyncio.StreamWriter, reply: Reply) -> None:
        assert reply.frames is not None
        frames = reply.frames
        delay = reply.delay
        for frame in itertools.islice(frames, _EAGER_FRAMES):
            writer.write(conn.send(h11.Data(data=frame)) or b"")
            await writer.drain()
            if delay:
                await asyncio.sleep(delay)
        if delay:
            for frame in frames:
                writer.write(conn.send(h11.Data(data=frame)) or b"")
                await writer.drain()
                await asyncio.sleep(delay)
        else:
            batch: list[bytes] = []
            size = 0
            for frame in frames:
                batch.append(frame)
                size += len(frame)
                if size >= _BATCH:
                    writer.write(conn.send(h11.Data(data=b"".join(batch))) or b"")
                    batch.clear()
                    size = 0
                    await writer.drain()
            if batch:
                writer.write(conn.send(h11.Data(data=b"".join(batch))) or b"")
        if reply.end == "complete":
            writer.write(conn.send(h11.EndOfMessage()) or b"")


async def _until_client_leaves(reader: asyncio.StreamReader) -> None:
    """Wait, reading and discarding, until the client closes its end."""
    while await reader.read(_READ_SIZE):
        pass
