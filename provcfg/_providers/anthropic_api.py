"""The ``anthropic-api`` provider kind: the Anthropic Messages API, streamed, on a pooled client.

Two transports give the same chunks, usage and errors:

* ``sdk``: the anthropic SDK (``messages.create(stream=True)``, raw events; the
  ``messages.stream()`` helper costs about 2.3x per chunk) on the runtime's pooled
  httpx2 client, one ``AsyncAnthropic`` per provider per event loop, SDK retries off.
  provcfg reads each event from the SDK's decoded JSON, without the SDK's event object
  (:func:`_read_json_events`).
* ``fast``: provcfg speaks the streaming protocol itself over the same pooled client:
  :class:`~provcfg._providers._sse.SSEParser` over ``aiter_bytes()``, one ``json.loads``
  per event, text deltas forwarded without building SDK objects. It never imports
  ``anthropic`` (0.7 s).

A request runs in two phases. **Opening** sends it and reads until the first chunk
(or the end of a message without content): this is the only phase a failure may be
retried in, by the one retry skeleton :meth:`AnthropicApiProvider._retrying` with the
per-transport part passed in (:meth:`~AnthropicApiProvider._open_fast`,
:meth:`~AnthropicApiProvider._open_sdk`). **Streaming** forwards the rest; a failure
there is raised, never retried (the caller already holds text). Both transports share
the retry policy (:mod:`provcfg._providers._retry`), the error mapping
(:mod:`provcfg._providers._api_errors`), the event checks (:mod:`provcfg._providers._messages`)
and the byte-stream guard (:mod:`provcfg._providers._guard`: the request's total
deadline on every network read, and a cap on one event's size), and both raise
``stream_incomplete`` when a stream ends without ``message_stop``: the SDK on its own
returns the partial text as if it had succeeded.

Waits, all finite by default: each attempt's wait for the response headers (and an
error body) is bounded by ``first_byte_timeout`` and by the request's total deadline
(``timeout``), so a server that accepts and never answers, or trickles its headers
byte by byte, ends in ``timeout``; after the headers, every httpx2 phase timeout is
capped by the time left and the guard checks the deadline on each read.

Credentials: a ``base_url`` with a password (``http://user:password@host``) is split
once; the URL handed to httpx2 and to the SDK carries no userinfo (their loggers print
URLs), and the user and password go as ``httpx2.BasicAuth``. Redirects stay within the
origin (the pool's hook, :mod:`provcfg._poolhooks`).

Per chunk, nothing but the :class:`Chunk` is allocated: no lock, log or metrics call.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx2

from provcfg._errors import ProviderError
from provcfg._logs import get_logger
from provcfg._poolhooks import (
    ERROR_BODY_BYTES,
    ON_SEND,
    RedirectRefused,
    mark_request,
    trace_sending,
)
from provcfg._providers._api_errors import ErrorMapper
from provcfg._providers._guard import MAX_EVENT_BYTES, guard
from provcfg._providers._messages import (
    JSON_EVENT_KINDS,
    TEXT_DELTA_PREFIX,
    MalformedEvent,
    MessageState,
    json_event,
    sdk_event,
)
from provcfg._providers._meter import RequestMeter
from provcfg._providers._retry import RetryPolicy
from provcfg._providers._sessions import HistorySession
from provcfg._providers._sse import SSEParser
from provcfg._providers._window import Limit, LimitPassed, Window
from provcfg._providers.base import BaseProvider, Chunk, ProviderContext, Usage

if TYPE_CHECKING:
    import anthropic

__all__ = ["AnthropicApiProvider"]

log = get_logger(__name__)

_TEXT_SKIP: Final = len(TEXT_DELTA_PREFIX)
# How long the rest of a body may take after message_stop (usually it came in the same read).
_DRAIN_SECONDS: Final = 1.0
# What a malformed event raises inside our parsing (turned into one ProviderError).
_MALFORMED: Final = (MalformedEvent, ValueError, KeyError, TypeError, AttributeError)
# A phase timeout this close to the deadline was capped by it (timers never fire early).
_DEADLINE_SLACK: Final = 0.01
# How far apart two times left may be and share their capped phase timeouts.
_PHASE_REUSE: Final = 0.005
# What sending a request may raise besides a ProviderError (mapped by the ErrorMapper).
_SEND_FAILURES: Final = (httpx2.HTTPError, RedirectRefused)
# A text chunk is built in the hot loops as ``_new(Chunk)`` and three slot stores: the
# same object ``Chunk("text", text)`` makes, without a Python ``__init__`` frame (about
# 0.2 us less per chunk, most of what forwarding adds to the SDK's own iteration).
_new: Final = object.__new__


def split_credentials(url: str) -> tuple[str, httpx2.BasicAuth | None]:
    """``url`` without its userinfo, and that userinfo as HTTP Basic credentials (or None)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, httpx2.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))


