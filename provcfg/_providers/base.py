"""What every provider kind builds on: :class:`BaseProvider` and the one stream tracker.

Every provider kind (built-in or plugin) implements
:class:`~provcfg._contract.Provider`; the Runtime builds instances through a
:class:`~provcfg._kinds.ProviderKind` and hands each a
:class:`~provcfg._contract.ProviderContext`: plain data (its spec, its model table,
its HTTP pool, its CLI lookup and the metrics hook), never the Runtime itself.
:class:`BaseProvider` gives a kind ``complete()``, lazy preparation and in-flight
counting; :func:`metered` is the one place a stream is tracked and reported (first
content chunk, chunks, outcome) through a :class:`~provcfg._providers._meter.RequestMeter`.
The contract types are re-exported here for the implementations' convenience.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from provcfg._contract import (
    CONTENT_TYPES,
    Chunk,
    ChunkType,
    ClientPool,
    CliSource,
    Provider,
    ProviderContext,
    Result,
    Session,
    Timings,
    Usage,
)
from provcfg._errors import ProviderError, RuntimeClosedError
from provcfg._kinds import (
    BUILTIN_KINDS,
    ENTRY_POINT_GROUP,
    KindRegistry,
    ProviderFactory,
    ProviderKind,
)
from provcfg._modeltable import ModelTable
from provcfg._providers._meter import RequestMeter
from provcfg._providers._window import Limit, LimitPassed

if TYPE_CHECKING:
    pass

__all__ = [
    "BUILTIN_KINDS",
    "CONTENT_TYPES",
    "ENTRY_POINT_GROUP",
    "BaseProvider",
    "Chunk",
    "ChunkType",
    "CliSource",
    "ClientPool",
    "KindRegistry",
    "ModelTable",
    "Provider",
    "ProviderContext",
    "ProviderFactory",
    "ProviderKind",
    "Result",
    "Session",
    "Timings",
    "Usage",
    "fold",
    "metered",
]


class BaseProvider:
    """Shared behaviour: ``complete()`` built on ``stream()``; subclasses implement ``stream``.

    ``stream()`` must end with exactly one ``result`` chunk whose ``data`` holds
    ``usage`` (a :class:`Usage`), and optionally ``cost_usd``, ``stop_reason``,
    ``session_id``, ``model`` and ``timings`` (a :class:`Timings`).
    """

    kind: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap a subclass's ``stream`` once, so every kind gets the same guarantees.

        The wrapper (one async-generator layer, ~50 ns per chunk) refuses a closed
        provider, runs lazy initialization on first use, counts in-flight streams
        (a reload closes a provider only once they finish), reports the request once
        through a :class:`RequestMeter` (first content chunk, total, outcome) and always
        closes the inner generator, so breaking out of ``async for`` or cancelling the
        task reaches the transport (connection released, process group killed).
        """
        super().__init_subclass__(**kwargs)
        impl = cls.__dict__.get("stream")
        if cls.__dict__.get("tracks_streams", False):
            return
        if impl is not None and not getattr(impl, "_provcfg_wrapped", False):
            cls.stream = _tracked(impl)  # type: ignore[method-assign]

    tracks_streams: ClassVar[bool] = False
    """Set True in a kind whose stream generators do the wrapper's work themselves:
    :meth:`_enter_stream` first, a :class:`RequestMeter` from ``self.ctx.meter()``
    reported on every exit, and :meth:`_exit_stream` in their ``finally``. It then gets
    no wrapper layer, saving one async-generator hop per chunk on the hottest paths
    (the built-in kinds do this). Plugins can leave it False."""

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.name = ctx.name
        self.spec = ctx.spec
        self._closed = False
        self._inflight = 0
        self._prepared = False
        self._prepare_lock = threading.Lock()
        self._prepare_future: concurrent.futures.Future[None] | None = None

    async def _enter_stream(self, deadline: float | None = None) -> None:
        """Start of a stream: refuse a closed provider, count it, initialize lazily.

        The stream is counted before the first ``await``, so a close that is waiting
        for this instance to go idle cannot slip in between. ``deadline``
        (``time.perf_counter`` scale) bounds the wait for a lazy initialization; the
        initialization goes on in its thread for the next stream.

        Raises:
            RuntimeClosedError: the provider was closed.
            LimitPassed: ``deadline`` passed while the provider was still initializing.
        """
        if self._closed:
            raise RuntimeClosedError(
                f"provider {self.name!r} was closed (removed or changed by a reload, or its "
                "runtime closed); get it again with rt.provider()"
            )
        self._inflight += 1
        if not self._prepared:
            try:
                await self._initialize_within(deadline)
            except BaseException:
                self._inflight -= 1
                raise

    async def _initialize_within(self, deadline: float | None) -> None:
        """:meth:`initialize`, given up with :class:`LimitPassed` once ``deadline`` passes."""
        if deadline is None:
            await self.initialize()
            return
        limit = Limit()
        limit.start_at(limit.loop_time() + max(deadline - time.perf_counter(), 0.0))
        try:
            await self.initialize()
        except asyncio.CancelledError:
            if limit.stop():
                raise LimitPassed from None
            raise
        finally:
            limit.stop()

    def _exit_stream(self) -> None:
        """End of a stream that :meth:`_enter_stream` counted (call it in ``finally``)."""
        self._inflight -= 1

    def stream(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        cwd: str | Path | None = None,
        timeout: float | None = None,
        **kind_options: Any,
    ) -> AsyncIterator[Chunk]:
        """Yield chunks as they arrive (subclasses implement this)."""
        raise NotImplementedError

    async def complete(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        cwd: str | Path | None = None,
        timeout: float | None = None,
        **kind_options: Any,
    ) -> Result:
        """Run ``stream()`` to the end and fold the chunks into a :class:`Result`."""
        return await fold(
            self.stream(
                prompt,
                model=model,
                system=system,
                max_tokens=max_tokens,
                cwd=cwd,
                timeout=timeout,
                **kind_options,
            )
        )

    def session(
        self,
        *,
        cwd: str | Path | None = None,
        model: str | None = None,
        system: str | None = None,
        **kind_options: Any,
    ) -> Session:
        """A conversation with one live agent; kinds with sessions override this.

        Raises:
            ProviderError: ``invalid_request``: this kind has no sessions.
        """
        raise ProviderError(
            f"provider {self.name!r}: kind {self.kind or type(self).__name__} has no sessions; "
            "send the whole conversation with each request, or use a kind that has them "
            "(claude-code, opencode, codex, anthropic-api)",
            kind="invalid_request",
            provider=self.name,
        )

    def prepare(self) -> None:
        """Heavy synchronous one-time set-up; override it (CLI detection, ``import anthropic``).

        The Runtime calls it in ``load()`` for ``init: eager``, in a worker thread for
        ``init: background``, and :meth:`initialize` runs it (in a thread, once) for
        ``init: lazy`` on first use. It must not create event-loop-bound objects (HTTP
        clients): those are made per loop on first use.

        Raises:
            ProvcfgError: for example CLINotFoundError when the CLI is missing.
        """

    async def initialize(self) -> None:
        """Run :meth:`prepare` once, off the event loop; concurrent callers share one run.

        A failed run is not remembered: the next call tries again.
        """
        if not self._prepared:
            await asyncio.to_thread(self.prepare_now)

    def prepare_now(self) -> None:
        """Run :meth:`prepare` synchronously unless it already succeeded.

        Callers arriving while another thread runs it wait for that run and get its
        result or its exception; they do not run it again one after another.
        """
        if self._prepared:
            return
        with self._prepare_lock:
            future = self._prepare_future
            owner = future is None
            if future is None:
                future = self._prepare_future = concurrent.futures.Future()
        if not owner:
            future.result()
            return
        try:
            self.prepare()
        except BaseException as exc:
            with self._prepare_lock:
                self._prepare_future = None
            future.set_exception(exc)
            raise
        self._prepared = True
        future.set_result(None)

    @property
    def inflight(self) -> int:
        """Streams of this provider that have started and not yet finished."""
        return self._inflight

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran."""
        return self._closed

    async def wait_idle(self, poll: float = 0.01) -> None:
        """Return once no stream of this provider is running (any thread or loop)."""
        # Streams may run on other loops or threads, so no single asyncio.Event fits.
        while self._inflight:  # noqa: ASYNC110
            await asyncio.sleep(poll)

    async def aclose(self) -> None:
        """Mark closed; subclasses release their resources and call this."""
        self._closed = True


async def fold(chunks: AsyncIterator[Chunk]) -> Result:
    """Read a stream to its end and fold its chunks into a :class:`Result`."""
    start = time.perf_counter()
    parts: list[str] = []
    tool_uses: list[Mapping[str, Any]] = []
    final: Mapping[str, Any] = {}
    first: float | None = None
    async for chunk in chunks:
        if first is None:
            first = time.perf_counter() - start
        if chunk.type == "text":
            parts.append(chunk.text)
        elif chunk.type == "tool_use" and chunk.data is not None:
            tool_uses.append(chunk.data)
        elif chunk.type == "result" and chunk.data is not None:
            final = chunk.data
    timings = final.get("timings")
    if not isinstance(timings, Timings):
        timings = Timings(first_chunk=first, total=time.perf_counter() - start)
    usage = final.get("usage")
    return Result(
        text="".join(parts),
        usage=usage if isinstance(usage, Usage) else Usage(),
        cost_usd=final.get("cost_usd"),
        stop_reason=final.get("stop_reason"),
        session_id=final.get("session_id"),
        model=final.get("model"),
        timings=timings,
        tool_uses=tuple(tool_uses),
    )


async def metered(
    provider: BaseProvider, meter: RequestMeter, open_stream: Callable[[], AsyncIterator[Chunk]]
) -> AsyncIterator[Chunk]:
    """Run ``open_stream()`` as one tracked request of ``provider``: what every stream gets.

    Refuses a closed provider and initializes a lazy one (:meth:`BaseProvider._enter_stream`),
    counts the stream in flight, takes the first-content time and counts chunks on
    ``meter``, reports the request once (success with the result's usage and cost, the
    ProviderError's kind, or ``cancelled`` when the caller stops reading), and always
    closes the inner generator, so leaving early reaches the transport.
    """
    failure: BaseException | None = None
    try:
        await provider._enter_stream()
    except BaseException as exc:  # a closed provider; lazy initialization failed (no CLI, ...)
        failure = meter.fail(exc)
    if failure is not None:
        raise failure  # outside the except block: nothing gets chained to it
    final: Mapping[str, Any] | None = None
    inner = open_stream()
    try:
        async for chunk in inner:
            meter.chunks += 1
            if meter.first is None and chunk.type in CONTENT_TYPES:
                meter.first_content()
            elif chunk.type == "result":
                final = chunk.data or {}
            yield chunk
    except BaseException as exc:
        # Left after the result chunk: the answer is whole; the finally reports it.
        whole = final is not None and isinstance(exc, GeneratorExit | asyncio.CancelledError)
        failure = exc if whole else meter.fail(exc)
    finally:
        provider._exit_stream()
        if not meter.reported:
            _report_end(meter, final)
        aclose = getattr(inner, "aclose", None)
        if aclose is not None:
            await aclose()
    if failure is not None:
        raise failure  # outside the except block: nothing gets chained to it


def _report_end(meter: RequestMeter, final: Mapping[str, Any] | None) -> None:
    if final is None:
        meter.failed("stream_incomplete")
        return
    usage = final.get("usage")
    cost = final.get("cost_usd")
    meter.succeeded(
        usage if isinstance(usage, Usage) else None,
        float(cost) if isinstance(cost, int | float) else None,
    )


def _tracked(impl: Callable[..., AsyncIterator[Chunk]]) -> Callable[..., AsyncIterator[Chunk]]:
    @functools.wraps(impl)
    def stream(self: BaseProvider, prompt: str, **kwargs: Any) -> AsyncIterator[Chunk]:
        return metered(self, RequestMeter.of(self.ctx), lambda: impl(self, prompt, **kwargs))

    stream._provcfg_wrapped = True  # type: ignore[attr-defined]
    return stream
