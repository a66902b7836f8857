"""Sessions: many turns through one live agent (``provider.session(cwd=, model=)``).

:class:`SessionBase` is what every kind's session shares: it counts as a stream of
its provider while open (a reload closes the provider only after the session ended),
runs each turn as one metered request (one :class:`~provcfg._metrics.RequestRecord`
per turn, first-chunk time and all), refuses turns after it closed or after its agent
died, and runs one turn at a time (a second ``send`` while one streams waits).
Kinds implement :meth:`SessionBase._open`, :meth:`SessionBase._turn` and
:meth:`SessionBase._close`.

:class:`HistorySession` is the generic implementation for a kind that takes the whole
conversation per request (the anthropic-api kind: ``messages=``): it keeps the message
history and sends it with every turn.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provcfg._errors import ProviderError
from provcfg._providers._meter import RequestMeter
from provcfg._providers.base import Chunk, metered

if TYPE_CHECKING:
    from provcfg._providers.base import BaseProvider

__all__ = ["HistorySession", "SessionBase"]


class SessionBase:
    """The shared half of a session (see the module docstring)."""

    def __init__(
        self,
        provider: BaseProvider,
        *,
        cwd: str | Path | None,
        model: str | None,
        system: str | None,
        options: dict[str, Any],
    ) -> None:
        self.provider = provider
        self.cwd = cwd
        self.model = model
        self.system = system
        self.options = options
        self._session_id: str | None = None
        self._entered = False
        self._closed = False
        self._dead: ProviderError | None = None
        self._lock = asyncio.Lock()

    @property
    def session_id(self) -> str | None:
        """The agent's own id of this conversation (known after the first turn)."""
        return self._session_id

    async def __aenter__(self) -> SessionBase:
        await self.provider._enter_stream()
        self._entered = True
        try:
            await self._open()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def send(self, prompt: str, *, timeout: float | None = None) -> AsyncIterator[Chunk]:
        """Stream one turn; the last chunk is its ``result``.

        Raises:
            ProviderError: the turn failed; ``cli_failed`` once the agent has ended.
        """
        if not self._entered or self._closed:
            raise ProviderError(
                "this session is not open; use it as `async with provider.session(...) as s`",
                kind="invalid_request",
                provider=self.provider.name,
            )
        meter = RequestMeter.of(self.provider.ctx)
        return metered(self.provider, meter, lambda: self._locked_turn(prompt, timeout, meter))

    async def _locked_turn(
        self, prompt: str, timeout: float | None, meter: RequestMeter
    ) -> AsyncIterator[Chunk]:
        async with self._lock:
            if self._dead is not None:
                raise self._dead
            async with aclosing(self._turn(prompt, timeout, meter)) as chunks:
                async for chunk in chunks:
                    yield chunk

    def ended(self, error: ProviderError) -> ProviderError:
        """Mark the session over (its agent died); later turns raise ``error``."""
        self._dead = error
        return error

    async def aclose(self) -> None:
        """End the agent's side and stop counting as a stream; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._close()
        finally:
            if self._entered:
                self.provider._exit_stream()

    # ------------------------------------------------------------------ per kind

    async def _open(self) -> None:
        """Start (or take) the agent the session talks to."""

    def _turn(
        self, prompt: str, timeout: float | None, meter: RequestMeter
    ) -> AsyncGenerator[Chunk, None]:
        """One turn's chunks, ending with its ``result`` (report it on ``meter``)."""
        raise NotImplementedError

    async def _close(self) -> None:
        """Stop the agent (or end the server-side session)."""


class HistorySession(SessionBase):
    """A session for a kind that takes the whole conversation per request (``messages=``).

    Every turn sends the history so far plus the new prompt; a turn that fails adds
    nothing to the history, so the session stays usable.
    """

    def __init__(
        self,
        provider: BaseProvider,
        *,
        cwd: str | Path | None,
        model: str | None,
        system: str | None,
        options: dict[str, Any],
    ) -> None:
        super().__init__(provider, cwd=cwd, model=model, system=system, options=options)
        self.messages: list[dict[str, Any]] = []

    async def _open(self) -> None:
        # The API keeps no conversation: the id is ours, for callers that log one.
        self._session_id = f"provcfg-{uuid.uuid4().hex}"

    def send(self, prompt: str, *, timeout: float | None = None) -> AsyncIterator[Chunk]:
        """Stream one turn: the provider's own request, carrying the history."""
        if not self._entered or self._closed:
            raise ProviderError(
                "this session is not open; use it as `async with provider.session(...) as s`",
                kind="invalid_request",
                provider=self.provider.name,
            )
        return self._history_turn(prompt, timeout)

    async def _history_turn(self, prompt: str, timeout: float | None) -> AsyncIterator[Chunk]:
        async with self._lock:
            messages = [*self.messages, {"role": "user", "content": prompt}]
            parts: list[str] = []
            stream = self.provider.stream(
                prompt,
                model=self.model,
                system=self.system,
                timeout=timeout,
                messages=messages,
                **self.options,
            )
            try:
                async for chunk in stream:
                    parts.append(chunk.text if chunk.type == "text" else "")
                    yield chunk
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
            self.messages = [*messages, {"role": "assistant", "content": "".join(parts)}]
