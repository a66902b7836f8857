"""Pool and SSLContextCache over real loopback sockets: sharing, limits, loops, cleanup."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx2
import pytest

from provcfg._errors import ProvcfgError, ProviderError, RuntimeClosedError
from provcfg._manifest import PoolSpec, TimeoutsSpec
from provcfg._metrics import Metrics
from provcfg._pools import Pool, SSLContextCache, map_http_error


@dataclass
class LoopbackServer:
    """A tiny keep-alive HTTP/1.1 server on 127.0.0.1 in its own thread and loop.

    ``GET /slow`` answers after ``slow_seconds`` or once ``release`` is set; anything else
    at once.
    ``connections`` counts accepted TCP connections.
    """

    slow_seconds: float = 1.0
    release: threading.Event = field(default_factory=threading.Event)
    connections: int = 0
    open_connections: int = 0
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.split(b" ", 2)[1] == b"/slow":
                    await asyncio.to_thread(self.release.wait, self.slow_seconds)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.open_connections -= 1

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        pending = asyncio.all_tasks(self._loop)
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def wait_idle(self) -> None:
        """Wait until the server has closed its side of every connection (its fds count too)."""
        for _ in range(500):
            if self.open_connections == 0:
                return
            threading.Event().wait(0.01)
        raise AssertionError(f"server still has {self.open_connections} connections open")

    def start(self) -> None:
        """Start serving; returns once the port is known."""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def stop(self) -> None:
        """Stop serving and close every connection."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(5)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A running loopback server, stopped after the test."""
    srv = LoopbackServer()
    srv.start()
    yield srv
    srv.stop()


def spec(**timeouts: float) -> PoolSpec:
    """A pool spec with the given timeouts (others at their defaults)."""
    return PoolSpec(max_connections=4, timeouts=TimeoutsSpec(**timeouts))


def open_fds() -> int:
    """Number of open descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def test_import_provcfg_does_not_import_httpx2() -> None:
    """Importing provcfg and provcfg._pools leaves httpx2 unimported (in a fresh process)."""
    import subprocess
    import sys

    code = "import sys, provcfg, provcfg._pools; print('httpx2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ssl_context_built_once_and_shared() -> None:
    """One SSLContextCache gives the identical context to every client of every pool."""
    cache = SSLContextCache()
    assert not cache.created
    metrics = Metrics()
    a = Pool("a", PoolSpec(), ssl=cache, metrics=metrics)
    b = Pool("b", PoolSpec(), ssl=cache, metrics=metrics)

    async def contexts() -> list[object]:
        seen = []
        for pool in (a, b):
            client = pool.client()
            seen.append(client._transport._pool._ssl_context)  # type: ignore[attr-defined]
            await pool.aclose()
        return seen

    seen = asyncio.run(contexts())
    assert seen[0] is seen[1] is cache.get()
    assert cache.created


def test_ssl_context_matches_httpx2_default() -> None:
    """The shared context verifies like the one httpx2 builds for a default client."""
    ctx = SSLContextCache().get()
    default = httpx2.create_ssl_context()
    assert type(ctx) is type(default)
    assert ctx.verify_mode == default.verify_mode
    assert ctx.check_hostname == default.check_hostname
    assert ctx.cert_store_stats() == default.cert_store_stats()


def test_ssl_context_concurrent_first_use_builds_one() -> None:
    """Eight threads asking at once all receive the same context object."""
    cache = SSLContextCache()
    barrier = threading.Barrier(8)
    got: list[object] = []

    def work() -> None:
        barrier.wait()
        got.append(cache.get())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8
    assert all(g is got[0] for g in got)


async def test_client_limits_timeouts_and_identity() -> None:
    """client() is one object per loop and carries the spec's timeouts; creation is timed."""
    metrics = Metrics()
    pool = Pool(
        "p", spec(connect=1.5, read=7, write=3, pool=0.25), ssl=SSLContextCache(), metrics=metrics
    )
    client = pool.client()
    assert pool.client() is client
    assert client.timeout == httpx2.Timeout(connect=1.5, read=7, write=3, pool=0.25)
    inner = client._transport._pool  # type: ignore[attr-defined]
    assert inner._max_connections == 4
    summary = metrics.summary("client_create_seconds", "p")
    assert summary is not None
    assert summary.count == 1
    await pool.aclose()


