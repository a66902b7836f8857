"""The ``anthropic-api`` provider kind: the Anthropic Messages API, streamed, on a pooled client.

Two transports give the same chunks, usage and errors:

* ``sdk``: the anthropic SDK (``messages.create(stream=True)``, raw events; the
  ``messages.stream()`` helper costs about 2.3x per chunk) on the runtime's pooled
  httpx2 client, one ``AsyncAnthropic`` per provider per event loop, SDK retries off.
* ``fast``: provcfg speaks the streaming protocol itself over the same pooled client:
  :class:`~provcfg._providers._sse.SSEParser` over ``aiter_bytes()``, one ``json.loads``
  per event, text deltas forwarded without building SDK objects. It never imports
  ``anthropic`` (0.7 s).

Both share the retry policy (:mod:`provcfg._providers._retry`), the error mapping
(:mod:`provcfg._providers._api_errors`) and the message bookkeeping below, and both
raise ``stream_incomplete`` when a stream ends without ``message_stop``: the SDK on
its own returns the partial text as if it had succeeded.

Per chunk, nothing but the :class:`Chunk` is allocated: no lock, log or metrics
call. A request's total deadline (``timeout=`` or the spec's ``timeout``) caps
every httpx2 phase timeout at the time left and is checked once per network read
(``fast``) or per event (``sdk``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2
import structlog

from provcfg._errors import ProviderError
from provcfg._metrics import RequestRecord
from provcfg._providers._api_errors import ErrorMapper
from provcfg._providers._retry import RetryPolicy
from provcfg._providers._sse import SSEParser
from provcfg._providers.base import BaseProvider, Chunk, ProviderContext, Timings, Usage

if TYPE_CHECKING:
    import anthropic

__all__ = ["AnthropicApiProvider"]

log = structlog.get_logger(__name__)

_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
# How the Messages API writes a text delta: '..."delta":{"type":"text_delta","text":"..."}}'.
_TEXT_DELTA = '"delta":{"type":"text_delta","text":'
_TEXT_SKIP = len(_TEXT_DELTA)
_TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use"})
# How long the rest of a body may take after message_stop (usually it came in the same read).
_DRAIN_SECONDS = 1.0


class _Clock:
    """Per-request times, in seconds from ``start`` (perf_counter)."""

    __slots__ = ("connect", "first", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.connect: float | None = None
        self.first: float | None = None


class _Message:
    """What one streamed message accumulates besides its text: ids, usage, tool inputs."""

    __slots__ = ("id", "model", "stop_reason", "stopped", "tools", "usage")

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.stopped = False
        self.usage: dict[str, int] = {}
        self.tools: dict[int, tuple[str, str, list[str], Any]] = {}

    def add_usage(self, values: Mapping[str, Any]) -> None:
        # message_delta's counts are cumulative: the latest non-null value wins.
        for field in _USAGE_FIELDS:
            value = values.get(field)
            if value is not None:
                self.usage[field] = value

    def block_start(
        self, index: int, block_type: str, text: str, tool: tuple[str, str, Any] | None
    ) -> Chunk | None:
        if block_type in _TOOL_BLOCKS and tool is not None:
            self.tools[index] = (tool[0], tool[1], [], tool[2])
        elif text:
            return Chunk("thinking" if block_type == "thinking" else "text", text)
        return None

    def add_json(self, index: int, partial: str) -> None:
        tool = self.tools.get(index)
        if tool is not None:
            tool[2].append(partial)

    def block_stop(self, index: int) -> Chunk | None:
        tool = self.tools.pop(index, None)
        if tool is None:
            return None
        tool_id, name, parts, initial = tool
        raw = "".join(parts)
        value = json.loads(raw) if raw.strip() else (initial if initial is not None else {})
        return Chunk("tool_use", data={"id": tool_id, "name": name, "input": value})

    def result(self, clock: _Clock) -> Chunk:
        total = time.perf_counter() - clock.start
        timings = Timings(
            connect=clock.connect,
            first_chunk=clock.first if clock.first is not None else total,
            total=total,
        )
        return Chunk(
            "result",
            data={
                "usage": Usage(**self.usage),
                "stop_reason": self.stop_reason,
                "model": self.model,
                "session_id": self.id,
                "cost_usd": None,
                "timings": timings,
            },
        )


def _on_json_event(state: _Message, event: Mapping[str, Any]) -> Chunk | None:
    """Every event other than a text or thinking delta, as decoded JSON (fast transport)."""
    kind = event.get("type")
    if kind == "content_block_delta":
        delta = event["delta"]
        dtype = delta.get("type")
        if dtype == "input_json_delta":
            state.add_json(event["index"], delta["partial_json"])
        elif dtype == "text_delta":
            return Chunk("text", delta["text"])
        elif dtype == "thinking_delta":
            return Chunk("thinking", delta["thinking"])
        # signature_delta and citations_delta carry nothing a chunk reports.
    elif kind == "content_block_start":
        block = event["content_block"]
        btype = block.get("type", "")
        if btype in ("text", "thinking"):
            return state.block_start(event["index"], btype, block.get(btype) or "", None)
        if btype in _TOOL_BLOCKS:
            tool = (block.get("id", ""), block.get("name", ""), block.get("input"))
            return state.block_start(event["index"], btype, "", tool)
    elif kind == "content_block_stop":
        return state.block_stop(event["index"])
    elif kind == "message_start":
        message = event["message"]
        state.id = message.get("id")
        state.model = message.get("model")
        state.add_usage(message.get("usage") or {})
    elif kind == "message_delta":
        state.stop_reason = (event.get("delta") or {}).get("stop_reason", state.stop_reason)
        state.add_usage(event.get("usage") or {})
    elif kind == "message_stop":
        state.stopped = True
    return None


def _on_sdk_event(state: _Message, event: Any) -> Chunk | None:
    """The same as :func:`_on_json_event` for the SDK's event objects."""
    kind = event.type
    if kind == "content_block_delta":
        delta = event.delta
        if delta.type == "input_json_delta":
            state.add_json(event.index, delta.partial_json)
    elif kind == "content_block_start":
        # Only the attributes the block's type declares: a missing attribute on a pydantic
        # model raises and catches AttributeError inside getattr (~3 us each, four per
        # text block: a tenth of a short request's overhead).
        block = event.content_block
        btype = block.type
        if btype == "text":
            return state.block_start(event.index, btype, block.text, None)
        if btype == "thinking":
            return state.block_start(event.index, btype, block.thinking, None)
        if btype in _TOOL_BLOCKS:
            return state.block_start(event.index, btype, "", (block.id, block.name, block.input))
    elif kind == "content_block_stop":
        return state.block_stop(event.index)
    elif kind == "message_start":
        message = event.message
        state.id = message.id
        state.model = message.model
        state.add_usage(_sdk_usage(message.usage))
    elif kind == "message_delta":
        state.stop_reason = getattr(event.delta, "stop_reason", state.stop_reason)
        state.add_usage(_sdk_usage(event.usage))
    elif kind == "message_stop":
        state.stopped = True
    return None


