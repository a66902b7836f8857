"""Claude Code sessions: one ``claude -p --input-format stream-json`` process, many turns.

The session's process is started with the cold command of its (cwd, model) plus
stream-json input, or is a ready spare of exactly that launch. Each turn writes one
user line and reads until the turn's ``result`` line: every turn starts with a fresh
``system``/``init`` line carrying the same session id, and the CLI sends the earlier
turns with the new one. ``result.total_cost_usd`` is cumulative over the process, so a
turn's cost is the difference.

A turn whose ``result`` has ``is_error`` raises its mapped :class:`ProviderError`; the
process stays usable (the failed turn's prompt stays in the history: the CLI merges it
into the next user message). A turn left early (the caller stops reading, or the task
is cancelled) sends an ``interrupt`` control request and waits for that turn's
``result``, so the next turn starts clean. End of output means the process died:
the session is over (``cli_failed``). Leaving the session closes stdin (the CLI
flushes its session file and exits), then stops the process group.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from provcfg._errors import ProviderError
from provcfg._providers._claude_warm import control_line, stream_input, user_line
from provcfg._providers._cli import CliProvider
from provcfg._providers._meter import RequestMeter
from provcfg._providers._sessions import SessionBase
from provcfg._providers._subprocess import CliProcess
from provcfg._providers.base import Chunk, Usage

__all__ = ["ClaudeSession"]

_INTERRUPT_WAIT: Final = 10.0
_EXIT_WAIT: Final = 2.0


async def _until_result(events: AsyncGenerator[dict[str, Any], None]) -> bool:
    """Read up to the next ``result`` line; False when the output ended first."""
    while (event := await anext(events, None)) is not None:
        if event.get("type") == "result":
            return True
    return False


class ClaudeSession(SessionBase):
    """A conversation with one Claude Code process (see the module docstring)."""

    provider: CliProvider

    def __init__(
        self,
        provider: CliProvider,
        *,
        cwd: str | Path | None,
        model: str | None,
        system: str | None,
        options: dict[str, Any],
    ) -> None:
        super().__init__(provider, cwd=cwd, model=model, system=system, options=options)
        self._proc: CliProcess | None = None
        self._events: AsyncGenerator[dict[str, Any], None] | None = None
        self._cost = 0.0
        self._turns = 0

    async def _open(self) -> None:
        provider = self.provider
        model_id = provider.ctx.resolve_model(self.model)
        cold = provider.session_command(self.cwd, model_id, self.system, self.options)
        spare = provider.take_spare(cold, model_id == provider.ctx.resolve_model(None))
        command = replace(stream_input(cold), keep_stdin=True)
        self._proc = CliProcess(command, provider.ctx.metrics, adopt=spare)
        await self._proc.start()
        self._events = self._proc.events()
        if spare is not None:
            provider.spare_used(cold, spare)

    async def _turn(
        self, prompt: str, timeout: float | None, meter: RequestMeter
    ) -> AsyncGenerator[Chunk, None]:
        proc, events = self._proc, self._events
        assert proc is not None and events is not None
        spec = self.provider.cli_spec
        proc.restart_clock(timeout if timeout is not None else spec.timeout)
        proc.write(user_line(prompt))
        meter.connected()
        parser = self.provider.parser(self.options)
        done = False
        try:
            while not done:
                event = await anext(events, None)
                if event is None:
                    raise self._died(proc)
                done = event.get("type") == "result"
                for chunk in self.provider._chunks(parser, event):
                    yield chunk
        finally:
            if not done and not proc.exited:
                await self._interrupt(proc, events)
        self._turns += 1
        self._session_id = getattr(parser, "session_id", None) or self._session_id
        if parser.error is not None:
            raise parser.error
        yield Chunk("result", data=self._final(parser.final or {}, meter))

    def _final(self, final: dict[str, Any], meter: RequestMeter) -> dict[str, Any]:
        data = dict(final)
        total = data.get("cost_usd")
        if isinstance(total, int | float):
            data["cost_usd"], self._cost = float(total) - self._cost, float(total)
        usage = data.setdefault("usage", Usage())
        data["turn"] = self._turns
        data["timings"] = meter.succeeded(usage, data.get("cost_usd"))
        return data

    async def _interrupt(
        self, proc: CliProcess, events: AsyncGenerator[dict[str, Any], None]
    ) -> None:
        """Stop the running turn and read up to its ``result`` (the session stays usable)."""
        try:
            proc.write(control_line(f"interrupt-{self._turns}", "interrupt"))
            async with asyncio.timeout(_INTERRUPT_WAIT):
                if await _until_result(events):
                    return
        except (ProviderError, TimeoutError):
            pass
        self.ended(self._died(proc))

    def _died(self, proc: CliProcess) -> ProviderError:
        return self.ended(
            ProviderError(
                f"the Claude Code process of this session ended (after {self._turns} turns); "
                "open a new session",
                kind="cli_failed",
                provider=self.provider.name,
                stderr_tail=proc.stderr_tail,
            )
        )

    async def _close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        proc.close_stdin()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_EXIT_WAIT):
                while not proc.exited:  # noqa: ASYNC110 (the exit is a process event)
                    await asyncio.sleep(0.01)
        await proc.aclose()
