"""What every pooled httpx2 client does to each response: credentials stay home, bodies stay small.

:func:`check_response` is the response event hook of every client a
:class:`~provcfg._pools.Pool` builds, so it covers every transport on the pool (the
``fast`` transport's own requests and the anthropic SDK's alike):

* **Redirects stay within one origin.** httpx2 follows redirects for the SDK (its own
  default client does too) and strips only ``Authorization`` when one leaves the
  origin, and not even that on an http -> https upgrade of the same host; ``x-api-key``
  and any other header go along. So a redirect whose target has another scheme, host
  or port raises :class:`RedirectRefused` before anything is sent there; a redirect
  within the origin is followed as usual (up to httpx2's 20).
* **A body that is not a success is capped** at :data:`ERROR_BODY_BYTES`: httpx2 (on a
  redirect) and the SDK (on an error status) read such a body whole, so one that never
  ends would grow memory without bound. The rest is cut off and the connection closed.
  Successful bodies are left alone: the providers guard their streams themselves.

:func:`no_cookies` gives the clients a cookie jar that keeps nothing: a pool is shared
by providers of different servers and keys, and cookies are not scoped by port.

:func:`mark_request` is the request hook: while a provider waits for an answer it sets
:data:`ON_SEND` (this module's one piece of global state, a context variable: it is
per task, so concurrent requests never see each other's), and the hook asks httpcore2
(its ``trace`` extension) to call it back once the request has a connection and its
headers start going out. That is when a first-byte limit starts to count: time spent
queued for a free connection is bounded by the request's deadline, not by it.
"""

from __future__ import annotations

import http.cookiejar
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any, Final

import httpx2

from provcfg._errors import ProvcfgError
from provcfg._manifest import mask_url

__all__ = [
    "ERROR_BODY_BYTES",
    "ON_SEND",
    "RedirectRefused",
    "check_response",
    "mark_request",
    "no_cookies",
    "trace_sending",
]

ERROR_BODY_BYTES: Final = 1024 * 1024
"""Most of a redirect or error body that is read (1 MiB; an API error body is ~200 bytes)."""


ON_SEND: ContextVar[Callable[[], None] | None] = ContextVar("provcfg_on_send", default=None)
"""Called (in the task that sends) when a request's headers start going out on a connection."""


async def mark_request(request: httpx2.Request) -> None:
    """The request hook: trace the request's sending when someone waits for it (cheap
    otherwise: one context-variable read)."""
    if ON_SEND.get() is not None:
        request.extensions["trace"] = trace_sending


async def trace_sending(name: str, info: dict[str, Any]) -> None:
    """An httpcore2 ``trace`` extension: call :data:`ON_SEND` once the request's headers
    start going out, then stop tracing the request."""
    if name.endswith("send_request_headers.started"):
        request = info.get("request")
        if request is not None:  # nothing later in this request needs tracing
            request.extensions.pop("trace", None)
        callback = ON_SEND.get()
        if callback is not None:
            callback()


class RedirectRefused(ProvcfgError):
    """A server redirected a request to another origin; nothing was sent there.

    ``status`` is the redirect's HTTP status and ``target`` the URL it pointed at, whole
    (it may hold a password: messages show it through :func:`~provcfg._manifest.mask_url`,
    as ``str()`` of this error does).
    """

    def __init__(self, status: int, target: str) -> None:
        self.status = status
        self.target = target
        super().__init__(
            f"the server redirected (HTTP {status}) to another origin, {mask_url(target)}; "
            "credentials are never sent across origins, so the redirect was not followed; "
            "point the client at the final URL"
        )


async def check_response(response: httpx2.Response) -> None:
    """The response hook: refuse a redirect that leaves the origin, cap a non-2xx body.

    Raises:
        RedirectRefused: the response redirects to another scheme, host or port.
    """
    if response.status_code < 300:
        return
    if response.has_redirect_location:
        target = _redirect_target(response)
        if target is not None and target.origin != response.request.url.origin:
            raise RedirectRefused(response.status_code, str(target))
    response.stream = _CappedBody(response.stream, ERROR_BODY_BYTES)


def _redirect_target(response: httpx2.Response) -> httpx2.URL | None:
    """Where a redirect points, resolved as httpx2 resolves it; None when httpx2 cannot
    parse the ``Location`` (it raises its own error for that)."""
    request = response.request
    try:
        url = httpx2.URL(response.headers["location"])
        if url.scheme and not url.host:
            url = url.copy_with(host=request.url.host)
        if url.is_relative_url:
            url = request.url.join(url)
    except Exception:
        return None
    return url


class _CappedBody(httpx2.AsyncByteStream):
    """``inner`` cut off after ``limit`` bytes (the rest is never read)."""

    def __init__(self, inner: Any, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        left = self._limit
        async for raw in self._inner:
            if len(raw) >= left:
                if left:
                    yield raw[:left]
                return
            left -= len(raw)
            yield raw

    async def aclose(self) -> None:
        """Close the wrapped stream (an unread rest closes the connection)."""
        await self._inner.aclose()


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Refuses to store or return any cookie."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def no_cookies() -> http.cookiejar.CookieJar:
    """A cookie jar that keeps nothing a server sets (pass it as ``cookies=``: httpx2 uses a
    jar as it is, while it copies a ``Cookies`` object into a jar of its own)."""
    return http.cookiejar.CookieJar(policy=_NoCookies())
