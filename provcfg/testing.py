"""The provider conformance suite: one set of tests every provider kind runs, plugins too.

Subclass :class:`ProviderConformance` in a test module (its name must start with
``Test`` so pytest collects it), give it a ``provider`` fixture and say how to make
the provider answer and fail. :func:`make_context` builds the
:class:`~provcfg._providers.base.ProviderContext` a provider needs without a Runtime::

    import pytest_asyncio
    from provcfg.testing import ProviderConformance, Request, make_context

    class TestMyKind(ProviderConformance):
        @pytest_asyncio.fixture
        async def provider(self):
            p = MyProvider(make_context(MySpec(kind="my-kind")))
            yield p
            await p.aclose()

        def text_request(self) -> Request:
            return Request("Say hello", {"model": "my-model"})

        def error_request(self) -> Request:
            return Request("x", {"model": "no-such-model"})

docs/providers.md ("Testing a provider kind") has a complete, tested example.

The suite checks: text chunks arrive before exactly one final ``result`` chunk;
``complete()`` returns the text the stream yields; usage and timings are filled
in; failures are :class:`~provcfg._errors.ProviderError` with a kind; leaving a
stream early (``break``, ``aclose()`` or task cancellation) releases what it held
and the provider keeps working; ``aclose()`` is idempotent; concurrent streams on
one provider do not mix. Override :meth:`ProviderConformance.assert_released` to
check your kind's resources (connections, processes) after an early exit.

Needs pytest and pytest-asyncio (the tests are ``async`` and marked
``pytest.mark.asyncio``; in pytest-asyncio's default strict mode, declare the async
``provider`` fixture with ``@pytest_asyncio.fixture``). Importing this module
starts, configures and imports nothing beyond pytest and provcfg's light
contract modules; importing :mod:`provcfg` never imports it.
"""

from __future__ import annotations

import asyncio
import gc
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel

from provcfg._errors import ErrorKind, ProviderError
from provcfg._metrics import Metrics
from provcfg._modeltable import ModelTable
from provcfg._providers.base import (
    Chunk,
    ClientPool,
    Provider,
    ProviderContext,
    Result,
    Timings,
    Usage,
)

if TYPE_CHECKING:
    import httpx2

__all__ = ["ProviderConformance", "Request", "make_context"]

_KINDS = frozenset(typing.get_args(ErrorKind))


@dataclass(frozen=True)
class Request:
    """One call to make: ``provider.stream(prompt, **options)``."""

    prompt: str
    options: Mapping[str, Any] = field(default_factory=dict)


def make_context(
    spec: BaseModel,
    *,
    name: str = "test",
    models: Mapping[str, str] | None = None,
    cli_path: Path | None = None,
    http_client: Callable[[], httpx2.AsyncClient] | None = None,
    pool: ClientPool | None = None,
    metrics: Metrics | None = None,
) -> ProviderContext:
    """A :class:`ProviderContext` for building a provider in a test, without a Runtime.

    ``models`` maps aliases to model ids (any other name passes through; None resolves
    to the spec's ``model`` field, if it has one). ``cli_path`` is what the provider gets
    from ``ctx.cli_path()``; ``http_client`` (a function returning the client to use) or
    ``pool`` (an object with ``name``, ``client()`` and ``map_error()``) what it gets from
    ``ctx.http_client()``; left out, calling them raises ProvcfgError. ``metrics``
    defaults to a fresh metrics hook (``ctx.metrics.snapshot()`` shows what was recorded).

    Returns:
        The context, ready for ``MyProvider(ctx)``.
    """
    default = getattr(spec, "model", None)
    table = ModelTable.of(
        name,
        dict(models or {}),
        default=default if isinstance(default, str) else None,
        any_name=True,
    )
    if pool is None and http_client is not None:
        pool = _FunctionPool(name, http_client)
    return ProviderContext(
        name=name,
        spec=spec,
        models=table,
        metrics=metrics if metrics is not None else Metrics(),
        pool=pool,
        cli=_FixedPath(cli_path) if cli_path is not None else None,
    )


@dataclass(frozen=True)
class _FixedPath:
    """A CLI lookup that always answers with one path."""

    path: Path

    def resolve(self) -> Path:
        return self.path


@dataclass(frozen=True)
class _FunctionPool:
    """A pool made of a client factory (for tests): errors are mapped without pool limits."""

    name: str
    factory: Callable[[], httpx2.AsyncClient]

    def client(self) -> httpx2.AsyncClient:
        return self.factory()

    def map_error(
        self, exc: BaseException, *, provider: str, base_url_setting: str = "the base_url"
    ) -> ProviderError | None:
        from provcfg._pools import map_http_error

        return map_http_error(exc, provider=provider, base_url_setting=base_url_setting)


async def _collect(provider: Provider, request: Request) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request.prompt, **request.options)]


async def _settle() -> None:
    # An abandoned async generator is closed by the event loop's asyncgen finalizer hook,
    # as a task scheduled when the generator is collected: let that happen.
    gc.collect()
    for _ in range(50):
        await asyncio.sleep(0.01)


def _text(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if c.type == "text")


