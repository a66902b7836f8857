"""HTTP connection pools: one httpx2 ``AsyncClient`` per pool spec per event loop.

A :class:`Pool` materializes one ``pools:`` entry. Every provider naming the pool
gets the same client (so they share connections), but only within one event
loop: an httpx2 client's connections are bound to the loop that opened them, so
:meth:`Pool.client` keeps one client per running loop and creates it on first
use there. All clients of a Runtime use one ``ssl.SSLContext`` from
:class:`SSLContextCache` (building one costs ~15 ms; it is the bulk of creating a
client), built exactly as httpx2 builds its default (``httpx2.create_ssl_context()``:
``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, else the system store, via
truststore on macOS and Windows), so behaviour equals a default client.

Transport failures are translated in one place, :func:`map_http_error`, into
:class:`~provcfg._errors.ProviderError` kinds; waiting longer than
``timeouts.pool`` (by default: the request's own deadline) for a free connection is
``pool_exhausted``, never a plain timeout, says how many requests were queued, and is
counted in the metrics (``pool_exhausted``/pool name).

Credentials never cross origins. Every client follows redirects within the origin
of the request, as the anthropic SDK's own default client does, and refuses one to
another origin (scheme, host or port) before anything is sent there: a response hook
(:mod:`provcfg._poolhooks`) raises ``RedirectRefused``, which the providers turn into a
ProviderError naming the target and the fix. httpx2 itself strips only
``Authorization`` on such a redirect (not ``x-api-key``, and not on an http -> https
upgrade), so the hook is what keeps every transport's credentials home. The same hook
caps the body of every answer that is not a success (1 MiB): an error body is read
whole, so a server that never ends one could otherwise grow memory without bound.
The clients keep no cookies: a pool is
shared by providers of different servers and keys, and a cookie set by one server
would otherwise be sent to every other port of the same host.

Closing (:meth:`Pool.aclose`) reaches every loop's client:

* the current loop's client is awaited;
* a client of another loop that is still running is closed on that loop
  (``run_coroutine_threadsafe``) and awaited from here;
* a client of a loop that is closed, or stopped and not running, cannot run
  coroutines any more. Its sockets are closed synchronously instead: for each
  pooled connection the asyncio transport is detached from the (dead) selector
  and its socket closed, through asyncio's private ``_call_connection_lost``
  (guarded; if the internals differ, the sockets are left to the garbage
  collector, which closes them with a ``ResourceWarning``). Entries of closed
  loops are also released whenever a new loop's client is created, so a
  long-lived Pool used from many short-lived loops (repeated ``asyncio.run``)
  holds at most the live loops, not every loop it ever saw.

httpx2 is imported inside the functions that need it: ``import provcfg`` stays cheap.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from provcfg._errors import ErrorKind, ProvcfgError, ProviderError, RuntimeClosedError
from provcfg._logs import get_logger
from provcfg._manifest import PoolSpec
from provcfg._metrics import Metrics

if TYPE_CHECKING:
    import httpx2

__all__ = ["Pool", "SSLContextCache", "map_http_error"]

_log = get_logger(__name__)

# How long aclose() waits for another running loop to close its client.
_FOREIGN_CLOSE_TIMEOUT: Final = 5.0
# Exception chains are short; the bound only guards against pathological cycles.
_CHAIN_LIMIT: Final = 8
_TEXT_LIMIT: Final = 200


class SSLContextCache:
    """Builds one ``ssl.SSLContext`` on first use and hands the same one to every client.

    Thread-safe: the first callers build under a lock (re-checking inside it),
    later callers read one attribute.
    """

    def __init__(self) -> None:
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def get(self) -> ssl.SSLContext:
        """Return the shared context, building it on the first call (~15 ms).

        Returns:
            The context httpx2 would build for ``verify=True``.
        """
        context = self._context
        if context is not None:
            return context
        with self._lock:
            if self._context is None:
                import httpx2

                self._context = httpx2.create_ssl_context()
            return self._context

    @property
    def created(self) -> bool:
        """Whether the context has been built yet."""
        return self._context is not None


class Pool:
    """One ``pools:`` entry: a client per event loop, shared by the providers naming it."""

    def __init__(
        self, name: str, spec: PoolSpec, *, ssl: SSLContextCache, metrics: Metrics
    ) -> None:
        self.name = name
        self.spec = spec
        self._ssl = ssl
        self._metrics = metrics
        # Keyed by the loop object itself: a plain dict lookup (~50 ns) on the hot path;
        # entries of closed loops are released on the slow path, so they cannot pile up.
        self._clients: dict[asyncio.AbstractEventLoop, httpx2.AsyncClient] = {}
        self._owners: dict[asyncio.AbstractEventLoop, str] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def metrics(self) -> Metrics:
        """The metrics hook the pool reports to."""
        return self._metrics

    def client(self) -> httpx2.AsyncClient:
        """Return this pool's client for the running event loop, creating it on first use.

        Returns:
            An ``httpx2.AsyncClient`` with the pool's limits and timeouts and the
            shared SSL context; the same object for every call from this loop.

        Raises:
            ProvcfgError: called outside a running event loop.
            RuntimeClosedError: the pool has been closed.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ProvcfgError(
                f"pool {self.name!r}: client() needs a running event loop "
                "(an HTTP client belongs to the loop it was created in); call it from async code"
            ) from None
        client = self._clients.get(loop)
        # A client closed behind our back (AsyncAnthropic.close() closes the http_client
        # it was given) is replaced rather than failing every later request.
        if client is not None and not client.is_closed:
            return client
        return self._create(loop)

    def _create(self, loop: asyncio.AbstractEventLoop) -> httpx2.AsyncClient:
        with self._lock:
            if self._closed:
                raise RuntimeClosedError(f"pool {self.name!r} is closed; load a new runtime")
            client = self._clients.get(loop)
            if client is not None and not client.is_closed:
                return client
            dead = self._take_dead_loops_locked()
            start = time.perf_counter()
            client = self._build_client()
            elapsed = time.perf_counter() - start
            self._clients[loop] = client
            self._owners[loop] = threading.current_thread().name
        self._metrics.observe("client_create_seconds", elapsed, self.name)
        for stale in dead:
            _release_without_loop(stale)
        _log.debug("pool_client_created", pool=self.name, loops=len(self._clients), seconds=elapsed)
        return client

    def _build_client(self) -> httpx2.AsyncClient:
        import httpx2

        from provcfg._poolhooks import check_response, mark_request, no_cookies

        spec = self.spec
        t = spec.timeouts
        return httpx2.AsyncClient(
            limits=httpx2.Limits(
                max_connections=spec.max_connections,
                max_keepalive_connections=spec.max_keepalive_connections,
                keepalive_expiry=spec.keepalive_expiry,
            ),
            timeout=httpx2.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            verify=self._ssl.get(),
            # The anthropic SDK's own default client follows redirects; the client it is
            # handed instead does the same within one origin, and refuses any other.
            follow_redirects=True,
            event_hooks={"request": [mark_request], "response": [check_response]},
            cookies=no_cookies(),
        )

    def _take_dead_loops_locked(self) -> list[httpx2.AsyncClient]:
        dead = [loop for loop in self._clients if loop.is_closed()]
        taken = [self._clients.pop(loop) for loop in dead]
        for loop in dead:
            self._owners.pop(loop, None)
        return taken

    async def aclose(self) -> None:
        """Close every client of every loop; later ``client()`` calls raise.

        The current loop's client is awaited, other running loops close theirs
        and are awaited (up to 5 s each), and clients of loops that no longer
        run have their sockets closed synchronously (see the module docstring).
        Never raises for a client that fails to close; it is logged.
        """
        with self._lock:
            self._closed = True
            entries = list(self._clients.items())
            self._clients.clear()
            self._owners.clear()
        current = asyncio.get_running_loop()
        for loop, client in entries:
            try:
                if loop is current:
                    await client.aclose()
                elif loop.is_running() and not loop.is_closed():
                    future = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
                    await asyncio.wait_for(asyncio.wrap_future(future), _FOREIGN_CLOSE_TIMEOUT)
                else:
                    _release_without_loop(client)
            except Exception as exc:  # one stubborn client must not keep the others open
                _log.warning("pool_client_close_failed", pool=self.name, error=repr(exc))

    def stats(self) -> dict[str, Any]:
        """Pool state for the metrics gauges, as plain JSON-serializable data.

        Returns:
            ``{"pool", "max_connections", "connections", "in_use", "idle", "waiting",
            "clients": [{"thread", "loop", "connections", "in_use", "idle",
            "waiting"}]}``; ``loop`` is ``running``, ``idle`` or ``closed``. The
            numbers come from httpcore2's private pool state; if that is not
            readable, a client reports ``{"thread", "loop", "error"}`` instead.
        """
        with self._lock:
            entries = [
                (loop, client, self._owners.get(loop, "")) for loop, client in self._clients.items()
            ]
        clients: list[dict[str, Any]] = []
        totals = {"connections": 0, "in_use": 0, "idle": 0, "waiting": 0}
        for loop, client, owner in entries:
            state = "closed" if loop.is_closed() else "running" if loop.is_running() else "idle"
            row: dict[str, Any] = {"thread": owner, "loop": state}
            try:
                counts = _client_counts(client)
            except Exception as exc:  # private internals changed: report what we can
                row["error"] = type(exc).__name__
            else:
                row.update(counts)
                for k in totals:
                    totals[k] += counts[k]
            clients.append(row)
        return {
            "pool": self.name,
            "max_connections": self.spec.max_connections,
            **totals,
            "clients": clients,
        }

    def queued(self) -> int | None:
        """Requests of the running loop's client waiting for a connection right now, or
        None when that cannot be read (no client on this loop, httpcore2 internals changed)."""
        try:
            client = self._clients.get(asyncio.get_running_loop())
            return None if client is None else _client_counts(client)["waiting"]
        except Exception:
            return None

    def map_error(
        self, exc: BaseException, *, provider: str, base_url_setting: str = "the base_url"
    ) -> ProviderError | None:
        """:func:`map_http_error` with this pool's name and limits in the message and metrics."""
        return map_http_error(exc, provider=provider, pool=self, base_url_setting=base_url_setting)

    def __repr__(self) -> str:
        return f"<Pool {self.name!r} clients={len(self._clients)} closed={self._closed}>"


