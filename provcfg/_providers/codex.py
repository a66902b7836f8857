"""The codex provider kind: ``codex exec --json``.

One request is one ``codex exec --json --skip-git-repo-check ... -`` process: the
trailing ``-`` makes codex read the prompt from stdin, so it never sits on argv.
Its JSON lines become chunks:

==================================  ================================================
``thread.started``                  ``system`` chunk; ``thread_id`` is the session id
``turn.started``                    nothing
``item.started`` command/mcp call   ``tool_use`` chunk
``item.completed`` agent_message    ``text`` chunk
``item.completed`` reasoning        ``thinking`` chunk
``item.completed`` command/mcp      ``tool_result`` chunk (``tool_use`` first if the
                                    start was not seen)
``item.completed`` file_change,     ``tool_use`` + ``tool_result`` chunks
web_search
``item.completed`` error            ``error`` chunk; not fatal, the turn goes on
``error`` (stream error)            ``error`` chunk; fatal only if the turn fails
``turn.completed``                  usage; the request's end
``turn.failed``                     the request's error (raised after exit)
==================================  ================================================

``system`` becomes ``-c developer_instructions=...`` (TOML string).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from pathlib import Path
from typing import Any, ClassVar

from provcfg._errors import ProviderError
from provcfg._manifest import CodexSpec
from provcfg._providers._cli import CliProvider, EventParser, _Request, error_kind, status_in_text
from provcfg._providers._codex_app import (
    AppServer,
    CodexSession,
    CodexWarm,
    _Turn,
    final_data,
    new_turn,
    run_turn,
    server_of,
    start_thread,
    thread_params,
)
from provcfg._providers._meter import RequestMeter
from provcfg._providers._subprocess import CliCommand, minimal_env
from provcfg._providers._warm import SPAWN_TIMEOUT, LaunchKey, WarmProcess, WarmSpawnError
from provcfg._providers._wire import count, obj, opt_int, opt_str, string
from provcfg._providers.base import Chunk, Usage

__all__ = ["CodexParser", "CodexProvider", "native_codex"]

# The platform packages of @openai/codex, as its launcher (bin/codex.js) maps them.
_TARGETS = {
    "x86_64": ("x86_64-unknown-linux-musl", "codex-linux-x64"),
    "aarch64": ("aarch64-unknown-linux-musl", "codex-linux-arm64"),
    "arm64": ("aarch64-unknown-linux-musl", "codex-linux-arm64"),
}


def native_codex(launcher: Path) -> tuple[Path, str] | None:
    """The native codex binary behind the npm launcher ``launcher``, and its package root.

    ``@openai/codex``'s ``bin/codex.js`` is a Node script that finds the platform
    package's binary and runs it; on Node < 23 Node stays resident as its parent (two
    processes, +43 MiB, ~100-160 ms of CPU per start). Running the binary directly, with
    the two variables the launcher sets, is the same program without Node. Returns None
    when ``launcher`` is not that script (a native install, a wrapper) or no binary is
    found, so the caller keeps ``launcher``.
    """
    real = Path(os.path.realpath(launcher))
    if real.name != "codex.js" or real.parent.name != "bin" or not real.parent.parent.is_dir():
        return None
    target = _TARGETS.get(platform.machine())
    if target is None or platform.system() != "Linux":
        return None
    triple, package = target
    root = real.parent.parent
    # Where Node's require.resolve finds the platform package from the launcher, in order.
    vendors = [root / "node_modules" / "@openai" / package / "vendor"]
    vendors += [
        p / "@openai" / package / "vendor" for p in root.parents if p.name == "node_modules"
    ]
    vendors.append(root / "vendor")
    for vendor in vendors:
        binary = vendor / triple / "bin" / "codex"
        if os.access(binary, os.X_OK) and binary.is_file():
            return binary, str(root)
    return None


_NOTHING: tuple[Chunk, ...] = ()
_TOOL_ITEMS = frozenset({"command_execution", "mcp_tool_call"})
_QUIET_ITEMS = frozenset({"todo_list"})


def _tool_use(item: Mapping[str, Any]) -> Chunk:
    itype = string(item.get("type"), "item.type")
    tool_input: Any
    if itype == "mcp_tool_call":
        server = opt_str(item.get("server"), "item.server")
        tool = opt_str(item.get("tool"), "item.tool")
        name = f"{server}.{tool}"
        tool_input = item.get("arguments")  # opaque JSON, as codex passes it on
    elif itype == "command_execution":
        name = "command_execution"
        tool_input = {"command": opt_str(item.get("command"), "item.command")}
    elif itype == "file_change":
        name = "file_change"
        tool_input = {"changes": item.get("changes")}
    else:
        name, tool_input = itype, {"query": opt_str(item.get("query"), "item.query")}
    item_id = opt_str(item.get("id"), "item.id")
    return Chunk("tool_use", data={"id": item_id, "name": name, "input": tool_input})


def _tool_result(item: Mapping[str, Any]) -> Chunk:
    itype = string(item.get("type"), "item.type")
    status = opt_str(item.get("status"), "item.status")
    extra: dict[str, Any] = {}
    content: Any
    if itype == "command_execution":
        code = opt_int(item.get("exit_code"), "item.exit_code")
        content = opt_str(item.get("aggregated_output"), "item.aggregated_output")
        is_error = status == "failed" or (code is not None and code != 0)
        extra["exit_code"] = code
    elif itype == "mcp_tool_call":
        error, result = item.get("error"), item.get("result")  # opaque JSON
        content, is_error = (error if error else result), bool(error)
    else:
        content, is_error = status, status == "failed"
    item_id = opt_str(item.get("id"), "item.id")
    return Chunk(
        "tool_result",
        data={"tool_use_id": item_id, "content": content, "is_error": is_error, **extra},
    )


def _stop_later(proc: WarmProcess) -> None:
    """Stop a session's private app-server without blocking the caller."""
    threading.Thread(target=proc.kill, args=(proc.command.kill_grace,), daemon=True).start()


