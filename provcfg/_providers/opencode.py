"""The opencode provider kind: ``opencode run --format json``.

One request is one ``opencode run`` process; the prompt goes to stdin (``opencode
run`` reads piped stdin as the message when no message argument is given). Its
JSON lines carry ``type``, ``timestamp``, ``sessionID`` and a ``part``:

================  ==============================================================
``step_start``    nothing (a model step began)
``text``          ``text`` chunk with the finished text part (opencode prints a
                  text part once it is complete, not token by token)
``reasoning``     ``thinking`` chunk
``tool_use``      ``tool_use`` then ``tool_result`` chunk (the part is printed once
                  the tool finished or failed)
``step_finish``   tokens and cost, summed over the steps of the request
``error``         the request's error (raised after the process exits)
================  ==============================================================

opencode has no system-prompt flag: a system prompt belongs to an opencode agent
(``agent:`` in the spec), so ``system=`` is refused with that hint.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import Any, ClassVar

from provcfg._errors import ErrorKind, ProviderError
from provcfg._manifest import OpenCodeSpec
from provcfg._providers._cli import CliProvider, EventParser, _Request, error_kind, status_in_text
from provcfg._providers._meter import RequestMeter
from provcfg._providers._opencode_serve import (
    SESSION_TITLE,
    OpenCodeSession,
    OpenCodeWarm,
    ServeClient,
    client_of,
    create_session,
    final_data,
    new_inbox,
    prompt_body,
    run_prompt,
    serve_command,
)
from provcfg._providers._subprocess import CliCommand
from provcfg._providers._warm import SPAWN_TIMEOUT, LaunchKey, WarmProcess, WarmSpawnError
from provcfg._providers._wire import count, obj, opt_int, opt_number, opt_str, string
from provcfg._providers.base import Chunk, Usage

__all__ = ["SESSION_TITLE", "OpenCodeParser", "OpenCodeProvider"]

_NOTHING: tuple[Chunk, ...] = ()
_ERROR_NAMES: dict[str, ErrorKind] = {
    "ProviderAuthError": "authentication",
    "MessageOutputLengthError": "invalid_request",
    "ContextOverflowError": "invalid_request",
    "MessageAbortedError": "cancelled",
}


class OpenCodeParser(EventParser):
    """opencode ``--format json`` objects -> chunks, for one request.

    Every field it reads is type-checked (:mod:`provcfg._providers._wire`); a field of
    the wrong type raises :class:`~provcfg._providers._wire.MalformedEvent`.
    """

    def __init__(self, provider: str, metrics: Any) -> None:
        super().__init__(provider, metrics)
        self.session_id: str | None = None
        self._input = self._output = self._cache_read = self._cache_write = 0
        self._cost: float | None = None
        self._handlers = {
            "step_start": self._step_start,
            "text": self._text,
            "reasoning": self._reasoning,
            "tool_use": self._tool_use,
            "step_finish": self._step_finish,
            "error": self._error,
        }

    def feed(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        """Return the chunks of one opencode JSON object."""
        etype = string(event.get("type"), "type")
        handler = self._handlers.get(etype)
        if handler is None:
            return self.unknown(etype)
        return handler(event)

    def _step_start(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        session_id = opt_str(event.get("sessionID"), "sessionID")
        if self.session_id is None:
            self.session_id = session_id
            return (Chunk("system", data={"subtype": "init", "session_id": self.session_id}),)
        return _NOTHING

    def _text(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        text = opt_str(obj(event.get("part"), "part").get("text"), "part.text")
        return (Chunk("text", text),) if text else _NOTHING

    def _reasoning(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        text = opt_str(obj(event.get("part"), "part").get("text"), "part.text")
        return (Chunk("thinking", text),) if text else _NOTHING

    def _tool_use(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        part = obj(event.get("part"), "part")
        state = obj(part.get("state"), "part.state")
        call_id = opt_str(part.get("callID"), "part.callID") or opt_str(part.get("id"), "part.id")
        failed = opt_str(state.get("status"), "part.state.status") == "error"
        content = (
            opt_str(state.get("error"), "part.state.error")
            if failed
            else opt_str(state.get("output"), "part.state.output")
        )
        return (
            Chunk(
                "tool_use",
                data={
                    "id": call_id,
                    "name": opt_str(part.get("tool"), "part.tool"),
                    "input": dict(obj(state.get("input"), "part.state.input")),
                },
            ),
            Chunk(
                "tool_result",
                data={"tool_use_id": call_id, "content": content, "is_error": failed},
            ),
        )

    def _step_finish(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        part = obj(event.get("part"), "part")
        tokens = obj(part.get("tokens"), "part.tokens")
        cache = obj(tokens.get("cache"), "part.tokens.cache")
        cost = opt_number(part.get("cost"), "part.cost")
        reason = opt_str(part.get("reason"), "part.reason")
        session_id = opt_str(event.get("sessionID"), "sessionID")
        self._input += count(tokens.get("input"), "part.tokens.input")
        self._output += count(tokens.get("output"), "part.tokens.output") + count(
            tokens.get("reasoning"), "part.tokens.reasoning"
        )
        self._cache_read += count(cache.get("read"), "part.tokens.cache.read")
        self._cache_write += count(cache.get("write"), "part.tokens.cache.write")
        if cost is not None:
            self._cost = (self._cost or 0.0) + cost
        self.final = {
            "usage": Usage(self._input, self._output, self._cache_read, self._cache_write),
            "cost_usd": self._cost,
            "stop_reason": reason,
            "session_id": session_id or self.session_id,
        }
        return _NOTHING

    def _error(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        error = obj(event.get("error"), "error")
        name = opt_str(error.get("name"), "error.name") or "error"
        data = obj(error.get("data"), "error.data")
        message = opt_str(data.get("message"), "error.data.message") or name
        status = opt_int(data.get("statusCode"), "error.data.statusCode")
        if status is None:
            status = status_in_text(message)
        kind = _ERROR_NAMES.get(name) or error_kind(status, message)
        self.fail(f"opencode reported {name}: {message}", kind, status=status, name=name)
        return _NOTHING


class OpenCodeProvider(CliProvider):
    """Runs ``opencode run --format json -m provider/model`` per request.

    The spec's ``agent`` becomes ``--agent``. Kind options: ``session`` (an
    opencode session id to continue).
    """

    kind = "opencode"
    options: ClassVar[frozenset[str]] = frozenset({"session"})

    @property
    def agent(self) -> str | None:
        """The spec's opencode agent (``--agent``)."""
        spec = self.cli_spec
        assert isinstance(spec, OpenCodeSpec)
        return spec.agent

    def refuse_system(self, system: str | None) -> None:
        """opencode has no per-request system prompt (it belongs to an agent).

        Raises:
            ProviderError: ``invalid_request`` when ``system`` is given.
        """
        if system is not None:
            raise ProviderError(
                "opencode run has no system-prompt option; put the system prompt in an "
                f"opencode agent (opencode.json) and set providers.{self.name}.agent",
                kind="invalid_request",
                provider=self.name,
            )

    # ------------------------------------------------------------------ the server

    def warm_kind(self) -> OpenCodeWarm | None:
        """Warm opencode is ``opencode serve`` (not with ``extra_args``: they are run's)."""
        return None if self.cli_spec.extra_args else OpenCodeWarm()

    def server_command(self) -> CliCommand:
        """``opencode serve`` with the environment a cold request would get."""
        workdir = self.workdir(None)
        env = self.environment(None)
        env["PWD"] = workdir if workdir is not None else os.getcwd()
        spec = self.cli_spec
        base = CliCommand(
            argv=(str(self.program()),),
            env=env,
            cwd=workdir,
            kill_grace=spec.kill_grace,
            secrets=self._secrets,
            provider=self.name,
        )
        return serve_command(base)

    def _default_command(self, cwd: str | None) -> CliCommand:
        command = self._server_command
        if command is None:
            # One password per provider instance: the key stays the same across refreshes.
            command = self._server_command = self.server_command()
        return command

    _server_command: CliCommand | None = None

    async def serve_client(self) -> tuple[ServeClient, Callable[[], None]]:
        """A server for a session: the warm one (borrowed), else a private one.

        Raises:
            ProviderError: ``cli_failed`` when a private server does not start.
        """
        if self._path is None:
            await self.initialize()
        group = self._warm
        if group is not None:
            command = self._default_command(None)
            proc = group.take(command, True)
            if proc is not None:
                taken = proc
                return client_of(proc), lambda: group.used(command, taken)
        return await asyncio.to_thread(self._private_server)

    def _private_server(self) -> tuple[ServeClient, Callable[[], None]]:
        warm = OpenCodeWarm()
        command = self.server_command()
        key = LaunchKey.of(self.name, command)
        if key is None:
            raise ProviderError(
                f"cannot run {command.argv[0]!r}", kind="cli_not_found", provider=self.name
            )
        try:
            proc = WarmProcess.spawn(key, warm.spare_command(command), None)
        except WarmSpawnError as exc:
            raise ProviderError(str(exc), kind="cli_not_found", provider=self.name) from None
        proc.shared = True
        self.ctx.metrics.incr("cli_process_spawned", self.name)
        try:
            warm.prepare(proc, time.monotonic() + SPAWN_TIMEOUT)
        except WarmSpawnError as exc:
            tail = proc.stderr_text()
            proc.kill(command.kill_grace)
            raise ProviderError(
                str(exc), kind="cli_failed", provider=self.name, stderr_tail=tail
            ) from None

        def stop() -> None:
            threading.Thread(target=proc.kill, args=(command.kill_grace,), daemon=True).start()

        return client_of(proc), stop

    def session(
        self,
        *,
        cwd: str | Path | None = None,
        model: str | None = None,
        system: str | None = None,
        **kind_options: Any,
    ) -> OpenCodeSession:
        """A conversation in one opencode session (on the warm server when there is one)."""
        self._check_options(kind_options)
        return OpenCodeSession(
            self, self, cwd=cwd, model=model, system=system, options=kind_options
        )

    async def _run(self, request: _Request, meter: RequestMeter) -> AsyncGenerator[Chunk, None]:
        """On the warm server when one is ready, else ``opencode run`` as always."""
        group = self._warm
        proc = None
        command = None
        if group is not None and (request.options or request.system is not None):
            self.ctx.metrics.incr("warm_miss", f"{self.name}/not_kept")
        elif group is not None:
            if self._path is None:
                await self.initialize()
            command = self._default_command(None)
            proc = group.take(command, True)
        try:
            inner = super()._run(request, meter)
            if proc is not None:
                inner = self._on_server(client_of(proc), request, meter)
            async with aclosing(inner) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            if group is not None and proc is not None and command is not None:
                group.used(command, proc)

    async def _on_server(
        self, client: ServeClient, request: _Request, meter: RequestMeter
    ) -> AsyncGenerator[Chunk, None]:
        model = self.ctx.resolve_model(request.model)
        directory = self.workdir(request.cwd) or os.getcwd()
        inbox = new_inbox(self)
        session = await create_session(client, directory, inbox)
        try:
            yield Chunk("system", data={"subtype": "init", "session_id": session})
            timeout = request.timeout if request.timeout is not None else self.cli_spec.timeout
            body = prompt_body(self, request.prompt, model)
            turns = run_prompt(client, session, directory, inbox, body=body, meter=meter)
            async with asyncio.timeout(timeout), aclosing(turns) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            client.unsubscribe(session)
        yield Chunk("result", data=final_data(inbox, session, model, meter))

    def arguments(
        self, model: str | None, system: str | None, options: Mapping[str, Any]
    ) -> list[str]:
        """``run --format json`` plus model, agent and session.

        Raises:
            ProviderError: ``invalid_request`` when ``system`` is given.
        """
        spec = self.cli_spec
        assert isinstance(spec, OpenCodeSpec)
        self.refuse_system(system)
        # A fixed --title: without one opencode asks the model for a title first (a second
        # model request per run); the title is session metadata only.
        args = ["run", "--format", "json", "--title", SESSION_TITLE]
        if model:
            args += ["-m", model]
        if spec.agent:
            args += ["--agent", spec.agent]
        if options.get("session"):
            args += ["--session", str(options["session"])]
        return args

    def parser(self, options: Mapping[str, Any]) -> OpenCodeParser:
        """A fresh opencode parser."""
        return OpenCodeParser(self.name, self.ctx.metrics)
