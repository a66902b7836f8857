"""codex's warm path: one ``codex app-server`` serving many requests and sessions.

``codex app-server`` speaks JSON-RPC 2.0 (without the ``"jsonrpc"`` field) over stdio,
one object per line: ``initialize`` + ``initialized`` once, then per request
``thread/start {model, cwd, sandbox, approvalPolicy, developerInstructions}`` and
``turn/start {threadId, input}``; notifications carry the ``threadId`` they belong to,
so one server runs many threads at once (different folders and models included).

:class:`AppServer` is the client half: a reader thread per server routes responses to
their callers and notifications to the thread's subscriber (on the subscriber's event
loop), and drains stderr (codex always warns there at start: never a health signal).
:class:`CodexWarm` is the pool part (``shared``: requests borrow the server, they do
not take it). :func:`run_turn` streams one turn as chunks, used by one-off requests
(a new thread each) and by :class:`CodexSession` (one thread, many turns).

Mapping (app-server notification -> chunk): ``thread/started`` -> ``system``;
``item/agentMessage/delta`` -> ``text`` (token-level, which ``exec --json`` lacks);
``item/reasoning/*Delta`` -> ``thinking``; tool items (commandExecution, mcpToolCall,
fileChange, webSearch) -> ``tool_use`` on start, ``tool_result`` on completion;
``error`` -> ``error`` chunk; ``thread/tokenUsage/updated`` -> usage;
``turn/completed`` ends the turn (``failed``: the error, with the HTTP status from
``codexErrorInfo``; ``interrupted``: cancelled).

Why a warm codex request is ~0.2x of a cold one, not less: codex spends 80-110 ms of
CPU per turn inside a warm server (prompt, skills, AGENTS.md discovery, rollout files),
the second turn of a thread included (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import select
import threading
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Protocol

from provcfg._errors import ProviderError
from provcfg._logs import get_logger
from provcfg._providers._cli import error_kind, status_in_text
from provcfg._providers._meter import RequestMeter
from provcfg._providers._sessions import SessionBase
from provcfg._providers._subprocess import CliCommand
from provcfg._providers._warm import WarmProcess, WarmSpawnError
from provcfg._providers.base import BaseProvider, Chunk, ProviderContext, Usage

__all__ = ["AppServer", "CodexHost", "CodexSession", "CodexWarm", "run_turn"]

log = get_logger(__name__)

_CALL_TIMEOUT: Final = 60.0
_TOOL_ITEMS: Final = frozenset({"commandExecution", "mcpToolCall", "fileChange", "webSearch"})


class CodexHost(Protocol):
    """What the codex provider offers this module (it is not imported here: it imports us)."""

    name: str
    ctx: ProviderContext

    @property
    def sandbox(self) -> str:
        """The spec's sandbox mode."""
        ...

    def workdir(self, cwd: str | Path | None) -> str | None:
        """The absolute working folder of a request (the spec's if None)."""
        ...

    async def app_server(self) -> tuple[AppServer, Callable[[], None]]:
        """A server for a session and the function that gives it back."""
        ...