class CodexParser(EventParser):
    """codex ``exec --json`` objects -> chunks, for one request.

    Every field it reads is type-checked (:mod:`provcfg._providers._wire`); a field of
    the wrong type raises :class:`~provcfg._providers._wire.MalformedEvent`.
    """

    def __init__(self, provider: str, metrics: Any) -> None:
        super().__init__(provider, metrics)
        self.session_id: str | None = None
        self._started: set[str | None] = set()
        self._last_error: str | None = None
        self._handlers = {
            "thread.started": self._thread_started,
            "turn.started": self._ignore,
            "item.started": self._item_started,
            "item.updated": self._ignore,
            "item.completed": self._item_completed,
            "turn.completed": self._turn_completed,
            "turn.failed": self._turn_failed,
            "error": self._stream_error,
        }

    def feed(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        """Return the chunks of one codex JSON object."""
        etype = string(event.get("type"), "type")
        handler = self._handlers.get(etype)
        if handler is None:
            return self.unknown(etype)
        return handler(event)

    def finish(self) -> None:
        """A stream error with no turn result afterwards is the request's failure."""
        if self.final is None and self._last_error is not None:
            self._fail(self._last_error)

    def _ignore(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        return _NOTHING

    def _thread_started(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        self.session_id = opt_str(event.get("thread_id"), "thread_id")
        return (Chunk("system", data={"subtype": "init", "session_id": self.session_id}),)

    def _item_started(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        item = obj(event.get("item"), "item")
        if opt_str(item.get("type"), "item.type") in _TOOL_ITEMS:
            chunk = _tool_use(item)
            self._started.add(opt_str(item.get("id"), "item.id"))
            return (chunk,)
        return _NOTHING

    def _item_completed(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        item = obj(event.get("item"), "item")
        itype = opt_str(item.get("type"), "item.type")
        if itype == "agent_message":
            text = opt_str(item.get("text"), "item.text")
            return (Chunk("text", text),) if text else _NOTHING
        if itype == "reasoning":
            text = opt_str(item.get("text"), "item.text")
            return (Chunk("thinking", text),) if text else _NOTHING
        if itype in _TOOL_ITEMS:
            item_id = opt_str(item.get("id"), "item.id")
            if item_id in self._started:
                result = _tool_result(item)
                self._started.discard(item_id)
                return (result,)
            return (_tool_use(item), _tool_result(item))
        if itype in ("file_change", "web_search"):
            return (_tool_use(item), _tool_result(item))
        if itype == "error":
            message = opt_str(item.get("message"), "item.message") or ""
            return (Chunk("error", data={"message": message, "fatal": False}),)
        if itype in _QUIET_ITEMS:
            return _NOTHING
        return self.unknown(f"item/{itype}")

    def _turn_completed(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        usage = obj(event.get("usage"), "usage")
        self.final = {
            "usage": Usage(
                input_tokens=count(usage.get("input_tokens"), "usage.input_tokens"),
                output_tokens=count(usage.get("output_tokens"), "usage.output_tokens"),
                cache_read_input_tokens=count(
                    usage.get("cached_input_tokens"), "usage.cached_input_tokens"
                ),
            ),
            "cost_usd": None,
            "stop_reason": "end_turn",
            "session_id": self.session_id,
        }
        self._last_error = None
        return _NOTHING

    def _turn_failed(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        error = obj(event.get("error"), "error")
        message = opt_str(error.get("message"), "error.message")
        self._fail(message or self._last_error or "turn failed")
        return _NOTHING

    def _stream_error(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        message = opt_str(event.get("message"), "message") or ""
        self._last_error = message
        return (Chunk("error", data={"message": message, "fatal": False}),)

    def _fail(self, message: str) -> None:
        status = status_in_text(message)
        self.fail(f"codex turn failed: {message}", error_kind(status, message), status=status)


class CodexProvider(CliProvider):
    """Runs ``codex exec --json --skip-git-repo-check --sandbox MODE [-m MODEL] -`` per request."""

    kind = "codex"
    options: ClassVar[frozenset[str]] = frozenset()
    _native: tuple[Path, str] | None = None

    @property
    def sandbox(self) -> str:
        """The spec's sandbox mode (``--sandbox`` of exec, ``sandbox`` of a thread)."""
        spec = self.cli_spec
        assert isinstance(spec, CodexSpec)
        return spec.sandbox

    # ------------------------------------------------------------------ the app-server

    def warm_kind(self) -> CodexWarm | None:
        """Warm codex is an app-server (not with ``extra_args``: they are exec's)."""
        return None if self.cli_spec.extra_args else CodexWarm()

    def server_command(self, cwd: str | None = None) -> CliCommand:
        """``codex app-server`` with the environment a cold request would get."""
        workdir = self.workdir(None)
        env = self.environment(None)
        env["PWD"] = workdir if workdir is not None else os.getcwd()
        spec = self.cli_spec
        return CliCommand(
            argv=(str(self.program()), "app-server"),
            env=env,
            cwd=workdir,
            kill_grace=spec.kill_grace,
            secrets=self._secrets,
            provider=self.name,
        )

    def _default_command(self, cwd: str | None) -> CliCommand:
        return self.server_command()

    async def app_server(self) -> tuple[AppServer, Callable[[], None]]:
        """A server for a session: the warm one (borrowed), else a private one.

        Returns:
            The client and the function that gives it back (or stops the private one).

        Raises:
            ProviderError: ``cli_failed`` when a private server does not start.
        """
        if self._path is None:
            await self.initialize()
        command = self.server_command()
        group = self._warm
        proc = group.take(command, True) if group is not None else None
        if proc is not None and group is not None:
            taken = proc
            return server_of(proc), lambda: group.used(command, taken)
        return await asyncio.to_thread(self._private_server, command)

    def _private_server(self, command: CliCommand) -> tuple[AppServer, Callable[[], None]]:
        warm = CodexWarm()
        key = LaunchKey.of(self.name, command)
        if key is None:
            raise ProviderError(
                f"cannot run {command.argv[0]!r}", kind="cli_not_found", provider=self.name
            )
        try:
            proc = WarmProcess.spawn(key, command, None)
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
        return server_of(proc), lambda: _stop_later(proc)

    def session(
        self,
        *,
        cwd: str | Path | None = None,
        model: str | None = None,
        system: str | None = None,
        **kind_options: Any,
    ) -> CodexSession:
        """A conversation on one app-server thread (the warm server's when there is one)."""
        self._check_options(kind_options)
        return CodexSession(self, self, cwd=cwd, model=model, system=system, options=kind_options)

    async def _run(self, request: _Request, meter: RequestMeter) -> AsyncGenerator[Chunk, None]:
        """On the warm app-server when one is ready, else ``codex exec`` as always."""
        group = self._warm
        proc = None
        command = None
        if group is not None:
            if self._path is None:
                await self.initialize()
            command = self.server_command()
            proc = group.take(command, True) if self._warm_shape(request) else None
        try:
            inner = super()._run(request, meter)
            if proc is not None:
                inner = await self._thread_or_cold(server_of(proc), request, meter)
            async with aclosing(inner) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            if group is not None and proc is not None and command is not None:
                group.used(command, proc)

    async def _thread_or_cold(
        self, server: AppServer, request: _Request, meter: RequestMeter
    ) -> AsyncGenerator[Chunk, None]:
        try:
            thread, turn = await self._open_thread(server, request)
        except ProviderError:
            if server.alive:
                raise
            # The server died as it was borrowed: nothing was sent yet, run cold.
            self.ctx.metrics.incr("warm_miss", f"{self.name}/died_at_take")
            return super()._run(request, meter)
        return self._on_server(server, thread, turn, request, meter)

    def _warm_shape(self, request: _Request) -> bool:
        if request.max_tokens is not None or request.options:
            self.ctx.metrics.incr("warm_miss", f"{self.name}/not_kept")
            return False
        return True

    async def _open_thread(self, server: AppServer, request: _Request) -> tuple[str, _Turn]:
        model = self.ctx.resolve_model(request.model)
        turn = new_turn(self)
        params = thread_params(self, self.workdir(request.cwd), model, request.system)
        return await start_thread(server, params, turn), turn

    async def _on_server(
        self,
        server: AppServer,
        thread: str,
        turn: _Turn,
        request: _Request,
        meter: RequestMeter,
    ) -> AsyncGenerator[Chunk, None]:
        model = self.ctx.resolve_model(request.model)
        try:
            yield Chunk("system", data={"subtype": "init", "session_id": thread})
            timeout = request.timeout if request.timeout is not None else self.cli_spec.timeout
            turns = run_turn(server, thread, turn, request.prompt, meter)
            async with asyncio.timeout(timeout), aclosing(turns) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            server.unsubscribe(thread)
        yield Chunk("result", data=final_data(turn, thread, model, meter))

    def located(self) -> None:
        """Look for the native binary behind an npm launcher (run in its place)."""
        assert self._path is not None
        self._native = native_codex(self._path)

    def program(self) -> Path:
        """The native codex binary when the CLI found is the npm launcher, else the CLI."""
        return self._native[0] if self._native is not None else super().program()

    def environment(self, max_tokens: int | None) -> dict[str, str]:
        """The minimal environment, plus what the npm launcher tells the native binary."""
        env = minimal_env(self.cli_spec.env)
        if self._native is not None:
            env.setdefault("CODEX_MANAGED_BY_NPM", "1")
            env.setdefault("CODEX_MANAGED_PACKAGE_ROOT", self._native[1])
        return env

    def arguments(
        self, model: str | None, system: str | None, options: Mapping[str, Any]
    ) -> list[str]:
        """``exec --json --skip-git-repo-check --sandbox`` plus model and instructions."""
        spec = self.cli_spec
        assert isinstance(spec, CodexSpec)
        args = ["exec", "--json", "--skip-git-repo-check", "--sandbox", spec.sandbox]
        if model:
            args += ["-m", model]
        if system is not None:
            # A JSON string without \\u escapes of astral characters is a TOML basic string.
            args += ["-c", "developer_instructions=" + json.dumps(system, ensure_ascii=False)]
        return args

    # ------------------------------------------------------------------ exec

    def trailing_arguments(self) -> list[str]:
        """``-``: codex reads the prompt from stdin."""
        return ["-"]

    def parser(self, options: Mapping[str, Any]) -> CodexParser:
        """A fresh codex parser."""
        return CodexParser(self.name, self.ctx.metrics)
