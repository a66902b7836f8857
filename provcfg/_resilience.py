"""Fallbacks and circuit breakers: where a request goes when its provider fails.

A provider may declare ``fallbacks: [name, ...]`` and a ``breaker:`` in the manifest.
The runtime turns them into a :class:`Route` per provider (the provider, then each
fallback followed by its own fallbacks, depth first, each provider once) and a
:class:`CircuitBreaker` per provider that declares one. ``rt.provider(name)`` hands
out a handle whose ``stream()`` returns a :class:`RoutedStream` when the provider has
a route; otherwise nothing here runs at all.

A :class:`RoutedStream` tries the route's providers in order *until the first chunk*:
a :class:`~provcfg._errors.ProviderError` whose kind is in the entry provider's
``fallback_on`` (after that provider's own retries), or an open breaker, moves the
request to the next provider; after the first chunk the stream belongs to the
provider that produced it and its errors reach the caller as they are, so no output
is ever duplicated. Per chunk it hands over the inner
stream's own ``__anext__`` (read through a C-level property: no Python frame of ours
per chunk); the breaker checks and the fallback logic run once per request.

Breakers learn outcomes from the request records every stream reports once
(:meth:`Breakers.observe` is a request observer on the lineage's metrics): a failure
of a kind in the breaker's ``on`` list is counted; ``failures`` of them within
``window`` seconds open it; while open, requests fail fast with kind ``overloaded``
(``retry_after`` = the rest of the cooldown, ``details["breaker"] == "open"``), which
a route treats like any other fallback-worthy failure; after ``cooldown`` one request
is let through as a probe (half-open): its success closes the breaker, its failure
opens it again. Every transition is logged once, counted, and published to
:meth:`Breakers.subscribe` callbacks.
"""

from __future__ import annotations

import contextlib
import operator
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from provcfg._errors import ProviderError, UnknownModelError
from provcfg._logs import get_logger

if TYPE_CHECKING:
    from provcfg._contract import Chunk, Provider
    from provcfg._manifest import BreakerSpec
    from provcfg._metrics import Metrics
    from provcfg._modeltable import ModelTable
    from provcfg._reqstats import RequestRecord

__all__ = [
    "BreakerEvent",
    "BreakerState",
    "Breakers",
    "CircuitBreaker",
    "Route",
    "RouteTarget",
    "RoutedHandle",
    "RoutedStream",
    "fallback_model",
]

log = get_logger(__name__)

