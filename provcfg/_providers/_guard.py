"""A guard on a response's byte stream: the request's deadline and a cap on one event's size.

Both anthropic-api transports read the response through :class:`GuardedStream`, put in
place as the response's ``stream`` before the first byte of the body is read (the SDK
reads ``response.aiter_bytes()`` too, so its own SSE decoder sits behind the guard).
On every network read it checks the request's total deadline, so a server that
trickles bytes without ever completing an event cannot outlast ``timeout``; and it
counts the bytes since the last event boundary (a blank line, also one split across
two reads), so a server that never ends an event cannot grow memory past the cap
(:data:`MAX_EVENT_BYTES` unless the spec's ``max_event_bytes`` says otherwise). The
checks run per network read, never per event or chunk. A server that sends nothing at
all is the read timeout's business: the provider caps it by the time left.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Final

import httpx2

__all__ = ["MAX_EVENT_BYTES", "GuardedStream", "guard"]

MAX_EVENT_BYTES: Final = 8 * 1024 * 1024
"""Largest single SSE event accepted (8 MiB; a Messages API event is a few hundred bytes)."""

_perf: Final = time.perf_counter
_LINE_ENDS: Final = (b"\n", b"\r")


def _last_boundary(raw: bytes) -> int:
    """Index of the last byte of the last blank line in ``raw`` (an SSE event boundary), or -1."""
    lf = raw.rfind(b"\n\n")
    crlf = raw.rfind(b"\n\r\n")
    cr = raw.rfind(b"\r\r")
    return max(lf + 1 if lf >= 0 else -1, crlf + 2 if crlf >= 0 else -1, cr + 1 if cr >= 0 else -1)


def _joined_boundary(before: bytes, raw: bytes) -> int:
    """End of a blank line that starts in ``before`` (the last bytes of the previous read)
    and ends in ``raw``, as an index into ``raw``; or -1."""
    end = _last_boundary(before + raw[:2])
    return end - len(before) if end >= len(before) else -1


class GuardedStream(httpx2.AsyncByteStream):
    """``inner`` with a deadline (``time.perf_counter`` scale) and an event-size cap.

    ``on_deadline`` and ``on_oversize`` build the exceptions to raise (ProviderErrors
    naming the provider and the fix).
    """

    def __init__(
        self,
        inner: httpx2.AsyncByteStream,
        *,
        deadline: float | None,
        on_deadline: Callable[[], Exception],
        on_oversize: Callable[[int], Exception],
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self._inner = inner
        self._deadline = deadline
        self._on_deadline = on_deadline
        self._on_oversize = on_oversize
        self._limit = max_event_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        deadline = self._deadline
        limit = self._limit
        pending = 0
        before = b""
        inner = self._inner.__aiter__()
        try:
            async for raw in inner:
                if deadline is not None and _perf() > deadline:
                    raise self._on_deadline()
                end = _last_boundary(raw)
                if end < 0 and before:
                    end = _joined_boundary(before, raw)
                pending = len(raw) - end - 1 if end >= 0 else pending + len(raw)
                if pending > limit:
                    raise self._on_oversize(limit)
                # A line end at the very end of a read may be half of a boundary.
                before = raw[-2:] if raw[-1:] in _LINE_ENDS else b""
                yield raw
        finally:
            # Left early (or failed): close the inner generator now, rather than leave it
            # to the garbage collector, which schedules its close through the event loop.
            if getattr(inner, "ag_frame", None) is not None:
                await inner.aclose()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        """Close the wrapped stream (the connection goes back to the pool or is closed)."""
        await self._inner.aclose()

    def __getattr__(self, name: str) -> object:
        # Whatever else the wrapped stream offers (the anthropic SDK's tracing reads a
        # ``stream_observer`` from it) stays visible through the guard.
        return getattr(self._inner, name)


def guard(
    response: httpx2.Response,
    *,
    deadline: float | None,
    on_deadline: Callable[[], Exception],
    on_oversize: Callable[[int], Exception],
    max_event_bytes: int = MAX_EVENT_BYTES,
) -> None:
    """Put a :class:`GuardedStream` in front of ``response``'s body (before reading it)."""
    inner = response.stream
    if isinstance(inner, httpx2.AsyncByteStream):
        response.stream = GuardedStream(
            inner,
            deadline=deadline,
            on_deadline=on_deadline,
            on_oversize=on_oversize,
            max_event_bytes=max_event_bytes,
        )
