"""One request's clock and its one report: where every kind takes its timings.

A :class:`RequestMeter` is made when a request starts. The transport calls
:meth:`~RequestMeter.connected` when the response headers arrive (API) or the process
is spawned (CLI), and :meth:`~RequestMeter.first_content` when the first content
chunk (text, thinking or tool_use) is about to be yielded: this is the one place a
first-chunk time is taken, for every kind. When the request ends the transport calls
:meth:`~RequestMeter.succeeded` or :meth:`~RequestMeter.failed`, which build the
:class:`~provcfg._providers.base.Timings` of the result and report one
:class:`~provcfg._metrics.RequestRecord`. Nothing here runs per chunk except the
caller's own ``chunks += 1``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Final

from provcfg._contract import Timings
from provcfg._metrics import RequestRecord

if TYPE_CHECKING:
    from provcfg._contract import ProviderContext, Usage
    from provcfg._metrics import Metrics

__all__ = ["RequestMeter"]

_perf: Final = time.perf_counter


class RequestMeter:
    """Times one request from its start and reports it once."""

    __slots__ = (
        "_kind",
        "_metrics",
        "_pool",
        "_provider",
        "_reported",
        "chunks",
        "connect",
        "first",
        "retries",
        "start",
    )

    def __init__(
        self,
        metrics: Metrics,
        provider: str,
        kind: str,
        pool: str | None = None,
        start: float | None = None,
    ) -> None:
        self._metrics = metrics
        self._provider = provider
        self._kind = kind
        self._pool = pool
        self._reported = False
        self.start = _perf() if start is None else start
        self.connect: float | None = None
        self.first: float | None = None
        self.chunks = 0
        self.retries = 0

    @classmethod
    def of(cls, ctx: ProviderContext) -> RequestMeter:
        """A meter for one request of the provider ``ctx`` describes, started now."""
        pool = ctx.pool.name if ctx.pool is not None else None
        return cls(ctx.metrics, ctx.name, ctx.kind, pool)

    def connected(self) -> None:
        """The response headers arrived, or the process was spawned."""
        self.connect = _perf() - self.start

    def first_content(self) -> float:
        """Take the first-chunk time now, unless already taken; returns it (seconds)."""
        first = self.first
        if first is None:
            first = self.first = _perf() - self.start
        return first

    def timings(self) -> Timings:
        """Timings so far; ``first_chunk`` is the total when no content came."""
        total = _perf() - self.start
        first = self.first if self.first is not None else total
        return Timings(connect=self.connect, first_chunk=first, total=total)

    def succeeded(self, usage: Usage | None = None, cost_usd: float | None = None) -> Timings:
        """Report a complete answer; returns the Timings for its ``result`` chunk."""
        timings = self.timings()
        self._report(None, timings.first_chunk, timings.total or 0.0, usage, cost_usd)
        return timings

    def fail(self, exc: BaseException) -> BaseException:
        """Report the request as ended by ``exc``; return the exception to raise.

        A ProviderError is reported with its kind and loses its ``__cause__`` and
        ``__context__`` (a transport exception there could carry request headers);
        leaving early (GeneratorExit, cancellation) is ``cancelled`` unless the answer
        was already reported whole; anything else is ``internal``. Raise the result
        outside the ``except`` block, so that Python does not chain a context again.
        """
        from provcfg._errors import ProviderError

        if isinstance(exc, ProviderError):
            self.failed(exc.kind)
            exc.__cause__ = exc.__context__ = None
            exc.__suppress_context__ = True
        elif isinstance(exc, GeneratorExit | asyncio.CancelledError):
            self.failed("cancelled")
        else:
            self.failed("internal")
        return exc

    def failed(self, error_kind: str) -> None:
        """Report a request that ended with ``error_kind`` (``"cancelled"``: the caller left)."""
        self._report(error_kind, self.first, _perf() - self.start, None, None)

    def _report(
        self,
        error_kind: str | None,
        first: float | None,
        total: float,
        usage: Usage | None,
        cost_usd: float | None,
    ) -> None:
        if self._reported:
            return
        self._reported = True
        self._metrics.record_request(
            RequestRecord(
                provider=self._provider,
                kind=self._kind,
                pool=self._pool,
                ok=error_kind is None,
                error_kind=error_kind,
                connect_s=self.connect,
                first_chunk_s=first,
                total_s=total,
                chunks=self.chunks,
                retries=self.retries,
                input_tokens=usage.input_tokens if usage is not None else 0,
                output_tokens=usage.output_tokens if usage is not None else 0,
                cost_usd=cost_usd,
            )
        )

    @property
    def reported(self) -> bool:
        """Whether the request was already reported."""
        return self._reported