# --------------------------------------------------------------------------- pool internals


def _connection_pools(client: httpx2.AsyncClient) -> Iterator[Any]:
    """httpcore2 pools behind a client: its transport and any proxy mounts (private API)."""
    transports = [getattr(client, "_transport", None)]
    transports.extend(getattr(client, "_mounts", {}).values())
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is not None:
            yield pool


def _client_counts(client: httpx2.AsyncClient) -> dict[str, int]:
    counts = {"connections": 0, "in_use": 0, "idle": 0, "waiting": 0}
    for pool in _connection_pools(client):
        for conn in list(pool.connections):
            if conn.is_closed():
                continue
            counts["connections"] += 1
            counts["idle" if conn.is_idle() else "in_use"] += 1
        counts["waiting"] += sum(1 for r in list(pool._requests) if r.is_queued())
    return counts


def _asyncio_transports(client: httpx2.AsyncClient) -> Iterator[Any]:
    """The asyncio transports under a client's pooled connections (all private API).

    Path: httpcore2 connection -> HTTP/1.1 or HTTP/2 connection -> AnyIOStream ->
    anyio TLSStream (for https) -> anyio SocketStream -> asyncio transport.
    """
    for pool in _connection_pools(client):
        for conn in list(pool.connections):
            inner = getattr(conn, "_connection", conn)
            stream = getattr(getattr(inner, "_network_stream", None), "_stream", None)
            stream = getattr(stream, "transport_stream", stream)
            transport = getattr(stream, "_transport", None)
            if isinstance(transport, asyncio.BaseTransport):
                yield transport


