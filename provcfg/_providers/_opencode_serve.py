"""opencode's warm path: one ``opencode serve`` serving many requests and sessions.

``opencode serve --port 0 --hostname 127.0.0.1`` prints ``opencode server listening
on http://127.0.0.1:PORT`` (``--port 0`` means 4096 when free: the URL is always
parsed) and serves an HTTP API: ``POST /session?directory=D {"title"}`` creates a
session in folder D, ``POST /session/ID/prompt_async`` starts a turn (``parts``,
``model``, ``agent``) and returns at once, and ``GET /global/event`` streams every
session's events (server-sent events, each ``{"directory", "payload"}``).

The server is started with a random ``OPENCODE_SERVER_PASSWORD`` (without one any
local process could read the provider's API key from ``GET /config``); the password
is a secret like the declared env values. opencode does not read stdin, so the server
is started through ``setpriv --pdeathsig KILL`` where that exists, to die with us.

:class:`ServeClient` is the client half: one thread reads the event stream and routes
each event to the subscriber of its session (on the subscriber's loop), another
drains the server's stdout and stderr. :func:`run_prompt` streams one turn:
``message.part.delta`` -> ``text`` (or ``thinking`` for a reasoning part), a finished
``tool`` part -> ``tool_use`` + ``tool_result``, ``step-finish`` parts -> usage and
cost, ``session.error`` -> the turn's error, ``session.idle`` ends the turn.

The first prompts on a new server are not warm (opencode initialises its tools and
the folder's instance then: docs/performance.md); a server lives long (``max_uses``
200 by default) for that reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, Protocol

import httpx2

from provcfg._errors import ErrorKind, ProviderError
from provcfg._logs import get_logger
from provcfg._providers._cli import error_kind, status_in_text
from provcfg._providers._meter import RequestMeter
from provcfg._providers._sessions import SessionBase
from provcfg._providers._subprocess import CliCommand
from provcfg._providers._warm import WarmProcess, WarmSpawnError
from provcfg._providers.base import BaseProvider, Chunk, ProviderContext, Usage

__all__ = [
    "SESSION_TITLE",
    "OpenCodeHost",
    "OpenCodeSession",
    "OpenCodeWarm",
    "ServeClient",
    "run_prompt",
]

log = get_logger(__name__)

SESSION_TITLE: Final = "provcfg"
"""The title of the sessions provcfg starts (opencode otherwise asks the model for one)."""
PASSWORD_VAR: Final = "OPENCODE_SERVER_PASSWORD"  # noqa: S105 (a variable's name)
_LISTENING = re.compile(rb"listening on (http://127\.0\.0\.1:\d+)")
_ERROR_NAMES: dict[str, ErrorKind] = {
    "ProviderAuthError": "authentication",
    "MessageOutputLengthError": "invalid_request",
    "ContextOverflowError": "invalid_request",
    "MessageAbortedError": "cancelled",
}


class OpenCodeHost(Protocol):
    """What the opencode provider offers this module (it is not imported here)."""

    name: str
    ctx: ProviderContext

    @property
    def agent(self) -> str | None:
        """The spec's opencode agent."""
        ...

    def refuse_system(self, system: str | None) -> None:
        """Raise for a system prompt (opencode has none per request)."""
        ...

    def workdir(self, cwd: str | Path | None) -> str | None:
        """The absolute working folder of a request (the spec's if None)."""
        ...

    async def serve_client(self) -> tuple[ServeClient, Callable[[], None]]:
        """A server for a session and the function that gives it back."""
        ...


def serve_command(base: CliCommand) -> CliCommand:
    """``opencode serve`` on a free loopback port, with a fresh random password."""
    password = secrets.token_urlsafe(24)
    env = {**base.env, PASSWORD_VAR: password}
    argv = (base.argv[0], "serve", "--port", "0", "--hostname", "127.0.0.1")
    return replace(base, argv=argv, env=env, secrets=(*base.secrets, password), stdin=b"")