async def _read_error_body(response: httpx2.Response) -> bytes:
    """At most :data:`ERROR_BODY_BYTES` of an error answer's body (the rest is not read)."""
    parts: list[bytes] = []
    size = 0
    async for raw in response.aiter_bytes():
        parts.append(raw)
        size += len(raw)
        if size >= ERROR_BODY_BYTES:
            break
    return b"".join(parts)[:ERROR_BODY_BYTES]


def _decode_body(raw: bytes) -> object:
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _quick_text(data: str) -> str | None:
    """The text of a plain text delta, parsing only its string (the hot path), else None."""
    at = data.find(TEXT_DELTA_PREFIX)
    if at < 0 or not data.endswith("}}"):
        return None
    try:
        text = json.loads(data[at + _TEXT_SKIP : -2])
    except ValueError:
        return None
    return text if text.__class__ is str else None


def _sdk_events(stream: Any) -> AsyncIterator[Any]:
    """The SDK stream's events, without its pass-through layers when nothing observes it.

    ``AsyncStream.__aiter__`` re-yields each event of its inner iterator and asks for a
    tracing observer on every one (two attribute probes per event, most of what we would
    add over the SDK). With no observer there is nothing to tell: read the inner iterator
    (the SDK's own ``_iterator``) directly, and let it read the SDK's SSE decoder without
    ``_iter_events`` in between (see :func:`_skip_event_layer`). Any other shape falls
    back to ``__aiter__``.
    """
    try:
        if stream._observer is None:
            _skip_event_layer(stream)
            inner: AsyncIterator[Any] = stream._iterator
            return inner
    except AttributeError:
        pass
    events: AsyncIterator[Any] = stream.__aiter__()
    return events


# What the SDK's ``AsyncStream._iter_events`` reads when it only passes its decoder's
# events on: ``async for sse in self._decoder.aiter_bytes(self.response.aiter_bytes()):
# yield sse`` (anthropic 0.40 to 2.x).
_PASS_THROUGH: Final = (("_decoder", "aiter_bytes", "response"), ("self", "sse"))
_PLAIN_STREAMS: dict[type, bool] = {}  # stream class -> its _iter_events is that


def _skip_event_layer(stream: Any) -> None:
    """Let ``stream``'s event iterator read the SDK's SSE decoder directly.

    ``AsyncStream.__stream__`` reads ``self._iter_events()``, a generator that re-yields
    every event of ``self._decoder.aiter_bytes(self.response.aiter_bytes())`` and does
    nothing else: one more generator hop per event (about 1 % of the SDK's time per
    chunk). Where the SDK's ``_iter_events`` is exactly that pass-through (its code reads
    those names and no others), the stream gets the decoder's iterator itself in its
    place: the same events from the same decoder, in the same order. Any other
    ``_iter_events`` (a later SDK that does more there) is left alone.
    """
    cls = type(stream)
    plain = _PLAIN_STREAMS.get(cls)
    if plain is None:
        code = getattr(getattr(cls, "_iter_events", None), "__code__", None)
        plain = code is not None and (code.co_names, code.co_varnames) == _PASS_THROUGH
        _PLAIN_STREAMS[cls] = plain
    if not plain:
        return
    decoder = stream._decoder
    response = stream.response
    stream._iter_events = lambda: decoder.aiter_bytes(response.aiter_bytes())


# What the SDK's ``BaseClient._process_response_data`` takes (anthropic 0.40 to 2.x): the
# decoded JSON of one event, the type to build from it, the response.
_PROCESS_PARAMS: Final = ("self", "data", "cast_to", "response")
# The SDK's method (a function, shared by provcfg's per-provider subclasses) -> it takes those.
_JSON_STEPS: dict[object, bool] = {}


