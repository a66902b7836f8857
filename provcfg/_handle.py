"""What ``rt.provider(name)`` returns: a light, stable handle on a recyclable instance.

A :class:`ProviderHandle` stands for one provider spec (its name and digest). It stays
the same object, and usable, for as long as some generation of the runtime uses that
spec: through reloads that leave the provider unchanged, and through evictions and
expiries of the instance behind it. Those recycle the *instance* (the ``providers``
cache region may hold fewer instances than there are providers, and ``ttl`` replaces
them), never the handle: the next call re-acquires an instance from the provider
store. A handle is closed only when no generation uses its spec any more (a reload
removed or changed the provider, or the runtime closed).

The hot path (``handle.stream(...)``) is three attribute reads and a clock read when a
``ttl`` is set; nothing else stands between the caller and the instance's own stream.
A provider with ``fallbacks`` or a ``breaker`` has a *route*
(:class:`~provcfg._resilience.Route`, set by each successful build): its ``stream()``
returns a :class:`~provcfg._resilience.RoutedStream`, which consults the breakers and
moves to the next provider on failures before the first chunk.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final, Protocol

from provcfg._errors import RuntimeClosedError
from provcfg._providers.base import Chunk, Provider, Result, Session, fold
from provcfg._resilience import CircuitBreaker, Route, RoutedStream

__all__ = ["InstanceSource", "ProviderHandle"]

_monotonic: Final = time.monotonic


class InstanceSource(Protocol):
    """Where a handle gets its instances (the provider store, which owns handles)."""

    @property
    def ttl(self) -> float | None:
        """How long an instance may serve before it is replaced (None: forever)."""
        ...

    def acquire(self, handle: ProviderHandle) -> Provider:
        """The instance for ``handle``, created on a miss."""
        ...

    def discard(self, key: str, instance: Provider) -> None:
        """Let go of ``instance`` now if it is the one stored under ``key``."""
        ...


class ProviderHandle:
    """A provider as the runtime hands it out (implements :class:`~provcfg.plugin.Provider`).

    Attributes:
        name: the provider's name in the manifest.
        kind: its kind.
        key: ``name:digest`` of its spec (the provider store's key).
    """

    __slots__ = (
        "_closed",
        "_create",
        "_expires",
        "_instance",
        "_store",
        "_ttl",
        "breaker",
        "key",
        "kind",
        "name",
        "route",
    )

    def __init__(
        self, name: str, kind: str, key: str, create: Callable[[], Provider], store: InstanceSource
    ) -> None:
        self.name = name
        self.kind = kind
        self.key = key
        self._create = create
        self._store = store
        self._ttl = store.ttl
        # The live-instance view: mutable on purpose (recycled by eviction and ttl).
        # _expires is None while instances never expire: the hot path then reads no clock.
        self._instance: Provider | None = None
        self._expires: float | None = None if self._ttl is None else 0.0
        self._closed = False
        self.route: Route | None = None
        """Fallbacks and breakers to go through (None: straight to the instance)."""
        self.breaker: CircuitBreaker | None = None
        """This provider's circuit breaker, if its spec declares one."""

    # ------------------------------------------------------------------ the instance

    def instance(self) -> Provider:
        """The instance behind the handle now, acquired (created) if it was recycled.

        Raises:
            RuntimeClosedError: no generation of the runtime uses this provider any more.
            Exception: whatever the kind's factory raised while creating it.
        """
        instance = self._instance
        expires = self._expires
        if instance is not None and (expires is None or _monotonic() < expires):
            return instance
        return self._acquire()

    def _acquire(self) -> Provider:
        if self._closed:
            raise RuntimeClosedError(
                f"provider {self.name!r} was removed or changed by a reload, or its runtime "
                "closed; get it again with rt.provider() on the current runtime"
            )
        instance = self._store.acquire(self)
        if self._ttl is not None:
            self._expires = _monotonic() + self._ttl
        self._instance = instance
        return instance

    @property
    def live(self) -> bool:
        """Whether an unexpired instance is behind the handle right now (no acquisition)."""
        instance = self._instance
        expires = self._expires
        return instance is not None and (expires is None or _monotonic() < expires)

    def dropped(self, instance: Provider) -> None:
        """The store let go of ``instance`` (eviction, expiry, reload): forget it."""
        if self._instance is instance:
            self._instance = None

    def close(self) -> None:
        """No generation uses this spec any more: refuse further use."""
        self._closed = True
        self._instance = None

    def create(self) -> Provider:
        """Build a new instance with the kind's factory (the store calls this, single-flight)."""
        return self._create()

    # ------------------------------------------------------------------ Provider

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
        """The instance's ``stream()``: chunks as they arrive, the last one ``result``.

        With fallbacks or a breaker, a :class:`~provcfg._resilience.RoutedStream`
        (``.provider`` names the provider that answered).

        Raises:
            ProviderError: with a ``kind`` saying what failed.
            RuntimeClosedError: the provider is no longer part of the runtime.
        """
        route = self.route
        if route is not None:
            return RoutedStream(
                route, (prompt, model, system, max_tokens, cwd, timeout), kind_options
            )
        return self.instance().stream(
            prompt,
            model=model,
            system=system,
            max_tokens=max_tokens,
            cwd=cwd,
            timeout=timeout,
            **kind_options,
        )

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
        """Run one prompt to the end and return its :class:`~provcfg.plugin.Result`."""
        if self.route is not None:
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
        return await self.instance().complete(
            prompt,
            model=model,
            system=system,
            max_tokens=max_tokens,
            cwd=cwd,
            timeout=timeout,
            **kind_options,
        )

    def session(
        self,
        *,
        cwd: str | Path | None = None,
        model: str | None = None,
        system: str | None = None,
        **kind_options: Any,
    ) -> Session:
        """A conversation with one live agent: ``async with p.session(cwd=..) as s``.

        ``async for chunk in s.send(prompt)`` streams one turn; each turn sees the ones
        before it. Claude Code keeps one process for the session (stream-json input),
        opencode one server session, codex one app-server thread, anthropic-api the
        message history. Leaving the block ends the agent.

        Raises:
            ProviderError: ``invalid_request`` for a kind without sessions.
            RuntimeClosedError: the provider is no longer part of the runtime.
        """
        return self.instance().session(cwd=cwd, model=model, system=system, **kind_options)

    async def initialize(self) -> None:
        """Run the instance's heavy one-time set-up off the event loop (idempotent)."""
        await self.instance().initialize()

    def prepare_now(self) -> None:
        """Run the instance's heavy one-time set-up in this thread (idempotent)."""
        self.instance().prepare_now()

    @property
    def inflight(self) -> int:
        """Streams running on the current instance."""
        instance = self._instance
        return instance.inflight if instance is not None else 0

    @property
    def closed(self) -> bool:
        """True once no generation of the runtime uses this provider."""
        return self._closed

    async def wait_idle(self) -> None:
        """Return once the current instance runs no stream."""
        instance = self._instance
        if instance is not None:
            await instance.wait_idle()

    async def aclose(self) -> None:
        """Recycle the instance behind the handle now (the next call creates a new one).

        The handle itself belongs to the runtime and stays usable; ``rt.aclose()`` ends it.
        """
        instance = self._instance
        if instance is not None:
            self._store.discard(self.key, instance)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "live"
        return f"<provider {self.name!r} kind={self.kind} {state}>"