def _release_without_loop(client: httpx2.AsyncClient) -> int:
    """Close the sockets of a client whose loop no longer runs; returns how many."""
    released = 0
    for transport in _asyncio_transports(client):
        sock = getattr(transport, "_sock", None)
        if sock is None:  # already closed by asyncio
            continue
        try:
            loop = getattr(transport, "_loop", None)
            if loop is not None and not loop.is_closed():
                # A stopped-but-open loop still has the fd in its selector; drop it there
                # so a later socket reusing the number is not confused with this one.
                loop._remove_reader(sock.fileno())
                loop._remove_writer(sock.fileno())
            transport._closing = True
            transport._call_connection_lost(None)
        except Exception as exc:
            # connection_lost may wake waiters on the dead loop and fail doing so; the
            # socket is closed in asyncio's finally clause regardless.
            _log.debug("pool_release_partial", error=repr(exc))
        if getattr(transport, "_sock", None) is None:
            released += 1
    if released:
        _log.debug("pool_released_without_loop", sockets=released)
    return released


# --------------------------------------------------------------------------- error mapping


def _find_http_error(exc: BaseException) -> BaseException | None:
    """The first httpx2 transport exception in ``exc``'s cause/context chain.

    The anthropic SDK wraps httpx2 errors (``APITimeoutError`` from ``PoolTimeout``),
    so the original is looked for along ``__cause__`` and ``__context__``.
    """
    httpx2 = sys.modules.get("httpx2")
    if httpx2 is None:  # nothing imported it, so no httpx2 exception can exist
        return None
    from provcfg._poolhooks import RedirectRefused

    transport_error: tuple[type[BaseException], ...] = (httpx2.TransportError, RedirectRefused)
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < _CHAIN_LIMIT:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, transport_error):
            return current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def map_http_error(
    exc: BaseException,
    *,
    provider: str,
    pool: Pool | None = None,
    base_url_setting: str = "the base_url",
) -> ProviderError | None:
    """Translate an httpx2 transport exception into a :class:`ProviderError`.

    ``PoolTimeout`` becomes ``pool_exhausted`` (saying how many requests were queued
    and how to size the pool); a :class:`~provcfg._poolhooks.RedirectRefused` becomes
    ``invalid_request``; ``ConnectTimeout``,
    ``ReadTimeout`` and ``WriteTimeout`` become ``timeout``; connection, read,
    write, protocol and proxy errors become ``network``; ``UnsupportedProtocol``
    and ``LocalProtocolError`` (a bad URL or request built here) become
    ``invalid_request``. The exception may also be one that wraps an httpx2
    error (the anthropic SDK's ``APIConnectionError``/``APITimeoutError``). With
    ``pool`` given, the message names the pool and its limits, and an exhausted
    pool is counted as ``pool_exhausted``/pool name in the metrics.
    ``base_url_setting`` names the setting a network failure's fix points at
    (``providers.api.base_url``).

    Returns:
        The error to raise (without chaining: the original could carry request
        headers), or None when ``exc`` holds no httpx2 transport exception.
    """
    found = _find_http_error(exc)
    if found is None:
        return None
    import httpx2

    from provcfg._poolhooks import RedirectRefused

    name = type(found).__name__
    where = f"pools.{pool.name}" if pool is not None else "pools.<pool>"
    timeouts = pool.spec.timeouts if pool is not None else None
    kind: ErrorKind
    if isinstance(found, RedirectRefused):
        return ProviderError(
            message=str(found),
            kind="invalid_request",
            provider=provider,
            status=found.status,
            details={"exception": name, "pool": pool.name if pool is not None else None},
        )
    if isinstance(found, httpx2.PoolTimeout):
        kind = "pool_exhausted"
        message = _exhausted_message(pool, where)
        if pool is not None:
            pool._metrics.incr("pool_exhausted", pool.name)
    elif isinstance(found, httpx2.TimeoutException):
        kind = "timeout"
        phase = {"ConnectTimeout": "connect", "ReadTimeout": "read", "WriteTimeout": "write"}
        setting = phase.get(name, "read")
        after = f" after {getattr(timeouts, setting):g}s" if timeouts is not None else ""
        message = f"{setting} timed out{after} ({name}); raise {where}.timeouts.{setting}"
    elif isinstance(found, httpx2.UnsupportedProtocol | httpx2.LocalProtocolError):
        kind = "invalid_request"
        message = f"{name}: {_short(found)}; check the provider's base_url"
    else:
        kind = "network"
        message = (
            f"{name}: {_short(found)}; check {base_url_setting} and that the server is reachable"
        )
    return ProviderError(
        message=message,
        kind=kind,
        provider=provider,
        details={"exception": name, "pool": pool.name if pool is not None else None},
    )


def _exhausted_message(pool: Pool | None, where: str) -> str:
    """What an exhausted pool says: its size, how long it waited, the queue, how to size it."""
    size = f" {pool.spec.max_connections}" if pool is not None else ""
    limit = pool.spec.timeouts.pool if pool is not None else None
    waited = (
        f"within {where}.timeouts.pool ({limit:g}s)"
        if limit is not None
        else "before the request's deadline"
    )
    queued = pool.queued() if pool is not None else None
    queue = f"; {queued} more request{'s were' if queued != 1 else ' was'} queued" if queued else ""
    return (
        f"all{size} connections of the pool were busy and none came free {waited}{queue}. "
        f"A streamed answer holds its connection until it ends, so {where}.max_connections "
        "must be at least the number of requests running at once (the default is 1000); "
        f"raise it, give the requests a longer timeout, or lower concurrency"
    )


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."