def _read_json_events(client: Any) -> None:
    """Let ``client`` hand provcfg each Messages event's decoded JSON, not an SDK object.

    The SDK's stream decodes each event's JSON and hands it to the client's
    ``_process_response_data``, which builds a pydantic event object from it
    (``construct_type`` over the union of event types: about a third of the SDK's own
    time per text delta, more for ``message_start``), only for provcfg to read a few
    fields and drop it. On the one client provcfg builds for a provider and loop, that
    step hands over what it was given instead: a text delta with a string as the
    :class:`Chunk` itself, any other event of
    :data:`~provcfg._providers._messages.JSON_EVENT_KINDS` as its dict,
    read by :func:`~provcfg._providers._messages.json_event` with the same checks as
    on the fast transport. An event of another type (or without one) still gets the
    SDK's object (:func:`~provcfg._providers._messages.sdk_event` reads those). The
    request, the answer's status and errors, the SSE decoding, the JSON and the
    ``error`` events stay the SDK's. Applied only where the SDK's method takes exactly
    :data:`_PROCESS_PARAMS`; an SDK that changes it is left alone, and its events take
    the SDK's objects (the same chunks, more slowly; tested).
    """
    method = getattr(type(client), "_process_response_data", None)
    plain = _JSON_STEPS.get(method)
    if plain is None:
        code = getattr(method, "__code__", None)
        plain = code is not None and (
            code.co_varnames[: code.co_argcount + code.co_kwonlyargcount] == _PROCESS_PARAMS
        )
        _JSON_STEPS[method] = plain
    if not plain:
        return
    process = client._process_response_data

    def process_data(*, data: Any, cast_to: Any, response: Any) -> Any:
        if data.__class__ is not dict:
            return process(data=data, cast_to=cast_to, response=response)
        kind = data.get("type")
        if kind != "content_block_delta":
            if kind.__class__ is str and kind in JSON_EVENT_KINDS:
                return data
            return process(data=data, cast_to=cast_to, response=response)
        delta = data.get("delta")
        if delta.__class__ is not dict or delta.get("type") != "text_delta":
            return data
        text = delta.get("text")
        if text.__class__ is not str:
            return data
        chunk = _new(Chunk)
        chunk.type = "text"
        chunk.text = text
        chunk.data = None
        return chunk

    client._process_response_data = process_data


async def _close_both(
    source: AsyncIterator[Any], close: Callable[[], Awaitable[None]], inner: object = None
) -> None:
    """Close an attempt's iterator, then its response.

    An async generator dropped while suspended (a stream left early) is finalized by
    the garbage collector through the event loop's hook, which schedules its
    ``aclose()`` with ``call_soon_threadsafe``: a write to the loop's self-pipe for each
    of the nested generators under it (ten per request on the sdk transport, six on
    fast; together more than half of what provcfg added to such a request). Closed
    here, the chain unwinds at once and the loop is never woken. ``inner``: the iterator
    ``source`` wraps, if any (the SDK's own, when a stream observer such as an
    OpenTelemetry instrumentation makes provcfg read through the SDK's pass-through
    layer), closed after it.
    """
    try:
        for iterator in (source, inner):
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
    finally:
        await close()


async def _drain(source: AsyncIterator[Any]) -> None:
    """Read the body's last bytes (the chunked terminator) so the connection can go back to
    the pool, as the SDK itself does; give up after :data:`_DRAIN_SECONDS`.

    The message is complete by now (``message_stop`` arrived): a server that keeps the
    body open or breaks it only costs the connection (closed with the response, not
    reused), never the answer.
    """
    limit = Limit()  # on the loop's shared timer: no timer of its own per request
    limit.start_at(limit.loop_time() + _DRAIN_SECONDS)
    try:
        async for _ in source:
            pass
    except asyncio.CancelledError:
        if not limit.stop():
            raise
        log.debug("provider.drain_abandoned", reason="TimeoutError")
    except Exception as exc:  # whatever it is, the answer is already whole
        log.debug("provider.drain_abandoned", reason=type(exc).__name__)
    finally:
        limit.stop()