@pytest.mark.asyncio
class ProviderConformance:
    """Base class of the conformance suite; see the module docstring for how to use it."""

    #: The ``kind`` a failure of :meth:`error_request` must have (None: any kind).
    expected_error_kind: str | None = None
    #: Whether the provider reports token usage (output_tokens > 0 in the result).
    reports_usage: bool = True

    # ----------------------------------------------------------------- hooks

    @pytest.fixture
    def provider(self) -> Provider:
        """Override: a fresh provider (async fixtures welcome); close it in teardown."""
        raise NotImplementedError("define a `provider` fixture in your conformance subclass")

    def text_request(self) -> Request:
        """Override: a call that answers with text, the same text each time."""
        raise NotImplementedError("define text_request() in your conformance subclass")

    def long_request(self) -> Request:
        """A call that yields at least three chunks before its result (to leave early)."""
        return self.text_request()

    def error_request(self) -> Request:
        """Override: a call that fails with a ProviderError."""
        raise NotImplementedError("define error_request() in your conformance subclass")

    async def assert_released(self, provider: Provider) -> None:
        """Override: fail if a stream that was left early still holds a resource."""

    # ----------------------------------------------------------------- the suite

    async def test_stream_yields_text_then_one_result(self, provider: Provider) -> None:
        """Chunks are Chunk objects; text comes before exactly one result, which is last."""
        chunks = await _collect(provider, self.text_request())
        assert all(isinstance(c, Chunk) for c in chunks), f"not all Chunk objects: {chunks!r}"
        results = [i for i, c in enumerate(chunks) if c.type == "result"]
        assert results == [len(chunks) - 1], f"want one result chunk, last; got {chunks!r}"
        assert _text(chunks), f"no text chunk before the result: {chunks!r}"
        assert all(isinstance(c.text, str) for c in chunks)

    async def test_complete_text_equals_streamed_text(self, provider: Provider) -> None:
        """complete() returns a Result whose text is the joined text of a stream."""
        request = self.text_request()
        streamed = _text(await _collect(provider, request))
        result = await provider.complete(request.prompt, **request.options)
        assert isinstance(result, Result), f"complete() returned {type(result).__name__}"
        assert result.text == streamed, f"{result.text!r} != {streamed!r}"

    async def test_result_reports_usage_and_timings(self, provider: Provider) -> None:
        """The result chunk holds a Usage and Timings; usage is counted when the kind has it."""
        final = (await _collect(provider, self.text_request()))[-1]
        data = final.data or {}
        usage = data.get("usage")
        assert isinstance(usage, Usage), f"result usage is {usage!r}"
        if self.reports_usage:
            assert usage.output_tokens > 0, f"no output tokens counted: {usage!r}"
        timings = data.get("timings")
        assert isinstance(timings, Timings), f"result timings is {timings!r}"
        assert timings.total is not None and timings.total >= 0
        if timings.first_chunk is not None:
            assert 0 <= timings.first_chunk <= timings.total

    async def test_errors_are_provider_errors_with_a_kind(self, provider: Provider) -> None:
        """A failing call raises ProviderError with a kind from the error vocabulary."""
        request = self.error_request()
        with pytest.raises(ProviderError) as caught:
            await _collect(provider, request)
        assert caught.value.kind in _KINDS, f"unknown kind {caught.value.kind!r}"
        if self.expected_error_kind is not None:
            assert caught.value.kind == self.expected_error_kind, str(caught.value)
        assert str(caught.value), "the error has no message"
        with pytest.raises(ProviderError):
            await provider.complete(request.prompt, **request.options)

    async def test_break_mid_stream_releases_and_provider_still_works(
        self, provider: Provider
    ) -> None:
        """Leaving ``async for`` early frees the stream's resources; the next call works."""
        seen = 0
        async for _chunk in provider.stream(
            self.long_request().prompt, **self.long_request().options
        ):
            seen += 1
            if seen == 2:
                break
        await _settle()
        await self.assert_released(provider)
        assert _text(await _collect(provider, self.text_request()))

    async def test_aclose_of_an_open_stream_releases(self, provider: Provider) -> None:
        """Closing a stream explicitly after its first chunk releases it at once."""
        request = self.long_request()
        stream = provider.stream(request.prompt, **request.options)
        first = await stream.__anext__()
        assert isinstance(first, Chunk)
        await stream.aclose()  # type: ignore[attr-defined]
        await self.assert_released(provider)
        assert _text(await _collect(provider, self.text_request()))

    async def test_task_cancellation_mid_stream(self, provider: Provider) -> None:
        """Cancelling the task that reads a stream raises CancelledError and leaks nothing."""
        started = asyncio.Event()

        async def reader() -> None:
            request = self.long_request()
            async for _ in provider.stream(request.prompt, **request.options):
                started.set()
                await asyncio.sleep(3600)

        task = asyncio.ensure_future(reader())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _settle()
        await self.assert_released(provider)
        assert _text(await _collect(provider, self.text_request()))

    async def test_concurrent_streams_do_not_mix(self, provider: Provider) -> None:
        """Several streams at once on one provider each get the whole, unmixed answer."""
        request = self.text_request()
        expected = _text(await _collect(provider, request))
        texts = await asyncio.gather(*(_collect(provider, request) for _ in range(5)))
        assert [_text(t) for t in texts] == [expected] * 5

    async def test_aclose_is_idempotent(self, provider: Provider) -> None:
        """aclose() can be called twice without error."""
        await provider.aclose()
        await provider.aclose()