class ServeClient:
    """The client side of one ``opencode serve`` (see the module docstring)."""

    def __init__(self, proc: WarmProcess, url: str) -> None:
        self.proc = proc
        self.url = url
        password = proc.command.env.get(PASSWORD_VAR, "")
        token = base64.b64encode(f"opencode:{password}".encode()).decode()
        self.http = httpx2.Client(
            base_url=url, headers={"authorization": f"Basic {token}"}, timeout=60.0
        )
        self.alive = True
        self._lock = threading.Lock()
        self._sessions: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._connected = threading.Event()
        self._events = threading.Thread(target=self._listen, name="provcfg-oc-events", daemon=True)
        self._events.start()
        self._drain = threading.Thread(target=self._drain_pipes, name="provcfg-oc-out", daemon=True)
        self._drain.start()

    def wait_connected(self, timeout: float) -> bool:
        """Whether the event stream is connected (within ``timeout`` seconds)."""
        return self._connected.wait(timeout)

    def subscribe(self, session_id: str, deliver: Callable[[dict[str, Any]], None]) -> None:
        """Route ``session_id``'s events to ``deliver`` (called in the event thread)."""
        with self._lock:
            self._sessions[session_id] = deliver

    def unsubscribe(self, session_id: str) -> None:
        """Stop routing ``session_id``'s events."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call (blocking; run it with ``asyncio.to_thread``); the JSON answer.

        Raises:
            ProviderError: the server refused it or is gone.
        """
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx2.HTTPError as exc:
            raise ProviderError(
                f"opencode serve did not answer {method} {path.split('?', maxsplit=1)[0]}: "
                f"{type(exc).__name__}",
                kind="cli_failed",
                provider=self.proc.owner_name,
            ) from None
        if response.status_code >= 400:
            raise ProviderError(
                f"opencode serve refused {method} {path.split('?', maxsplit=1)[0]}: HTTP "
                f"{response.status_code} {response.text[:300]}",
                kind=error_kind(response.status_code, response.text, "invalid_request"),
                provider=self.proc.owner_name,
                status=response.status_code,
            )
        return response.json() if response.content else None

    def close(self) -> None:
        """Release the HTTP client (the pool kills the process)."""
        self.alive = False
        self.http.close()

    def _listen(self) -> None:
        try:
            with self.http.stream("GET", "/global/event", timeout=None) as response:
                self._connected.set()
                self._read_events(response)
        except Exception as exc:  # the server went away (or we closed the client)
            log.debug("opencode_events_stopped", error=repr(exc))
        self.alive = False
        with self._lock:
            subscribers = list(self._sessions.values())
        for deliver in subscribers:
            deliver({"type": "provcfg.serverExited", "properties": {}})

    def _read_events(self, response: httpx2.Response) -> None:
        for line in response.iter_lines():
            if line.startswith("data:"):
                self._dispatch(line[5:])

    def _dispatch(self, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            return
        payload = event.get("payload", event) if isinstance(event, dict) else None
        if not isinstance(payload, dict):
            return
        props = payload.get("properties") or {}
        session = props.get("sessionID") or (props.get("part") or {}).get("sessionID")
        if not isinstance(session, str):
            info = props.get("info") or {}
            session = info.get("sessionID") if isinstance(info, dict) else None
        if not isinstance(session, str):
            return
        with self._lock:
            deliver = self._sessions.get(session)
        if deliver is not None:
            deliver(payload)

    def _drain_pipes(self) -> None:
        for pipe in (self.proc.popen.stdout, self.proc.popen.stderr):
            if pipe is None:
                continue
            threading.Thread(target=_drain, args=(pipe,), daemon=True).start()


def _drain(pipe: Any) -> None:
    with contextlib.suppress(OSError, ValueError):
        while os.read(pipe.fileno(), 65536):
            pass


def client_of(proc: WarmProcess) -> ServeClient:
    """The :class:`ServeClient` of a prepared opencode server process."""
    client = proc.extra
    assert isinstance(client, ServeClient)
    return client


class OpenCodeWarm:
    """The opencode part of the warm pool: servers, borrowed by requests (``shared``)."""

    shared = True

    def spare_command(self, cold: CliCommand) -> CliCommand:
        """``cold`` is the server command; started through ``setpriv --pdeathsig KILL``
        (opencode ignores stdin, so only that makes it die with us)."""
        setpriv = shutil.which("setpriv", path=cold.env.get("PATH"))
        if setpriv is None:
            return cold
        return replace(cold, argv=(setpriv, "--pdeathsig", "KILL", "--", *cold.argv))

    def prepare(self, proc: WarmProcess, deadline: float) -> None:
        """Read the URL from the "listening" line, connect the event stream.

        Raises:
            WarmSpawnError: the server exited, printed no URL, or did not connect.
        """
        url = None
        for _ in range(50):
            line = proc.read_line(deadline)
            match = _LISTENING.search(line)
            if match is not None:
                url = match.group(1).decode()
                break
        if url is None:
            raise WarmSpawnError("opencode serve printed no 'listening on' line")
        client = ServeClient(proc, url)
        proc.extra = client
        if not client.wait_connected(max(1.0, deadline - time.monotonic())):
            raise WarmSpawnError("opencode serve's event stream did not connect")

    def fingerprint(self, command: CliCommand) -> object:
        """Nothing: opencode reads the folder and AGENTS.md per session."""
        return None

    def healthy(self, proc: WarmProcess) -> bool:
        """Whether the server's event stream is still connected."""
        extra = proc.extra
        return isinstance(extra, ServeClient) and extra.alive


# --------------------------------------------------------------------------- turns


class _Inbox:
    """One session's events on the caller's loop, plus what the turn produced."""

    def __init__(self, provider: str) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.provider = provider
        self.reset()

    def reset(self) -> None:
        self.types: dict[str, str] = {}
        self.streamed: set[str] = set()
        self.assistant: set[str] = set()
        self.tokens = [0, 0, 0, 0]
        self.cost: float | None = None
        self.error: ProviderError | None = None
        self.stop_reason: str | None = None

    def deliver(self, payload: dict[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.queue.put_nowait, payload)

    @property
    def usage(self) -> Usage:
        return Usage(*self.tokens)


def split_model(model: str | None) -> dict[str, str] | None:
    """``provider/model`` -> opencode's ``{"providerID", "modelID"}`` (None: the default)."""
    if not model:
        return None
    provider, _, name = model.partition("/")
    return (
        {"providerID": provider, "modelID": name}
        if name
        else {"providerID": "", "modelID": provider}
    )


async def create_session(client: ServeClient, directory: str, inbox: _Inbox) -> str:
    """A new opencode session in ``directory``, its events routed to ``inbox``."""
    answer = await asyncio.to_thread(
        client.request,
        "POST",
        "/session",
        params={"directory": directory},
        json={"title": SESSION_TITLE},
    )
    session = answer.get("id") if isinstance(answer, dict) else None
    if not isinstance(session, str):
        raise ProviderError(
            "opencode serve created a session without an id",
            kind="cli_failed",
            provider=inbox.provider,
        )
    client.subscribe(session, inbox.deliver)
    return session


async def run_prompt(
    client: ServeClient,
    session: str,
    directory: str,
    inbox: _Inbox,
    *,
    body: dict[str, Any],
    meter: RequestMeter,
) -> AsyncGenerator[Chunk, None]:
    """Stream one turn of ``session``; the caller yields the ``result`` chunk after it.

    Raises:
        ProviderError: the turn's error (``session.error``), or ``cli_failed`` when the
            server went away.
    """
    inbox.reset()
    path = f"/session/{session}/prompt_async"
    await asyncio.to_thread(
        client.request, "POST", path, params={"directory": directory}, json=body
    )
    meter.connected()
    idle = False
    try:
        while not idle:
            payload = await inbox.queue.get()
            etype = payload.get("type")
            if etype == "provcfg.serverExited":
                raise ProviderError(
                    "opencode serve went away during the turn",
                    kind="cli_failed",
                    provider=inbox.provider,
                )
            if etype == "session.idle":
                idle = True
                continue
            for chunk in _chunks(inbox, etype, payload.get("properties") or {}):
                yield chunk
    finally:
        if not idle and client.alive:
            with contextlib.suppress(ProviderError):
                await asyncio.to_thread(
                    client.request,
                    "POST",
                    f"/session/{session}/abort",
                    params={"directory": directory},
                )
    if inbox.error is not None:
        raise inbox.error


def _chunks(inbox: _Inbox, etype: Any, props: dict[str, Any]) -> tuple[Chunk, ...]:
    if etype == "message.updated":
        info = props.get("info") or {}
        if info.get("role") == "assistant":
            inbox.assistant.add(str(info.get("id")))
        return ()
    if etype == "message.part.delta":
        part_id = str(props.get("partID"))
        if props.get("field") != "text":
            return ()
        inbox.streamed.add(part_id)
        delta = str(props.get("delta") or "")
        if inbox.types.get(part_id) == "reasoning":
            return (Chunk("thinking", delta),)
        return (Chunk("text", delta),)
    if etype == "message.part.updated":
        return _part(inbox, props.get("part") or {})
    if etype == "session.error":
        _error(inbox, props.get("error") or {})
    return ()


def _part(inbox: _Inbox, part: dict[str, Any]) -> tuple[Chunk, ...]:
    ptype = str(part.get("type"))
    part_id = str(part.get("id"))
    inbox.types[part_id] = ptype
    if ptype == "step-finish":
        tokens = part.get("tokens") or {}
        cache = tokens.get("cache") or {}
        inbox.tokens[0] += int(tokens.get("input") or 0)
        inbox.tokens[1] += int(tokens.get("output") or 0) + int(tokens.get("reasoning") or 0)
        inbox.tokens[2] += int(cache.get("read") or 0)
        inbox.tokens[3] += int(cache.get("write") or 0)
        cost = part.get("cost")
        if isinstance(cost, int | float):
            inbox.cost = (inbox.cost or 0.0) + float(cost)
        inbox.stop_reason = part.get("reason")
        return ()
    ended = (part.get("time") or {}).get("end")
    mine = str(part.get("messageID")) in inbox.assistant
    if ptype in ("text", "reasoning") and ended and mine and part_id not in inbox.streamed:
        text = part.get("text")
        return (Chunk("text" if ptype == "text" else "thinking", str(text)),) if text else ()
    if ptype == "tool":
        return _tool(part)
    return ()


def _tool(part: dict[str, Any]) -> tuple[Chunk, ...]:
    state = part.get("state") or {}
    status = state.get("status")
    if status not in ("completed", "error"):
        return ()
    call_id = part.get("callID") or part.get("id")
    failed = status == "error"
    return (
        Chunk(
            "tool_use", data={"id": call_id, "name": part.get("tool"), "input": state.get("input")}
        ),
        Chunk(
            "tool_result",
            data={
                "tool_use_id": call_id,
                "content": state.get("error") if failed else state.get("output"),
                "is_error": failed,
            },
        ),
    )


def _error(inbox: _Inbox, error: dict[str, Any]) -> None:
    name = str(error.get("name") or "error")
    data = error.get("data") or {}
    message = str(data.get("message") or name)
    status = data.get("statusCode")
    if not isinstance(status, int):
        status = status_in_text(message)
    kind = _ERROR_NAMES.get(name) or error_kind(status, message)
    if inbox.error is None:
        inbox.error = ProviderError(
            f"opencode reported {name}: {message}",
            kind=kind,
            provider=inbox.provider,
            status=status,
        )


def prompt_body(provider: OpenCodeHost, prompt: str, model: str | None) -> dict[str, Any]:
    """The ``prompt_async`` body: the prompt, the model and the spec's agent."""
    body: dict[str, Any] = {"parts": [{"type": "text", "text": prompt}]}
    split = split_model(model)
    if split is not None:
        body["model"] = split
    if provider.agent:
        body["agent"] = provider.agent
    return body


def final_data(
    inbox: _Inbox, session: str, model: str | None, meter: RequestMeter
) -> dict[str, Any]:
    """The data of the closing ``result`` chunk of a turn."""
    usage = inbox.usage
    return {
        "usage": usage,
        "cost_usd": inbox.cost,
        "stop_reason": inbox.stop_reason,
        "session_id": session,
        "model": model,
        "timings": meter.succeeded(usage, inbox.cost),
    }


def new_inbox(provider: OpenCodeHost) -> _Inbox:
    """An event inbox for one session, on the running loop."""
    return _Inbox(provider.name)


class OpenCodeSession(SessionBase):
    """One opencode session on a server: many turns (see the module docstring)."""

    def __init__(
        self,
        provider: BaseProvider,
        host: OpenCodeHost,
        *,
        cwd: str | Path | None,
        model: str | None,
        system: str | None,
        options: dict[str, Any],
    ) -> None:
        super().__init__(provider, cwd=cwd, model=model, system=system, options=options)
        self.host = host
        self._client: ServeClient | None = None
        self._release: Callable[[], None] | None = None
        self._inbox: _Inbox | None = None
        self._directory = ""
        self._model: str | None = None

    async def _open(self) -> None:
        provider = self.host
        provider.refuse_system(self.system)
        self._client, self._release = await provider.serve_client()
        self._model = provider.ctx.resolve_model(self.model)
        self._directory = provider.workdir(self.cwd) or os.getcwd()
        self._inbox = new_inbox(provider)
        self._session_id = await create_session(self._client, self._directory, self._inbox)

    async def _turn(
        self, prompt: str, timeout: float | None, meter: RequestMeter
    ) -> AsyncGenerator[Chunk, None]:
        client, inbox, session = self._client, self._inbox, self._session_id
        assert client is not None and inbox is not None and session is not None
        body = prompt_body(self.host, prompt, self._model)
        try:
            turns = run_prompt(client, session, self._directory, inbox, body=body, meter=meter)
            async with aclosing(turns) as chunks:
                async for chunk in chunks:
                    yield chunk
        except ProviderError as exc:
            if not client.alive:
                raise self.ended(exc) from None
            raise
        yield Chunk("result", data=final_data(inbox, session, self._model, meter))

    async def _close(self) -> None:
        if self._client is not None and self._session_id is not None:
            self._client.unsubscribe(self._session_id)
        release, self._release = self._release, None
        if release is not None:
            release()