class AppServer:
    """The client side of one ``codex app-server`` process (see the module docstring)."""

    def __init__(self, proc: WarmProcess) -> None:
        self.proc = proc
        self._lock = threading.Lock()
        self._next = 0
        self._calls: dict[int, concurrent.futures.Future[dict[str, Any]]] = {}
        self._threads: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._stderr = bytearray()
        self.alive = True
        self._reader = threading.Thread(target=self._read, name="provcfg-codex", daemon=True)
        self._reader.start()

    # ------------------------------------------------------------------ calls

    def call_sync(self, method: str, params: Any, timeout: float = _CALL_TIMEOUT) -> Any:
        """Send a request and block for its result.

        Raises:
            ProviderError: the server answered with an error, died, or was too slow.
        """
        return self._result(method, self._send(method, params).result(timeout))

    async def call(self, method: str, params: Any, timeout: float = _CALL_TIMEOUT) -> Any:
        """Send a request and await its result (any event loop).

        Raises:
            ProviderError: the server answered with an error, died, or was too slow.
        """
        future = self._send(method, params)
        try:
            async with asyncio.timeout(timeout):
                reply = await asyncio.wrap_future(future)
        except TimeoutError:
            raise self._failure(f"codex app-server did not answer {method} in time") from None
        return self._result(method, reply)

    def notify(self, method: str, params: Any = None) -> None:
        """Send a notification (no answer)."""
        message: dict[str, Any] = {"method": method}
        if params is not None:
            message["params"] = params
        self._write(message)

    def subscribe(self, thread_id: str, deliver: Callable[[dict[str, Any]], None]) -> None:
        """Route the notifications of ``thread_id`` to ``deliver`` (called in the reader
        thread: hand them to your loop with ``call_soon_threadsafe``)."""
        with self._lock:
            self._threads[thread_id] = deliver

    def unsubscribe(self, thread_id: str) -> None:
        """Stop routing ``thread_id``'s notifications."""
        with self._lock:
            self._threads.pop(thread_id, None)

    def _send(self, method: str, params: Any) -> concurrent.futures.Future[dict[str, Any]]:
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        with self._lock:
            if not self.alive:
                future.set_exception(self._failure("codex app-server has exited"))
                return future
            self._next += 1
            ident = self._next
            self._calls[ident] = future
        self._write({"id": ident, "method": method, "params": params})
        return future

    def _write(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            try:
                self.proc.write(data)
            except OSError:
                self.alive = False
                raise self._failure("codex app-server no longer reads its input") from None

    def _result(self, method: str, reply: dict[str, Any]) -> Any:
        error = reply.get("error")
        if error is not None:
            message = str(error.get("message") if isinstance(error, dict) else error)
            raise ProviderError(
                f"codex app-server refused {method}: {message}",
                kind=error_kind(None, message, "invalid_request"),
                provider=self.proc.owner_name,
            )
        return reply.get("result")

    def _failure(self, message: str) -> ProviderError:
        tail = self._stderr[-2000:].decode("utf-8", "replace")
        return ProviderError(
            message, kind="cli_failed", provider=self.proc.owner_name, stderr_tail=tail
        )

    # ------------------------------------------------------------------ the reader

    def _read(self) -> None:
        out, err = self.proc.popen.stdout, self.proc.popen.stderr
        assert out is not None and err is not None
        out_fd, err_fd = out.fileno(), err.fileno()
        poller = select.poll()
        open_fds = {out_fd, err_fd}
        for fd in open_fds:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        buf = bytearray()
        try:
            while out_fd in open_fds:
                for fd, _ in poller.poll():
                    buf = self._pump(fd, out_fd, buf, poller, open_fds)
        except (OSError, ValueError) as exc:  # the pool closed the pipes (reaped)
            log.debug("codex_app_server_reader_stopped", error=repr(exc))
        self._died()

    def _pump(
        self, fd: int, out_fd: int, buf: bytearray, poller: Any, open_fds: set[int]
    ) -> bytearray:
        """Read what ``fd`` has: stdout lines are dispatched, stderr kept as a tail."""
        data = os.read(fd, 256 * 1024)
        if not data:
            poller.unregister(fd)
            open_fds.discard(fd)
        elif fd == out_fd:
            return self._lines(buf + data)
        else:
            self._stderr += data
            del self._stderr[:-8192]
        return buf

    def _lines(self, buf: bytearray) -> bytearray:
        *lines, rest = bytes(buf).split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                self._dispatch(message)
        return bytearray(rest)

    def _dispatch(self, message: dict[str, Any]) -> None:
        ident = message.get("id")
        if ident is not None and "method" not in message:
            with self._lock:
                future = self._calls.pop(ident, None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        params = message.get("params")
        thread = _thread_of(params)
        if thread is None:
            return
        with self._lock:
            deliver = self._threads.get(thread)
        if deliver is not None:
            deliver(message)

    def _died(self) -> None:
        log.info(
            "codex_app_server_exited",
            provider=self.proc.owner_name,
            pid=self.proc.pid,
            code=self.proc.popen.poll(),
            stderr=self._stderr[-500:].decode("utf-8", "replace"),
        )
        with self._lock:
            self.alive = False
            calls, self._calls = self._calls, {}
            threads = list(self._threads.values())
        for future in calls.values():
            if not future.done():
                future.set_exception(self._failure("codex app-server exited"))
        for deliver in threads:
            deliver({"method": "provcfg/serverExited"})


def _thread_of(params: Any) -> str | None:
    if not isinstance(params, dict):
        return None
    thread = params.get("threadId")
    if isinstance(thread, str):
        return thread
    inner = params.get("thread")
    if isinstance(inner, dict) and isinstance(inner.get("id"), str):
        return str(inner["id"])
    return None


def server_of(proc: WarmProcess) -> AppServer:
    """The :class:`AppServer` client of a prepared codex server process."""
    server = proc.extra
    assert isinstance(server, AppServer)
    return server


class CodexWarm:
    """The codex part of the warm pool: servers, borrowed by requests (``shared``)."""

    shared = True

    def spare_command(self, cold: CliCommand) -> CliCommand:
        """``cold`` is already the server command (``app-server``): kept as it is."""
        return replace(cold, stdin=b"")

    def prepare(self, proc: WarmProcess, deadline: float) -> None:
        """Start the client and do the handshake (``initialize``, ``initialized``).

        Raises:
            WarmSpawnError: the server exited or did not answer.
        """
        server = AppServer(proc)
        proc.extra = server
        try:
            server.call_sync(
                "initialize",
                {"clientInfo": {"name": "provcfg", "title": None, "version": "1"}},
                timeout=max(1.0, deadline - _now()),
            )
            server.notify("initialized")
        except (ProviderError, concurrent.futures.TimeoutError) as exc:
            raise WarmSpawnError(f"codex app-server handshake failed: {exc}") from None

    def fingerprint(self, command: CliCommand) -> object:
        """Nothing: codex reads AGENTS.md and the folder per thread, not at start-up."""
        return None

    def healthy(self, proc: WarmProcess) -> bool:
        """Whether the server's client still reads it."""
        extra = proc.extra
        return isinstance(extra, AppServer) and extra.alive


def _now() -> float:
    import time

    return time.monotonic()


# --------------------------------------------------------------------------- turns


class _Turn:
    """One thread's notifications on the caller's loop, plus what the turn produced."""

    def __init__(self, provider: str, metrics: Any) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.provider = provider
        self.metrics = metrics
        self.usage = Usage()
        self.streamed: set[str] = set()
        self.last_error: str | None = None
        self.turn_id: str | None = None

    def deliver(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
            self.loop.call_soon_threadsafe(self.queue.put_nowait, message)


async def start_thread(server: AppServer, params: dict[str, Any], turn: _Turn) -> str:
    """``thread/start``; returns the thread id and routes its notifications to ``turn``."""
    result = await server.call("thread/start", params)
    thread = result.get("thread") if isinstance(result, dict) else None
    thread_id = thread.get("id") if isinstance(thread, dict) else None
    if not isinstance(thread_id, str):
        raise ProviderError(
            "codex app-server answered thread/start without a thread id",
            kind="cli_failed",
            provider=turn.provider,
        )
    server.subscribe(thread_id, turn.deliver)
    return thread_id


async def run_turn(
    server: AppServer, thread_id: str, turn: _Turn, prompt: str, meter: RequestMeter
) -> AsyncGenerator[Chunk, None]:
    """Stream one turn of ``thread_id``; the caller yields a ``result`` chunk after it.

    Raises:
        ProviderError: the turn failed (kind from the HTTP status or the message),
            ``cancelled`` when it was interrupted, ``cli_failed`` when the server died.
    """
    item = {"type": "text", "text": prompt, "text_elements": []}
    result = await server.call("turn/start", {"threadId": thread_id, "input": [item]})
    inner = result.get("turn") if isinstance(result, dict) else None
    turn.turn_id = inner.get("id") if isinstance(inner, dict) else None
    meter.connected()
    finished = False
    try:
        while not finished:
            message = await turn.queue.get()
            method = message.get("method")
            params = message.get("params") or {}
            if method == "provcfg/serverExited":
                raise server._failure("codex app-server exited during the turn")
            if method == "turn/completed":
                finished = True
                _completed(turn, params)
                continue
            for chunk in _chunks(turn, method, params):
                yield chunk
    finally:
        if not finished and server.alive and turn.turn_id is not None:
            with contextlib.suppress(ProviderError):
                await server.call(
                    "turn/interrupt", {"threadId": thread_id, "turnId": turn.turn_id}, 10.0
                )


def _chunks(turn: _Turn, method: Any, params: dict[str, Any]) -> tuple[Chunk, ...]:
    if method == "item/agentMessage/delta":
        turn.streamed.add(str(params.get("itemId")))
        return (Chunk("text", str(params.get("delta") or "")),)
    if method in ("item/reasoning/textDelta", "item/reasoning/summaryTextDelta"):
        return (Chunk("thinking", str(params.get("delta") or "")),)
    if method == "thread/tokenUsage/updated":
        last = (params.get("tokenUsage") or {}).get("last") or {}
        turn.usage = Usage(
            input_tokens=int(last.get("inputTokens") or 0),
            output_tokens=int(last.get("outputTokens") or 0),
            cache_read_input_tokens=int(last.get("cachedInputTokens") or 0),
        )
        return ()
    if method == "error":
        error = params.get("error") or {}
        text = str(error.get("message") or "")
        turn.last_error = text
        return (Chunk("error", data={"message": text, "fatal": False}),)
    if method in ("item/started", "item/completed"):
        return _item(turn, method, params.get("item") or {})
    return ()


def _item(turn: _Turn, method: str, item: dict[str, Any]) -> tuple[Chunk, ...]:
    itype = item.get("type")
    if itype == "agentMessage" and method == "item/completed":
        text = item.get("text")
        if text and str(item.get("id")) not in turn.streamed:
            return (Chunk("text", str(text)),)
        return ()
    if itype not in _TOOL_ITEMS:
        return ()
    if method == "item/started":
        tool_input = {k: v for k, v in item.items() if k in ("command", "arguments", "changes")}
        return (Chunk("tool_use", data={"id": item.get("id"), "name": itype, "input": tool_input}),)
    status = item.get("status")
    code = item.get("exitCode")
    failed = status == "failed" or (isinstance(code, int) and code != 0)
    content = item.get("aggregatedOutput", item.get("result", status))
    data = {"tool_use_id": item.get("id"), "content": content, "is_error": failed}
    if itype == "commandExecution":
        data["exit_code"] = code
    return (Chunk("tool_result", data=data),)


def _completed(turn: _Turn, params: dict[str, Any]) -> None:
    inner = params.get("turn") or {}
    status = inner.get("status")
    if status == "completed":
        return
    if status == "interrupted":
        raise ProviderError(
            "the codex turn was interrupted", kind="cancelled", provider=turn.provider
        )
    error = inner.get("error") or {}
    message = str(error.get("message") or turn.last_error or "turn failed")
    info = error.get("codexErrorInfo") or {}
    http = info.get("httpConnectionFailed") if isinstance(info, dict) else None
    status_code = http.get("httpStatusCode") if isinstance(http, dict) else None
    if not isinstance(status_code, int):
        status_code = status_in_text(message)
    raise ProviderError(
        f"codex turn failed: {message}",
        kind=error_kind(status_code, message),
        provider=turn.provider,
        status=status_code,
    )


def thread_params(
    provider: CodexHost, cwd: str | None, model: str | None, system: str | None
) -> dict[str, Any]:
    """``thread/start`` parameters for a request of ``provider`` (as ``codex exec`` would run)."""
    params: dict[str, Any] = {
        "cwd": cwd or os.getcwd(),
        "sandbox": provider.sandbox,
        "approvalPolicy": "never",
    }
    if model:
        params["model"] = model
    if system is not None:
        params["developerInstructions"] = system
    return params


def new_turn(provider: CodexHost) -> _Turn:
    """A notification inbox for one thread, on the running loop."""
    return _Turn(provider.name, provider.ctx.metrics)


def final_data(
    turn: _Turn, thread_id: str, model: str | None, meter: RequestMeter
) -> dict[str, Any]:
    """The data of the closing ``result`` chunk of a turn."""
    return {
        "usage": turn.usage,
        "cost_usd": None,
        "stop_reason": "end_turn",
        "session_id": thread_id,
        "model": model,
        "timings": meter.succeeded(turn.usage, None),
    }


class CodexSession(SessionBase):
    """One codex thread on an app-server: many turns (see the module docstring)."""

    def __init__(
        self,
        provider: BaseProvider,
        host: CodexHost,
        *,
        cwd: str | Path | None,
        model: str | None,
        system: str | None,
        options: dict[str, Any],
    ) -> None:
        super().__init__(provider, cwd=cwd, model=model, system=system, options=options)
        self.host = host
        self._server: AppServer | None = None
        self._release: Callable[[], None] | None = None
        self._thread: str | None = None
        self._inbox: _Turn | None = None
        self._model: str | None = None

    async def _open(self) -> None:
        provider = self.host
        self._server, self._release = await provider.app_server()
        self._model = provider.ctx.resolve_model(self.model)
        self._inbox = new_turn(provider)
        params = thread_params(provider, provider.workdir(self.cwd), self._model, self.system)
        self._thread = await start_thread(self._server, params, self._inbox)
        self._session_id = self._thread

    async def _turn(
        self, prompt: str, timeout: float | None, meter: RequestMeter
    ) -> AsyncGenerator[Chunk, None]:
        server, thread, turn = self._server, self._thread, self._inbox
        assert server is not None and thread is not None and turn is not None
        turn.usage, turn.last_error, turn.streamed = Usage(), None, set()
        try:
            async with aclosing(run_turn(server, thread, turn, prompt, meter)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except ProviderError as exc:
            if not server.alive:
                raise self.ended(exc) from None
            raise
        yield Chunk("result", data=final_data(turn, thread, self._model, meter))

    async def _close(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.unsubscribe(self._thread)
        release, self._release = self._release, None
        if release is not None:
            release()