def _sdk_usage(usage: Any) -> dict[str, Any]:
    return {field: getattr(usage, field, None) for field in _USAGE_FIELDS}


def _decode_body(raw: bytes) -> object:
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _drain(events: AsyncIterator[Any]) -> None:
    """Read the body's last bytes (the chunked terminator) so the connection can go back to
    the pool, as the SDK itself does; give up after :data:`_DRAIN_SECONDS`.

    The message is complete by now (``message_stop`` arrived): a server that keeps the
    body open or breaks it only costs the connection (closed with the response, not
    reused), never the answer. Without the bound, such a server turned a complete
    answer into a ``timeout`` error after the pool's whole read timeout.
    """
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in events:
                pass
    except Exception as exc:  # whatever it is, the answer is already whole
        log.debug("provider.drain_abandoned", reason=type(exc).__name__)


class AnthropicApiProvider(BaseProvider):
    """A provider of kind ``anthropic-api``; built by the Runtime as ``AnthropicApiProvider(ctx)``.

    ``stream()`` yields ``text``, ``thinking`` and ``tool_use`` chunks as they
    arrive, then one ``result`` chunk (usage, stop_reason, model, session_id = the
    message id, timings). ``kind_options`` are added to the request body as they
    are (``temperature``, ``tools``, ``thinking``, ``stop_sequences``, ``metadata``,
    or ``messages`` to send a whole conversation instead of ``prompt``).
    """

    kind = "anthropic-api"
    # The transport generators call _enter_stream/_exit_stream themselves, so no
    # wrapper generator sits between them and the caller (one hop per chunk saved).
    tracks_streams = True

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        spec: Any = ctx.spec
        self._base_url: str = spec.base_url.rstrip("/")
        self._url = self._base_url + "/v1/messages"
        self._transport: str = spec.transport
        self._pool_name: str | None = spec.pool
        self._default_max_tokens: int = spec.max_tokens
        self._timeout: float | None = spec.timeout
        self._version: str = spec.anthropic_version
        self._policy = RetryPolicy(max_retries=spec.max_retries, max_wait=spec.retry_max_wait)
        key = spec.api_key.get_secret_value() if spec.api_key is not None else None
        self._api_key: str | None = key or os.environ.get("ANTHROPIC_API_KEY") or None
        self._errors = ErrorMapper(ctx.name, self._url, (self._api_key,) if self._api_key else ())
        self._headers = {
            "x-api-key": self._api_key or "",
            "anthropic-version": self._version,
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
        self._sdk_clients: dict[
            asyncio.AbstractEventLoop, tuple[httpx2.AsyncClient, anthropic.AsyncAnthropic]
        ] = {}

    def __repr__(self) -> str:
        return f"AnthropicApiProvider(name={self.name!r}, transport={self._transport!r})"

    def prepare(self) -> None:
        """Import the anthropic SDK (about 0.7 s) for ``transport: sdk``; nothing for ``fast``."""
        if self._transport == "sdk":
            import anthropic  # noqa: F401

    async def initialize(self) -> None:
        """Prepare in place when nothing heavy is left (fast transport, SDK already imported).

        The worker-thread hop of the generic lazy path costs more than such a prepare.
        """
        if not self._prepared and (self._transport == "fast" or "anthropic" in sys.modules):
            self.prepare_now()
            return
        await super().initialize()

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
        """Stream one message; ``cwd`` is ignored (the API has no working folder).

        Returns an async iterator of ``text``, ``thinking`` and ``tool_use`` chunks,
        then one ``result`` chunk.

        Raises:
            ProviderError: kind authentication, permission, rate_limit, overloaded,
                model_not_found, invalid_request, server_error, timeout, network,
                pool_exhausted or stream_incomplete; retried first where
                :mod:`provcfg._providers._retry` allows, never after a chunk was yielded.
            RuntimeClosedError: the provider was closed.
        """
        # A plain function returning one generator: the only generator layer per chunk.
        clock = _Clock(time.perf_counter())
        model_id = self.ctx.resolve_model(model)
        total = timeout if timeout is not None else self._timeout
        limit = max_tokens if max_tokens is not None else self._default_max_tokens
        body: dict[str, Any] = {
            "model": model_id,
            "max_tokens": limit,
            "messages": [{"role": "user", "content": prompt}],
        }
        if system is not None:
            body["system"] = system
        if self._transport == "fast":
            body.update(kind_options)
            body["stream"] = True
            return self._run_fast(body, total, clock)
        if kind_options:
            body["extra_body"] = kind_options
        return self._run_sdk(body, total, clock)

    def _check(self, body: Mapping[str, Any]) -> None:
        if not body.get("model"):
            raise self._errors.make(
                "invalid_request",
                f"no model given; set providers.{self.name}.model or pass model=",
            )
        if not self._api_key:
            raise self._errors.make("authentication", "no API key is configured")

    async def _backoff(
        self, error: ProviderError, clock: _Clock, retries: int, deadline: float | None
    ) -> None:
        """Sleep before the next attempt, or raise ``error`` when the policy says stop."""
        wait = None if clock.first is not None else self._policy.delay(error, retries)
        if wait is not None and deadline is not None and time.perf_counter() + wait >= deadline:
            wait = None
        if wait is None:
            self.ctx.metrics.incr("errors", self.name)
            # Bridge until issue 8's per-request record lands here.
            self.ctx.metrics.record_request(
                RequestRecord(
                    self.name, self.kind, self._pool_name, False, error.kind, clock.connect,
                    clock.first, time.perf_counter() - clock.start, 0, retries, 0, 0, None,
                )
            )  # fmt: skip
            raise error
        self.ctx.metrics.incr("retries", self.name)
        log.info(
            "provider.retry",
            provider=self.name,
            kind=error.kind,
            status=error.status,
            attempt=retries + 1,
            wait=round(wait, 3),
        )
        await asyncio.sleep(wait)

    def _phase_timeouts(self, client: httpx2.AsyncClient, deadline: float) -> httpx2.Timeout:
        left = max(deadline - time.perf_counter(), 0.001)
        base = client.timeout

        def cap(value: float | None) -> float:
            return left if value is None else min(value, left)

        return httpx2.Timeout(
            connect=cap(base.connect),
            read=cap(base.read),
            write=cap(base.write),
            pool=cap(base.pool),
        )

    def _finish(self, state: _Message, clock: _Clock) -> Chunk:
        result = state.result(clock)
        metrics = self.ctx.metrics
        timings: Timings = result.data["timings"]  # type: ignore[index]
        if timings.connect is not None:
            metrics.observe("connect_seconds", timings.connect, self.name)
        if timings.first_chunk is not None:
            metrics.observe("first_chunk_seconds", timings.first_chunk, self.name)
        if timings.total is not None:
            metrics.observe("total_seconds", timings.total, self.name)
        metrics.incr("requests", self.name)
        # Bridge until issue 8's per-request record lands here (chunks/retries not counted yet).
        usage = result.data["usage"]  # type: ignore[index]
        metrics.record_request(
            RequestRecord(
                self.name, self.kind, self._pool_name, True, None, timings.connect,
                timings.first_chunk, timings.total or 0.0, 0, 0,
                usage.input_tokens, usage.output_tokens, None,
            )
        )  # fmt: skip
        return result

    async def _run_fast(
        self, body: dict[str, Any], total: float | None, clock: _Clock
    ) -> AsyncIterator[Chunk]:
        await self._enter_stream()
        try:
            self._check(body)
            errors = self._errors
            payload = json.dumps(body, separators=(",", ":")).encode()
            deadline = clock.start + total if total is not None else None
            perf = time.perf_counter
            start = clock.start
            loads = json.loads
            first: float | None = None
            retries = 0
            while True:
                state = _Message()
                streaming = False
                try:
                    try:
                        client = self.ctx.http_client()
                        timeout: Any = (
                            httpx2.USE_CLIENT_DEFAULT
                            if deadline is None
                            else self._phase_timeouts(client, deadline)
                        )
                        async with client.stream(
                            "POST",
                            self._url,
                            content=payload,
                            headers=self._headers,
                            timeout=timeout,
                        ) as response:
                            clock.connect = perf() - start
                            if response.status_code != 200:
                                raise errors.from_body(
                                    response.status_code,
                                    _decode_body(await response.aread()),
                                    response.headers,
                                )
                            streaming = True
                            parser = SSEParser()
                            feed = parser.feed
                            raws = response.aiter_bytes()
                            async for raw in raws:
                                if deadline is not None and perf() > deadline:
                                    raise errors.deadline(total or 0.0)
                                for event, data in feed(raw):
                                    if event == "content_block_delta":
                                        # Fast path: a text delta's JSON ends with its text
                                        # field; parse just that string, not the whole event.
                                        at = data.find(_TEXT_DELTA)
                                        if at > 0 and data.endswith("}}"):
                                            try:
                                                text = loads(data[at + _TEXT_SKIP : -2])
                                            except ValueError:
                                                text = None
                                            if text.__class__ is str:
                                                if first is None:
                                                    first = clock.first = perf() - start
                                                yield Chunk("text", text)
                                                continue
                                        parsed = loads(data)
                                        delta = parsed["delta"]
                                        dtype = delta["type"]
                                        if dtype == "text_delta":
                                            if first is None:
                                                first = clock.first = perf() - start
                                            yield Chunk("text", delta["text"])
                                        elif dtype == "thinking_delta":
                                            if first is None:
                                                first = clock.first = perf() - start
                                            yield Chunk("thinking", delta["thinking"])
                                        elif dtype == "input_json_delta":
                                            state.add_json(parsed["index"], delta["partial_json"])
                                    elif event == "error":
                                        raise errors.from_event_data(data)
                                    elif event and event != "ping":
                                        chunk = _on_json_event(state, loads(data))
                                        if chunk is not None:
                                            if first is None:
                                                first = clock.first = perf() - start
                                            yield chunk
                                        elif state.stopped:
                                            break
                                if state.stopped:
                                    break
                            if state.stopped:
                                await _drain(raws)
                            else:
                                for event, data in parser.finish():
                                    if event == "error":
                                        raise errors.from_event_data(data)
                                    if event and event != "ping":
                                        chunk = _on_json_event(state, loads(data))
                                        if chunk is not None:
                                            if first is None:
                                                first = clock.first = perf() - start
                                            yield chunk
                                if not state.stopped:
                                    cut = " mid-event" if parser.pending else ""
                                    raise errors.incomplete(
                                        f"the stream ended{cut} before message_stop"
                                    )
                    except httpx2.HTTPError as exc:
                        raise errors.from_transport(exc, streaming=streaming) from None
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        raise errors.make(
                            "server_error", f"malformed stream event ({type(exc).__name__})"
                        ) from None
                except ProviderError as error:
                    await self._backoff(error, clock, retries, deadline)
                    retries += 1
                    continue
                break
            yield self._finish(state, clock)
        finally:
            self._exit_stream()

    async def _sdk_client(self) -> tuple[httpx2.AsyncClient, anthropic.AsyncAnthropic]:
        loop = asyncio.get_running_loop()
        http = self.ctx.http_client()
        entry = self._sdk_clients.get(loop)
        if entry is not None and entry[0] is http:
            return entry
        await self.initialize()
        import anthropic

        client = anthropic.AsyncAnthropic(
            api_key=self._api_key,
            base_url=self._base_url,
            http_client=http,
            max_retries=0,
            timeout=http.timeout,
            default_headers={"anthropic-version": self._version},
        )
        # One client per live loop; entries of closed loops go (their clients went with them).
        live = {lp: e for lp, e in self._sdk_clients.items() if not lp.is_closed()}
        live[loop] = (http, client)
        self._sdk_clients = live
        return http, client

    async def _run_sdk(
        self, params: dict[str, Any], total: float | None, clock: _Clock
    ) -> AsyncIterator[Chunk]:
        await self._enter_stream()
        try:
            self._check(params)
            errors = self._errors
            deadline = clock.start + total if total is not None else None
            perf = time.perf_counter
            start = clock.start
            first: float | None = None
            retries = 0
            while True:
                state = _Message()
                streaming = False
                try:
                    try:
                        http, sdk = await self._sdk_client()
                        call = params
                        if deadline is not None:
                            call = {**params, "timeout": self._phase_timeouts(http, deadline)}
                        stream = await sdk.messages.create(**call, stream=True)
                        clock.connect = perf() - start
                        streaming = True
                        try:
                            events = stream.__aiter__()
                            async for event in events:
                                if deadline is not None and perf() > deadline:
                                    raise errors.deadline(total or 0.0)
                                if event.type == "content_block_delta":
                                    delta = event.delta
                                    dtype = delta.type
                                    if dtype == "text_delta":
                                        if first is None:
                                            first = clock.first = perf() - start
                                        yield Chunk("text", delta.text)
                                        continue
                                    if dtype == "thinking_delta":
                                        if first is None:
                                            first = clock.first = perf() - start
                                        yield Chunk("thinking", delta.thinking)
                                        continue
                                chunk = _on_sdk_event(state, event)
                                if chunk is not None:
                                    if first is None:
                                        first = clock.first = perf() - start
                                    yield chunk
                                elif state.stopped:
                                    break
                            if state.stopped:
                                await _drain(events)
                            else:
                                raise errors.incomplete("the stream ended before message_stop")
                        finally:
                            await stream.close()
                    except ProviderError:
                        raise
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        raise errors.make(
                            "server_error", f"malformed stream event ({type(exc).__name__})"
                        ) from None
                    except Exception as exc:
                        import anthropic

                        if isinstance(exc, anthropic.AnthropicError | httpx2.HTTPError):
                            raise errors.from_sdk(exc, streaming=streaming) from None
                        raise
                except ProviderError as error:
                    await self._backoff(error, clock, retries, deadline)
                    retries += 1
                    continue
                break
            yield self._finish(state, clock)
        finally:
            self._exit_stream()

    async def aclose(self) -> None:
        """Forget the SDK clients (the pooled httpx2 clients belong to the Runtime); idempotent."""
        self._sdk_clients = {}
        await super().aclose()