class _Attempt:
    """One try of a request: what its opening produced, and how to go on reading it."""

    __slots__ = ("close", "parser", "pending", "ready", "source", "state")

    def __init__(
        self,
        source: AsyncIterator[Any],
        close: Callable[[], Awaitable[None]],
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self.state = MessageState()
        self.source = source
        self.close = close
        self.ready: list[Chunk] = []
        self.parser = SSEParser(max_event_bytes)
        # A failure met in the same network read as chunks before it: raised once those
        # chunks reached the caller (as if the events had come one read each).
        self.pending: Exception | None = None


def _client_class(
    headers: Mapping[str, str], auth: httpx2.BasicAuth | None
) -> type[anthropic.AsyncAnthropic]:
    """An ``AsyncAnthropic`` whose default headers end with ``headers`` (and whose
    requests carry ``auth``, the SDK's ``custom_auth`` hook, when given).

    ``anthropic-version`` is provcfg's own (the spec's, the fast transport's), not the
    SDK's. Passed as ``default_headers=``, it would be set twice per request: the SDK
    folds its custom headers in once inside its default headers and once more as a
    layer of their own, and that second setting of a header that is there already
    rebuilds the header list (about 230 Python bytecodes before every first chunk).
    """
    import anthropic

    class ProviderAnthropic(anthropic.AsyncAnthropic):
        @property
        def default_headers(self) -> dict[str, Any]:
            merged = super().default_headers
            merged.update(headers)
            return merged

    if auth is None:
        return ProviderAnthropic

    class BasicAuthAnthropic(ProviderAnthropic):
        @property
        def custom_auth(self) -> httpx2.Auth | None:
            return auth

    return BasicAuthAnthropic


class AnthropicApiProvider(BaseProvider):
    """A provider of kind ``anthropic-api``; built by the Runtime as ``AnthropicApiProvider(ctx)``.

    ``stream()`` yields ``text``, ``thinking`` and ``tool_use`` chunks as they
    arrive, then one ``result`` chunk (usage, stop_reason, model, session_id = the
    message id, timings). ``kind_options`` are added to the request body as they
    are (``temperature``, ``tools``, ``thinking``, ``stop_sequences``, ``metadata``,
    or ``messages`` to send a whole conversation instead of ``prompt``).
    """

    kind = "anthropic-api"
    # The transport generators track themselves (in flight, one report per request), so
    # no wrapper generator sits between them and the caller: one hop per chunk saved.
    tracks_streams = True

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        spec: Any = ctx.spec
        raw_url = spec.base_url
        if not isinstance(raw_url, str):  # a SecretUrl (a plugin's spec may hold a plain str)
            raw_url = raw_url.get_secret_value()
        secret_url = raw_url.rstrip("/")
        bare, self._auth = split_credentials(secret_url)
        self._base_url: str = bare
        self._url = self._base_url + "/v1/messages"
        self._transport: str = spec.transport
        self._default_max_tokens: int = spec.max_tokens
        self._timeout: float | None = spec.timeout
        self._first_byte: float | None = getattr(spec, "first_byte_timeout", None)
        self._max_event: int = getattr(spec, "max_event_bytes", MAX_EVENT_BYTES)
        self._version: str = spec.anthropic_version
        self._policy = RetryPolicy(max_retries=spec.max_retries, max_wait=spec.retry_max_wait)
        key = spec.api_key.get_secret_value() if spec.api_key is not None else None
        self._api_key: str | None = key or os.environ.get("ANTHROPIC_API_KEY") or None
        secrets = (self._api_key,) if self._api_key else ()
        self._errors = ErrorMapper(ctx.name, secret_url + "/v1/messages", secrets, pool=ctx.pool)
        self._send_auth: Any = self._auth if self._auth is not None else httpx2.USE_CLIENT_DEFAULT
        self._headers = {
            "x-api-key": self._api_key or "",
            "anthropic-version": self._version,
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
        self._phase_last: tuple[httpx2.Timeout, float, httpx2.Timeout] | None = None
        self._sdk_clients: dict[
            asyncio.AbstractEventLoop, tuple[httpx2.AsyncClient, anthropic.AsyncAnthropic]
        ] = {}
        self._sdk_class: type[anthropic.AsyncAnthropic] | None = None

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

    def session(
        self,
        *,
        cwd: str | Path | None = None,
        model: str | None = None,
        system: str | None = None,
        **kind_options: Any,
    ) -> HistorySession:
        """A conversation: each turn sends the history so far (``messages``) with the prompt.

        ``cwd`` means nothing to the API and is ignored.
        """
        return HistorySession(self, cwd=cwd, model=model, system=system, options=kind_options)

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
        meter = RequestMeter.of(self.ctx)
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
            return self._run_fast(body, total, meter)
        if kind_options:
            body["extra_body"] = kind_options
        return self._run_sdk(body, total, meter)

    # ------------------------------------------------------------------ shared

    def _check(self, body: Mapping[str, Any]) -> None:
        if not body.get("model"):
            raise self._errors.make(
                "invalid_request",
                f"no model given; set providers.{self.name}.model or pass model=",
            )
        if not self._api_key:
            raise self._errors.make("authentication", "no API key is configured")

    async def _retrying(
        self,
        open_attempt: Callable[[], Awaitable[_Attempt]],
        meter: RequestMeter,
        deadline: float | None,
        total: float | None,
    ) -> _Attempt:
        """The one retry skeleton: open (send, read to the first chunk) until it works or
        the policy says stop; the transport's own part is ``open_attempt``."""
        while True:
            try:
                return await open_attempt()
            except ProviderError as error:
                await self._backoff(self._at_deadline(error, deadline, total), meter, deadline)

    def _at_deadline(
        self, error: ProviderError, deadline: float | None, total: float | None
    ) -> ProviderError:
        """A phase timeout that fired because it was capped by the time left is the
        request's deadline passing: say that (and name ``timeout``), not the phase."""
        if (
            error.kind == "timeout"
            and deadline is not None
            and error.details.get("timeout") is None
            and time.perf_counter() >= deadline - _DEADLINE_SLACK
        ):
            return self._errors.deadline(total or 0.0)
        return error

    async def _backoff(
        self, error: ProviderError, meter: RequestMeter, deadline: float | None
    ) -> None:
        """Sleep before the next attempt, or raise ``error`` when the policy says stop."""
        wait = self._policy.delay(error, meter.retries)
        if wait is not None and deadline is not None and time.perf_counter() + wait >= deadline:
            wait = None
        if wait is None:
            raise error
        meter.retries += 1
        log.info(
            "provider.retry",
            provider=self.name,
            kind=error.kind,
            status=error.status,
            attempt=meter.retries,
            wait=round(wait, 3),
        )
        await asyncio.sleep(wait)

    def _phase_timeouts(self, client: httpx2.AsyncClient, deadline: float) -> httpx2.Timeout:
        """The client's phase timeouts, each capped by the time left before ``deadline``.

        The last result is reused when it was capped by a time left within
        :data:`_PHASE_REUSE` of this one (requests in a row with the same ``timeout``),
        so a phase may end at most that long after the deadline: within the window's
        grace, and mapped to ``timeout`` by :meth:`_at_deadline` all the same.
        """
        left = max(deadline - time.perf_counter(), 0.001)
        base = client.timeout
        last = self._phase_last
        if last is not None and last[0] is base and abs(last[1] - left) <= _PHASE_REUSE:
            return last[2]

        def cap(value: float | None) -> float:
            return left if value is None else min(value, left)

        capped = httpx2.Timeout(
            connect=cap(base.connect),
            read=cap(base.read),
            write=cap(base.write),
            pool=cap(base.pool),
        )
        self._phase_last = (base, left, capped)
        return capped

    def _guard(
        self, response: httpx2.Response, deadline: float | None, total: float | None
    ) -> None:
        guard(
            response,
            deadline=deadline,
            on_deadline=lambda: self._errors.deadline(total or 0.0),
            on_oversize=self._errors.oversize,
            max_event_bytes=self._max_event,
        )

    async def _send(
        self,
        send: Callable[[], Awaitable[Any]],
        deadline: float | None,
        total: float | None,
        traced: bool,
    ) -> tuple[Any, Window]:
        """``send()`` (one attempt, until its response headers) within its :class:`Window`.

        ``traced`` says the request will report when it is sent (a pooled client's hook,
        or the fast transport's own trace); otherwise the first-byte limit starts at once
        (a client from elsewhere: its queueing then counts too).

        Raises:
            ProviderError: ``timeout`` when the window ends first.
        """
        window = Window(deadline, self._first_byte, total)
        if not window.limited:  # both limits switched off
            return await send(), window
        if not traced:
            window.sending()  # before the timer exists: it is set once, at its end
        token = ON_SEND.set(window.sending)
        window.start()
        try:
            answer = await send()
        except asyncio.CancelledError:
            if window.stop():  # a limit passed (not a cancellation from elsewhere)
                raise self._window_error(window) from None
            raise
        finally:
            window.stop()
            ON_SEND.reset(token)
        return answer, window

    def _window_error(self, window: Window) -> ProviderError:
        """The ``timeout`` error of whichever limit ended ``window``'s wait."""
        if window.by_first_byte and self._first_byte is not None:
            return self._errors.first_byte(self._first_byte)
        return self._errors.deadline(window.total)

    def _finish(self, state: MessageState, meter: RequestMeter) -> Chunk:
        return state.result(meter.succeeded(Usage(**state.usage)))

    # ------------------------------------------------------------------ fast

    async def _run_fast(
        self, body: dict[str, Any], total: float | None, meter: RequestMeter
    ) -> AsyncIterator[Chunk]:
        deadline = meter.start + total if total is not None else None
        try:
            await self._enter_stream(deadline)
        except LimitPassed:  # still preparing (the SDK's import) when the deadline passed
            raise meter.fail(self._errors.deadline(total or 0.0)) from None
        attempt: _Attempt | None = None
        failure: BaseException | None = None
        try:
            self._check(body)
            payload = json.dumps(body, separators=(",", ":")).encode()
            attempt = await self._retrying(
                lambda: self._open_fast(payload, deadline, total, meter), meter, deadline, total
            )
            state = attempt.state
            meter.chunks = len(attempt.ready)
            for chunk in attempt.ready:
                yield chunk
            async for raw in self._fast_rest(attempt):
                chunks = self._fast_chunks(attempt, raw)
                meter.chunks += len(chunks)
                for chunk in chunks:
                    yield chunk
                if state.stopped:
                    break
            for chunk in await self._fast_end(attempt):
                yield chunk
            yield self._finish(state, meter)
        except BaseException as exc:
            failure = meter.fail(self._stream_error(exc, deadline, total))
        finally:
            self._exit_stream()
            if attempt is not None:
                await attempt.close()
        if failure is not None:
            raise failure  # outside the except block: nothing gets chained to it

    async def _open_fast(
        self, payload: bytes, deadline: float | None, total: float | None, meter: RequestMeter
    ) -> _Attempt:
        """Send the request and read until its first chunk (the retryable phase)."""
        client = self.ctx.http_client()
        timeout: Any = (
            httpx2.USE_CLIENT_DEFAULT
            if deadline is None
            else self._phase_timeouts(client, deadline)
        )
        request = client.build_request(
            "POST",
            self._url,
            content=payload,
            headers=self._headers,
            timeout=timeout,
            extensions={"trace": trace_sending},
        )
        try:
            response, window = await self._send(
                lambda: client.send(request, stream=True, auth=self._send_auth),
                deadline,
                total,
                traced=True,
            )
        except _SEND_FAILURES as exc:
            raise self._errors.from_transport(exc, streaming=False) from None
        try:
            meter.connected()
            if response.status_code != 200:
                raise await self._error_answer(response, window)
            self._guard(response, deadline, total)
            chunks = response.aiter_bytes()
            attempt = _Attempt(
                chunks, lambda: _close_both(chunks, response.aclose), self._max_event
            )
            await self._fast_first(attempt)
            if attempt.ready:
                meter.first_content()  # the chunks in `ready` are content (text, thinking, tools)
        except httpx2.HTTPError as exc:
            await response.aclose()
            raise self._errors.from_transport(exc, streaming=True) from None
        except _MALFORMED as exc:
            await response.aclose()
            raise self._errors.malformed(str(exc) or type(exc).__name__) from None
        except BaseException:
            await response.aclose()
            raise
        return attempt

    async def _error_answer(self, response: httpx2.Response, window: Window) -> ProviderError:
        """The error an answer with an error status stands for (its body read within
        ``window``, at most :data:`ERROR_BODY_BYTES` of it)."""
        try:
            async with asyncio.timeout_at(window.at()):
                raw = await _read_error_body(response)
        except TimeoutError:
            return self._window_error(window)
        return self._errors.from_body(response.status_code, _decode_body(raw), response.headers)

    async def _fast_first(self, attempt: _Attempt) -> None:
        """Read until the first chunk or the end of the message; keep it in ``ready``."""
        async for raw in attempt.source:
            attempt.ready = self._fast_chunks(attempt, raw)
            if attempt.ready or attempt.state.stopped:
                return
        attempt.ready = await self._fast_end(attempt)

    async def _fast_rest(self, attempt: _Attempt) -> AsyncIterator[bytes]:
        """The network reads after the opening (none if the opening ended the message)."""
        if attempt.pending is not None:
            raise attempt.pending
        if attempt.state.stopped:
            return
        async for raw in attempt.source:
            yield raw
            if attempt.pending is not None:
                raise attempt.pending

    def _fast_chunks(self, attempt: _Attempt, raw: bytes) -> list[Chunk]:
        """The chunks one network read completes (raises the stream's ``error`` event)."""
        out: list[Chunk] = []
        try:
            self._fast_events(attempt, raw, out)
        except Exception as exc:
            if not out:
                raise
            attempt.pending = exc  # the chunks before it go out first
        return out

    def _fast_events(self, attempt: _Attempt, raw: bytes, out: list[Chunk]) -> None:
        state = attempt.state
        for event, data in attempt.parser.feed(raw):
            # Fast path: a text delta's JSON ends with its text field; parse just that string.
            text = _quick_text(data) if event == "content_block_delta" else None
            if text is not None:
                piece = _new(Chunk)
                piece.type = "text"
                piece.text = text
                piece.data = None
                out.append(piece)
                continue
            if event == "error":
                raise self._errors.from_event_data(data)
            if event and event != "ping":
                chunk = json_event(state, event, json.loads(data))
                if chunk is not None:
                    out.append(chunk)
            if state.stopped:
                break

    async def _fast_end(self, attempt: _Attempt) -> list[Chunk]:
        """The body ended (or the message stopped): drain, or finish the parser and check."""
        if attempt.state.stopped:
            await _drain(attempt.source)
            return []
        out: list[Chunk] = []
        for event, data in attempt.parser.finish():
            if event == "error":
                raise self._errors.from_event_data(data)
            chunk = json_event(attempt.state, event, json.loads(data)) if event else None
            if chunk is not None:
                out.append(chunk)
        if not attempt.state.stopped:
            cut = " mid-event" if attempt.parser.pending else ""
            raise self._errors.incomplete(f"the stream ended{cut} before message_stop")
        return out

    # ------------------------------------------------------------------ sdk

    async def _sdk_client(self) -> tuple[httpx2.AsyncClient, anthropic.AsyncAnthropic]:
        loop = asyncio.get_running_loop()
        http = self.ctx.http_client()
        entry = self._sdk_clients.get(loop)
        if entry is not None and entry[0] is http:
            return entry
        await self.initialize()
        key = self._api_key
        if self._sdk_class is None:
            headers = {"anthropic-version": self._version}
            if self._auth is not None:
                # Authorization carries the base_url's user:password (HTTP Basic), so the
                # key goes as x-api-key, as on the fast transport.
                headers["x-api-key"] = key or ""
            self._sdk_class = _client_class(headers, self._auth)
        client = self._sdk_class(
            api_key=key if self._auth is None else None,
            base_url=self._base_url,
            http_client=http,
            max_retries=0,
            timeout=http.timeout,
        )
        _read_json_events(client)
        # One client per live loop; entries of closed loops go (their clients went with them).
        live = {lp: e for lp, e in self._sdk_clients.items() if not lp.is_closed()}
        live[loop] = (http, client)
        self._sdk_clients = live
        return http, client

    async def _run_sdk(
        self, params: dict[str, Any], total: float | None, meter: RequestMeter
    ) -> AsyncIterator[Chunk]:
        deadline = meter.start + total if total is not None else None
        try:
            await self._enter_stream(deadline)
        except LimitPassed:  # still preparing (the SDK's import) when the deadline passed
            raise meter.fail(self._errors.deadline(total or 0.0)) from None
        attempt: _Attempt | None = None
        failure: BaseException | None = None
        try:
            self._check(params)
            attempt = await self._retrying(
                lambda: self._open_sdk(params, deadline, total, meter), meter, deadline, total
            )
            state = attempt.state
            for chunk in attempt.ready:
                yield chunk
            count = len(attempt.ready)
            async for event in attempt.source:
                if event.__class__ is Chunk:  # a text delta (_read_json_events)
                    count += 1
                    yield event
                    continue
                produced = sdk_event(state, event)  # also rejects a text that is no string
                if produced is not None:
                    count += 1
                    yield produced
                elif state.stopped:
                    break
            await self._sdk_end(attempt)
            meter.chunks = count
            yield self._finish(state, meter)
        except BaseException as exc:
            failure = meter.fail(self._stream_error(exc, deadline, total))
        finally:
            self._exit_stream()
            if attempt is not None:
                await attempt.close()
        if failure is not None:
            raise failure  # outside the except block: nothing gets chained to it

    def _stream_error(
        self, exc: BaseException, deadline: float | None, total: float | None
    ) -> BaseException:
        """What a failure while streaming becomes: httpx2 and SDK errors and malformed
        events turn into ProviderErrors (a phase timeout capped by the deadline says the
        deadline passed); everything else stays itself."""
        if isinstance(exc, ProviderError | GeneratorExit | asyncio.CancelledError):
            return exc
        if isinstance(exc, httpx2.HTTPError):
            error = self._errors.from_transport(exc, streaming=True)
            return self._at_deadline(error, deadline, total)
        if isinstance(exc, _MALFORMED):
            return self._errors.malformed(str(exc) or type(exc).__name__)
        anthropic = sys.modules.get("anthropic")
        if isinstance(exc, RedirectRefused) or (
            anthropic is not None and isinstance(exc, anthropic.AnthropicError)
        ):
            error = self._errors.from_sdk(exc, streaming=True)
            return self._at_deadline(error, deadline, total)
        return exc

    async def _open_sdk(
        self,
        params: dict[str, Any],
        deadline: float | None,
        total: float | None,
        meter: RequestMeter,
    ) -> _Attempt:
        """Send the request through the SDK and read until its first chunk (retryable)."""
        try:
            http, sdk = await self._sdk_client()
            call = params
            if deadline is not None:
                call = {**params, "timeout": self._phase_timeouts(http, deadline)}
            # The SDK reads an error answer's body inside create(): the window covers it.
            stream, _ = await self._send(
                lambda: sdk.messages.create(**call, stream=True),
                deadline,
                total,
                traced=mark_request in http.event_hooks["request"],
            )
        except ProviderError:
            raise
        except Exception as exc:
            raise self._sdk_error(exc, streaming=False) from None
        meter.connected()
        self._guard(stream.response, deadline, total)
        source = _sdk_events(stream)
        attempt = _Attempt(
            source,
            lambda: _close_both(source, stream.close, getattr(stream, "_iterator", None)),
            self._max_event,
        )
        try:
            await self._sdk_first(attempt)
            if attempt.ready:
                meter.first_content()
        except ProviderError:
            await attempt.close()
            raise
        except _MALFORMED as exc:
            await attempt.close()
            raise self._errors.malformed(str(exc) or type(exc).__name__) from None
        except Exception as exc:
            await attempt.close()
            raise self._sdk_error(exc, streaming=True) from None
        except BaseException:
            await attempt.close()
            raise
        return attempt

    async def _sdk_first(self, attempt: _Attempt) -> None:
        """Read SDK events until the first chunk or the end of the message."""
        async for event in attempt.source:
            chunk = sdk_event(attempt.state, event)
            if chunk is not None:
                attempt.ready = [chunk]
                return
            if attempt.state.stopped:
                return
        await self._sdk_end(attempt)

    async def _sdk_end(self, attempt: _Attempt) -> None:
        if attempt.state.stopped:
            await _drain(attempt.source)
        else:
            raise self._errors.incomplete("the stream ended before message_stop")

    def _sdk_error(self, exc: Exception, *, streaming: bool) -> ProviderError:
        """Map what the SDK (or httpx2 under it) raised; anything else is re-raised."""
        import anthropic

        if isinstance(exc, anthropic.AnthropicError | httpx2.HTTPError | RedirectRefused):
            return self._errors.from_sdk(exc, streaming=streaming)
        raise exc

    async def aclose(self) -> None:
        """Forget the SDK clients (the pooled httpx2 clients belong to the Runtime); idempotent."""
        self._sdk_clients = {}
        await super().aclose()