async def test_providers_on_one_pool_share_connections(server: LoopbackServer) -> None:
    """Two providers' clients from one pool reuse one TCP connection for sequential requests."""
    pool = Pool("shared", spec(), ssl=SSLContextCache(), metrics=Metrics())
    first, second = pool.client(), pool.client()  # what two providers receive
    for client in (first, second, first, second):
        response = await client.get(f"{server.url}/")
        assert response.text == "ok"
    assert server.connections == 1
    stats = pool.stats()
    assert stats["connections"] == 1
    assert stats["idle"] == 1
    assert stats["in_use"] == 0
    await pool.aclose()


async def test_exhausted_pool_maps_to_pool_exhausted(server: LoopbackServer) -> None:
    """With max_connections=1 busy, a second request fails as pool_exhausted, not timeout."""
    metrics = Metrics()
    pool = Pool(
        "tiny",
        PoolSpec(max_connections=1, timeouts=TimeoutsSpec(pool=0.05)),
        ssl=SSLContextCache(),
        metrics=metrics,
    )
    server.slow_seconds = 30  # held until released below, not raced against the 50 ms wait
    client = pool.client()
    slow = asyncio.create_task(client.get(f"{server.url}/slow"))
    while pool.stats()["in_use"] == 0:
        await asyncio.sleep(0.005)
    assert pool.stats()["clients"][0]["loop"] == "running"
    with pytest.raises(httpx2.PoolTimeout) as info:
        await client.get(f"{server.url}/")
    error = pool.map_error(info.value, provider="api")
    assert isinstance(error, ProviderError)
    assert error.kind == "pool_exhausted"
    assert error.provider == "api"
    assert "pools.tiny.max_connections" in str(error)
    assert metrics.counter("pool_exhausted", "tiny") == 1
    server.release.set()
    assert (await slow).text == "ok"
    await pool.aclose()


async def test_waiting_requests_show_in_stats(server: LoopbackServer) -> None:
    """A request queued for a connection is reported as waiting."""
    pool = Pool(
        "queue",
        PoolSpec(max_connections=1, timeouts=TimeoutsSpec(pool=5)),
        ssl=SSLContextCache(),
        metrics=Metrics(),
    )
    server.slow_seconds = 30  # held until released below, so the second stays queued
    client = pool.client()
    tasks = [asyncio.create_task(client.get(f"{server.url}/slow")) for _ in range(2)]
    while pool.stats()["waiting"] == 0:
        await asyncio.sleep(0.005)
    assert pool.stats()["in_use"] == 1
    server.release.set()
    assert [r.text for r in await asyncio.gather(*tasks)] == ["ok", "ok"]
    await pool.aclose()


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx2.PoolTimeout("x"), "pool_exhausted"),
        (httpx2.ConnectTimeout("x"), "timeout"),
        (httpx2.ReadTimeout("x"), "timeout"),
        (httpx2.WriteTimeout("x"), "timeout"),
        (httpx2.ConnectError("x"), "network"),
        (httpx2.ReadError("x"), "network"),
        (httpx2.RemoteProtocolError("x"), "network"),
        (httpx2.NetworkError("x"), "network"),
        (httpx2.UnsupportedProtocol("x"), "invalid_request"),
    ],
)
def test_map_http_error_kinds(exc: Exception, kind: str) -> None:
    """Each httpx2 transport exception maps to its documented kind."""
    error = map_http_error(exc, provider="api")
    assert error is not None
    assert error.kind == kind
    assert error.provider == "api"


def test_map_http_error_finds_wrapped_cause_and_ignores_others() -> None:
    """A wrapper raised from an httpx2 error is mapped by its cause; unrelated errors are not."""
    try:
        try:
            raise httpx2.PoolTimeout("busy")
        except httpx2.PoolTimeout as inner:
            raise RuntimeError("sdk wrapper") from inner
    except RuntimeError as outer:
        error = map_http_error(outer, provider="api")
    assert error is not None
    assert error.kind == "pool_exhausted"
    assert map_http_error(ValueError("no"), provider="api") is None