BreakerState = Literal["closed", "open", "half_open"]
_STATE_VALUE: Final = {"closed": 0, "half_open": 1, "open": 2}
_monotonic: Final = time.monotonic


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """One circuit-breaker transition of one provider.

    ``state`` is the new state, ``previous`` the old one; ``failures`` the failures
    counted in the window at that moment; ``reason`` says why in words; ``at`` is the
    Unix time of the transition.
    """

    provider: str
    state: BreakerState
    previous: BreakerState
    failures: int
    reason: str
    at: float

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form."""
        return {
            "provider": self.provider,
            "state": self.state,
            "previous": self.previous,
            "failures": self.failures,
            "reason": self.reason,
            "at": self.at,
        }


class CircuitBreaker:
    """The breaker of one provider spec (it lives as long as the provider's handle)."""

    __slots__ = (
        "_board",
        "_failures",
        "_lock",
        "_opened_at",
        "_probe_at",
        "_state",
        "provider",
        "spec",
    )

    def __init__(self, provider: str, spec: BreakerSpec, board: Breakers) -> None:
        self.provider = provider
        self.spec = spec
        self._board = board
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures: deque[float] = deque(maxlen=spec.failures)
        self._opened_at = 0.0
        self._probe_at: float | None = None

    @property
    def state(self) -> BreakerState:
        """``closed`` (requests flow), ``open`` (failing fast) or ``half_open`` (probing)."""
        return self._state

    def state_value(self) -> int:
        """The state as a number for gauges: 0 closed, 1 half-open, 2 open."""
        return _STATE_VALUE[self._state]

    def admit(self) -> bool:
        """Whether a request may go to the provider now (one attribute read when closed).

        After the cooldown the first caller becomes the half-open probe; a probe whose
        outcome never arrives (its stream was dropped unread) is replaced after another
        cooldown.
        """
        if self._state == "closed":
            return True
        event = None
        with self._lock:
            now = _monotonic()
            if self._state == "open":
                if now < self._opened_at + self.spec.cooldown:
                    return False
                event = self._move("half_open", "cooldown over: one probe request goes through")
                self._probe_at = now
            elif self._state == "half_open":
                if self._probe_at is not None and now < self._probe_at + self.spec.cooldown:
                    return False
                self._probe_at = now
        if event is not None:
            self._board.publish(event)
        return True

    def rejection(self) -> ProviderError:
        """The fail-fast error for a request the breaker did not admit."""
        spec = self.spec
        left = max(0.0, self._opened_at + spec.cooldown - _monotonic())
        return ProviderError(
            f"circuit breaker open: {spec.failures} failures within {spec.window:g}s; failing "
            f"fast until a probe succeeds (providers.{self.provider}.breaker)",
            kind="overloaded",
            provider=self.provider,
            retry_after=round(left, 3) if self._state == "open" else None,
            details={"breaker": self._state},
        )

    def record(self, ok: bool, error_kind: str | None) -> None:
        """Count one finished request of the provider (called by :meth:`Breakers.observe`)."""
        if ok and self._state == "closed":
            return
        event = None
        with self._lock:
            state = self._state
            if state == "open":
                return  # a request admitted before the breaker opened: old news
            if error_kind == "cancelled":
                if state == "half_open":
                    self._probe_at = None  # the probe told us nothing: let another one go
                return
            if ok or error_kind not in self.spec.on:
                # The provider answered (even a refusal such as invalid_request): healthy.
                if state != "closed":
                    self._failures.clear()
                    event = self._move("closed", "probe request succeeded")
            elif state == "half_open":
                self._opened_at = _monotonic()
                event = self._move("open", f"probe request failed ({error_kind})")
            elif state == "closed":
                now = _monotonic()
                failures = self._failures
                failures.append(now)
                if len(failures) == self.spec.failures and now - failures[0] <= self.spec.window:
                    self._opened_at = now
                    event = self._move(
                        "open",
                        f"{len(failures)} failures within {self.spec.window:g}s "
                        f"(last: {error_kind})",
                    )
        if event is not None:
            self._board.publish(event)

    def _move(self, state: BreakerState, reason: str) -> BreakerEvent:
        previous = self._state
        self._state = state
        if state != "half_open":
            self._probe_at = None
        return BreakerEvent(
            self.provider, state, previous, len(self._failures), reason, time.time()
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.provider!r} {self._state}>"


class Breakers:
    """The breakers of one runtime lineage: outcomes in, transitions out.

    ``rt.breakers`` (and ``live.breakers``) is this object. While some provider has a
    breaker it reads every request record of the lineage's metrics (one dict lookup per
    request), and it publishes
    transitions: a log event, the counters ``breaker_open`` / ``breaker_half_open`` /
    ``breaker_closed`` per provider, and the callbacks given to :meth:`subscribe`.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._table: dict[str, CircuitBreaker] = {}
        self._subscribers: list[Callable[[BreakerEvent], None]] = []
        self._observing = False

    def install(self, breakers: Mapping[str, CircuitBreaker]) -> None:
        """Make ``breakers`` the live ones (the newest generation's), with their gauges.

        The board reads request records only while some provider has a breaker: a
        manifest without breakers adds nothing to a request's cost.
        """
        metrics = self._metrics
        if breakers and not self._observing:
            metrics.add_request_observer(self.observe)
            self._observing = True
        elif not breakers and self._observing:
            metrics.remove_request_observer(self.observe)
            self._observing = False
        for name, old in self._table.items():
            if breakers.get(name) is not old:
                metrics.remove_gauge(f"breaker_state.{name}", old.state_value)
        for name, breaker in breakers.items():
            metrics.gauge(f"breaker_state.{name}", breaker.state_value)
        self._table = dict(breakers)

    def observe(self, rec: RequestRecord) -> None:
        """Feed one finished request to its provider's breaker, if it has one."""
        breaker = self._table.get(rec.provider)
        if breaker is not None:
            breaker.record(rec.ok, rec.error_kind)

    def get(self, provider: str) -> CircuitBreaker | None:
        """The live breaker of ``provider`` (None: it declares none)."""
        return self._table.get(provider)

    def states(self) -> dict[str, BreakerState]:
        """Provider name -> its breaker's state, for every provider that has one."""
        return {name: b.state for name, b in self._table.items()}

    def subscribe(self, callback: Callable[[BreakerEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` on every later breaker transition.

        Callbacks run in the thread that finished the request that caused the transition
        (usually an event loop's): keep them quick. An exception a callback raises is
        logged and does not stop the others. Returns a function that unsubscribes.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: BreakerEvent) -> None:
        """Log, count and hand out one transition."""
        level = log.warning if event.state == "open" else log.info
        level(
            "circuit_breaker_" + event.state,
            provider=event.provider,
            previous=event.previous,
            failures=event.failures,
            reason=event.reason,
        )
        self._metrics.incr("breaker_" + event.state, event.provider)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception as exc:  # a subscriber's bug must not stop the others
                log.error(
                    "breaker_subscriber_failed",
                    provider=event.provider,
                    error=f"{type(exc).__name__}: {exc}",
                )


# --------------------------------------------------------------------------- routes


class RoutedHandle(Protocol):
    """What a route needs of a provider handle (:class:`provcfg._handle.ProviderHandle`)."""

    @property
    def name(self) -> str:
        """The provider's name."""
        ...

    @property
    def breaker(self) -> CircuitBreaker | None:
        """The provider's circuit breaker, if it has one."""
        ...

    def instance(self) -> Provider:
        """The provider instance to send a request to."""
        ...


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """One provider of a route: its handle, kind and model table."""

    handle: RoutedHandle
    kind: str
    models: ModelTable


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request to one provider may go, in order, and which failures move it on."""

    targets: tuple[RouteTarget, ...]
    fallback_on: frozenset[str]
    metrics: Metrics


def fallback_model(model: str | None, entry: RouteTarget, target: RouteTarget) -> str | None:
    """The ``model`` argument a request to ``entry`` passes to the fallback ``target``.

    * None stays None: each provider uses its own default model.
    * An alias the fallback declares is passed on: the fallback translates it with its
      own table (``models:`` per kind or per provider).
    * Otherwise, to a fallback of the same kind as the entry provider (the same model-id
      vocabulary): the id the entry provider would have used (its translation of the
      alias, or the id the caller gave).
    * Otherwise (another kind): None, the fallback's own default model. A Messages API
      model id, or an alias the fallback does not declare, means nothing to a CLI of
      another vendor.
    """
    if model is None or target is entry or model in target.models.ids:
        return model
    if target.kind == entry.kind:
        return entry.models.ids.get(model, model)
    return None


class RoutedStream:
    """The stream of a request to a provider with fallbacks or a breaker.

    Iterate it like any provider stream. After the first chunk, ``provider`` names the
    provider that is answering; ``attempts`` lists ``(provider, error kind)`` for each
    provider the request left before that.
    """

    __slots__ = ("_call", "_inner", "_next", "_options", "_route", "attempts", "provider")

    def __init__(
        self,
        route: Route,
        call: tuple[str, str | None, str | None, int | None, Any, float | None],
        options: dict[str, Any],
    ) -> None:
        self._route = route
        self._call = call
        self._options = options
        self._inner: AsyncIterator[Chunk] | None = None
        # What __anext__ calls: first the routing, then the answering provider's own
        # __anext__. (Until the first chunk this bound method is a reference cycle; it is
        # replaced as soon as the stream has a provider, fails, or is closed.)
        self._next: Callable[[], Awaitable[Chunk]] = self._start
        self.provider: str | None = None
        self.attempts: list[tuple[str, str]] = []

    def __aiter__(self) -> RoutedStream:
        return self

    if TYPE_CHECKING:

        def __anext__(self) -> Awaitable[Chunk]:
            """The next chunk."""
            ...

    else:
        # A property read in C (attrgetter): `async for` calls the stored callable with no
        # Python frame of ours per chunk, once the inner stream's __anext__ is stored.
        __anext__ = property(operator.attrgetter("_next"))

    def _start(self) -> Awaitable[Chunk]:
        return self._first()

    async def _first(self) -> Chunk:
        try:
            route = self._route
            prompt, model, system, max_tokens, cwd, timeout = self._call
            targets = route.targets
            entry = targets[0]
            last = len(targets) - 1
            failure: ProviderError | None = None
            for i, target in enumerate(targets):
                handle = target.handle
                breaker = handle.breaker
                if breaker is not None and not breaker.admit():
                    failure = breaker.rejection()
                    route.metrics.incr("breaker_rejected", handle.name)
                    if i < last and failure.kind in route.fallback_on:
                        self._moved_on(handle.name, failure)
                        continue
                    break
                options = self._options if target.kind == entry.kind else {}
                inner: AsyncIterator[Chunk] | None = None
                try:
                    inner = handle.instance().stream(
                        prompt,
                        model=fallback_model(model, entry, target),
                        system=system,
                        max_tokens=max_tokens,
                        cwd=cwd,
                        timeout=timeout,
                        **options,
                    )
                    chunk = await inner.__anext__()
                except (ProviderError, UnknownModelError) as raised:
                    if inner is not None:
                        await _close(inner)
                    error = _as_provider_error(raised, handle.name)
                    failure = error
                    if i < last and error.kind in route.fallback_on:
                        self._moved_on(handle.name, error)
                        continue
                    break
                self._inner = inner
                self._next = inner.__anext__
                self.provider = handle.name
                return chunk
            assert failure is not None
            if self.attempts:
                failure.details.setdefault(
                    "attempts", [{"provider": p, "kind": k} for p, k in self.attempts]
                )
            # Nothing chained: an earlier attempt's transport exception could carry headers.
            failure.__cause__ = failure.__context__ = None
            failure.__suppress_context__ = True
            raise failure
        except BaseException:
            self._next = _finished  # failed or cancelled: the stream is over
            raise

    def _moved_on(self, name: str, error: ProviderError) -> None:
        self.attempts.append((name, error.kind))
        self._route.metrics.incr("fallbacks", name)
        log.info("provider_fallback", provider=name, error_kind=error.kind)

    async def aclose(self) -> None:
        """Close the stream now (the connection goes back, the CLI group is stopped)."""
        inner = self._inner
        self._next = _finished
        if inner is not None:
            await _close(inner)

    def __repr__(self) -> str:
        names = ", ".join(t.handle.name for t in self._route.targets)
        return f"<RoutedStream route=[{names}] provider={self.provider!r}>"


def _as_provider_error(error: ProviderError | UnknownModelError, provider: str) -> ProviderError:
    """A model a fallback cannot translate is that provider's failure, not the caller's bug."""
    if isinstance(error, ProviderError):
        return error
    return ProviderError(str(error), kind="model_not_found", provider=provider)


async def _close(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def _finished() -> Chunk:
    raise StopAsyncIteration


def expand(name: str, fallbacks: Mapping[str, Sequence[str]]) -> list[str]:
    """``name`` then its fallbacks, each followed by its own (depth first, each once)."""
    order: list[str] = []

    def visit(current: str) -> None:
        if current in order:
            return
        order.append(current)
        for nxt in fallbacks.get(current, ()):
            if nxt in fallbacks:
                visit(nxt)

    visit(name)
    return order