def test_two_loops_in_two_threads_get_two_clients(server: LoopbackServer) -> None:
    """One Pool used from two loops in two threads works and gives each loop its own client."""
    pool = Pool("p", spec(), ssl=SSLContextCache(), metrics=Metrics())
    clients: dict[str, httpx2.AsyncClient] = {}
    errors: list[BaseException] = []
    stop = threading.Event()
    started = threading.Barrier(3)

    def worker(tag: str) -> None:
        async def main() -> None:
            client = pool.client()
            clients[tag] = client
            assert (await client.get(f"{server.url}/")).text == "ok"
            assert pool.client() is client
            started.wait(5)
            while not stop.is_set():  # keep this loop running until the pool is closed
                await asyncio.sleep(0.01)

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    started.wait(5)
    assert clients["a"] is not clients["b"]
    stats = pool.stats()
    assert [c["loop"] for c in stats["clients"]] == ["running", "running"]
    assert stats["connections"] == 2

    async def close_from_third_loop() -> None:
        await pool.aclose()

    asyncio.run(close_from_third_loop())
    assert clients["a"].is_closed
    assert clients["b"].is_closed
    stop.set()
    for t in threads:
        t.join(5)
    assert errors == []


def test_client_outside_loop_is_a_clear_error() -> None:
    """client() from sync code says it needs a running loop."""
    pool = Pool("p", PoolSpec(), ssl=SSLContextCache(), metrics=Metrics())
    with pytest.raises(ProvcfgError, match="running event loop"):
        pool.client()


async def test_closed_pool_refuses_new_clients() -> None:
    """After aclose, client() raises RuntimeClosedError and the old client is closed."""
    pool = Pool("p", PoolSpec(), ssl=SSLContextCache(), metrics=Metrics())
    client = pool.client()
    await pool.aclose()
    assert client.is_closed
    with pytest.raises(RuntimeClosedError):
        pool.client()


async def test_client_closed_elsewhere_is_replaced() -> None:
    """A client closed by someone else (AsyncAnthropic.close()) is replaced on next use."""
    pool = Pool("p", PoolSpec(), ssl=SSLContextCache(), metrics=Metrics())
    client = pool.client()
    await client.aclose()
    fresh = pool.client()
    assert fresh is not client
    assert not fresh.is_closed
    await pool.aclose()


def test_clients_of_closed_loops_release_their_sockets(server: LoopbackServer) -> None:
    """Clients left on loops closed by asyncio.run are released without their loop, fds flat."""
    pool = Pool("p", spec(), ssl=SSLContextCache(), metrics=Metrics())

    async def use() -> None:
        assert (await pool.client().get(f"{server.url}/")).text == "ok"

    asyncio.run(use())  # warm up: imports, SSL context; its connection stays open (both ends)
    before = open_fds()
    for _ in range(20):
        asyncio.run(use())  # each run leaves a keep-alive connection on a closed loop
    stats = pool.stats()
    assert len(stats["clients"]) <= 2  # pruned as new loops arrive
    asyncio.run(pool.aclose())
    assert pool.stats()["clients"] == []
    server.wait_idle()
    assert open_fds() <= before


def test_fds_flat_across_create_use_close_cycles(server: LoopbackServer) -> None:
    """Many cycles of create pool, request, aclose leave the descriptor count flat."""
    ssl_cache = SSLContextCache()

    async def cycle() -> None:
        pool = Pool("p", spec(), ssl=ssl_cache, metrics=Metrics())
        assert (await pool.client().get(f"{server.url}/")).text == "ok"
        await pool.aclose()

    async def main() -> tuple[int, int]:
        await cycle()
        await asyncio.to_thread(server.wait_idle)
        before = open_fds()
        for _ in range(100):
            await cycle()
        await asyncio.to_thread(server.wait_idle)
        return before, open_fds()

    before, after = asyncio.run(main())
    assert after <= before
    assert server.connections == 101
