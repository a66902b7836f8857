"""What the CLI provider kinds share: a spec and a call -> a process; its events -> chunks.

A CLI kind (claude-code, opencode, codex) subclasses :class:`CliProvider` and
supplies three things: the argument list for one request, the prompt bytes for
stdin, and an :class:`EventParser` that turns the CLI's NDJSON objects into
:class:`Chunk` objects and keeps the final accounting. Everything else (finding
the CLI, the environment, timeouts, stopping the process group, exit codes, the
closing ``result`` chunk with timings) happens here once, through
:class:`provcfg._providers._subprocess.CliProcess`.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, cast

from provcfg._errors import ErrorKind, ProviderError
from provcfg._manifest import CliProviderSpec
from provcfg._providers._meter import RequestMeter
from provcfg._providers._status import listed_kind_for_status
from provcfg._providers._subprocess import CliCommand, CliProcess, minimal_env, scrub
from provcfg._providers._warm import WarmGroup, WarmKind, WarmProcess, pool_of
from provcfg._providers._wire import MalformedEvent
from provcfg._providers.base import BaseProvider, Chunk, ProviderContext, Usage, metered
from provcfg._secrets import secret_forms

__all__ = [
    "CliProvider",
    "EventParser",
    "error_kind",
    "kind_for_text",
    "status_in_text",
]

_NOTHING: tuple[Chunk, ...] = ()
# What a parser meeting a malformed event raises: MalformedEvent from the field checks,
# and, as a net under them, what Python raises on a shape nobody foresaw.
_MALFORMED = (MalformedEvent, TypeError, ValueError, KeyError, AttributeError, IndexError)
_LABEL_LIMIT = 64
# Chunks whose text is an error message (scrubbed of secrets), not the agent's output.
_MESSAGE_CHUNKS = frozenset({"error", "retry"})

# The forms in which the CLIs (and the HTTP libraries inside them) write a status into
# an error text. The loose forms (a number before a reason phrase, or in parentheses)
# only accept 4xx/5xx, so that "processed 200 Files" is not read as a status.
_STATUS_IN_TEXT = re.compile(
    r"(?i:\b(?:status(?:[ _]?code)?|error code|http(?:/[\d.]+)?)\s*[:=]?\s*)([1-5]\d\d)\b"
    r"|\b([45]\d\d)(?: [A-Z][a-z]+(?:-[a-z]+)?)+\b"  # 429 Too Many Requests, 504 Gateway Time-out
    r"|\bAPI Error: ([45]\d\d)\b"  # Claude Code: "API Error: 529 ..."
    r"|\(([45]\d\d)\)"  # Claude Code: "Request rejected (429)"
)


def status_in_text(text: str) -> int | None:
    """The HTTP status a CLI's error text mentions, if any.

    Recognised: ``status 429``, ``status code: 503``, ``last status: 429``,
    ``Error code: 401``, ``HTTP 502``, ``HTTP/1.1 503``, a 4xx/5xx before a reason
    phrase (``429 Too Many Requests``, ``got 503 Service Unavailable``), ``API Error:
    529``, ``(429)``. Returns None when the text names no status.
    """
    match = _STATUS_IN_TEXT.search(text)
    if match is None:
        return None
    return int(next(group for group in match.groups() if group))


# Failures the CLIs report without an HTTP status, by the words they print. Taken from
# the pinned CLIs' own strings (Claude Code 2.1.197, codex 0.171.0; grep their binaries
# under tools/clis/node_modules) and from the transcripts in tests/transcripts/. The
# first match wins, so the specific (a timeout, a refused connection) comes before the
# general (a dropped stream). Keep it small: a phrase belongs here only when a real CLI
# prints it and its meaning is unambiguous.
_TEXT_KIND_PATTERNS: tuple[tuple[str, ErrorKind], ...] = (
    # Claude Code: "Request timed out", "... lost (ETIMEDOUT)"; codex: "timed out"
    (r"\bETIMEDOUT\b|\btimed out\b", "timeout"),
    # Claude Code: "API Error: Connection to the API was lost (ECONNRESET)" and the
    # Node/Bun error codes it names; codex (reqwest): "Connection failed: ...",
    # "error sending request for url"
    (
        r"\b(?:ECONNRESET|ECONNREFUSED|ECONNABORTED|EPIPE|ENOTFOUND|ENETUNREACH|EHOSTUNREACH"
        r"|EHOSTDOWN|EAI_AGAIN|ConnectionRefused|ConnectionClosed|FailedToOpenSocket)\b"
        r"|socket hang up|Connection to the API was lost|Unable to connect to API"
        r"|Connection failed|error sending request|connection refused",
        "network",
    ),
    # Claude Code without a key or with a bad one; codex without its env_key variable
    (
        r"Not logged in|Invalid API key|OAuth token (?:revoked|has expired)"
        r"|Failed to authenticate|Missing environment variable",
        "authentication",
    ),
    # Billing and organisation refusals (Claude Code; codex "Quota exceeded")
    (
        r"Credit balance is too low|belongs to a disabled organization"
        r"|has disabled API key authentication|Quota exceeded",
        "permission",
    ),
    # codex: "You've hit your usage limit"
    (r"hit your usage limit|usage limit reached", "rate_limit"),
    # codex: a 500 becomes "We're currently experiencing high demand"; "Selected model
    # is at capacity"; Claude Code: "Repeated 529 Overloaded errors", "high load"
    (
        r"experiencing high demand|is at capacity|Overloaded|experiencing high load",
        "overloaded",
    ),
    # Claude Code: "Prompt is too long"; codex: "ran out of room in the model's context window"
    (r"Prompt is too long|context window", "invalid_request"),
    # codex: the response stream ended early (no retry left)
    (r"stream disconnected before completion", "stream_incomplete"),
)
_TEXT_KINDS = tuple((re.compile(p, re.IGNORECASE), kind) for p, kind in _TEXT_KIND_PATTERNS)


def kind_for_text(text: str) -> ErrorKind | None:
    """The kind a status-less CLI error text names ("Not logged in", "ECONNRESET"), or None."""
    for pattern, kind in _TEXT_KINDS:
        if pattern.search(text):
            return kind
    return None


def error_kind(status: int | None, text: str, default: ErrorKind = "cli_failed") -> ErrorKind:
    """The kind of a CLI-reported failure: by HTTP status, else by its words, else ``default``.

    ``status`` is the one the CLI reported, or None; then the status named in
    ``text`` counts (see :func:`status_in_text`). A status goes through the one table
    the API kind uses too (:mod:`provcfg._providers._status`); a status that table
    does not list leaves the decision to the phrases above.
    """
    if status is None:
        status = status_in_text(text)
    if status is not None:
        kind = listed_kind_for_status(status, text)
        if kind is not None:
            return kind
    return kind_for_text(text) or default


class EventParser:
    """Turns one request's NDJSON objects into chunks; one instance per request.

    ``feed`` returns the chunks an object produces (often none). A fatal error
    reported by the CLI is stored in ``error`` rather than raised, so that it can
    be raised after the process exits, with its exit code and stderr tail.
    ``final`` is the data of the closing ``result`` chunk (without timings), or
    None when the CLI never reported the end of the request.
    """

    def __init__(self, provider: str, metrics: Any) -> None:
        self.provider = provider
        self.metrics = metrics
        self.error: ProviderError | None = None
        self.final: dict[str, Any] | None = None

    def feed(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        """Return the chunks that ``event`` produces (an empty tuple for none).

        Raises:
            MalformedEvent: a field the parser reads has the wrong type.
        """
        raise NotImplementedError

    def parse(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        """:meth:`feed`, with a malformed event turned into a ``server_error`` ProviderError.

        The one entry point the runner uses: whatever the CLI printed, the outcome is
        chunks of the documented types or a :class:`ProviderError`.
        """
        try:
            return self.feed(event)
        except _MALFORMED as exc:
            etype = event.get("type")
            label = repr(etype[:_LABEL_LIMIT]) if type(etype) is str else "without a type"
            why = str(exc) if isinstance(exc, MalformedEvent) else type(exc).__name__
            error = ProviderError(
                f"the CLI printed a malformed event ({label}): {why}; its output format may "
                "have changed: check the CLI's version against the one provcfg supports",
                kind="server_error",
                provider=self.provider,
                details={"event_type": etype[:_LABEL_LIMIT] if type(etype) is str else None},
            )
        raise error

    def finish(self) -> None:
        """Called once stdout ended: turn what was seen into ``final`` or ``error`` if needed."""

    def unknown(self, event_type: object) -> tuple[Chunk, ...]:
        """Count an event type this parser does not know and skip it."""
        self.metrics.incr("cli_unknown_event", str(event_type)[:_LABEL_LIMIT])
        return _NOTHING

    def fail(self, message: str, kind: ErrorKind, **details: Any) -> None:
        """Record the CLI-reported failure (the first one wins)."""
        if self.error is None:
            status = details.get("status")
            self.error = ProviderError(
                message,
                kind=kind,
                provider=self.provider,
                status=status if isinstance(status, int) else None,
                details=details,
            )


class CliProvider(BaseProvider):
    """Base of the CLI-driven kinds: one :class:`CliProcess` per request.

    Subclasses set ``kind`` and ``options`` (the ``kind_options`` they accept)
    and implement :meth:`arguments`, :meth:`parser` and, if the prompt does not
    go to stdin as UTF-8 text, :meth:`stdin`.
    """

    options: ClassVar[frozenset[str]] = frozenset()
    # stream() returns metered(...) itself: no wrapper layer from BaseProvider on top.
    tracks_streams = True

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        spec = ctx.spec
        if not isinstance(spec, CliProviderSpec):
            raise TypeError(f"{type(self).__name__} needs a CLI provider spec, got {spec!r}")
        self.cli_spec = spec
        self._path: Path | None = None
        # Every spelling of every declared value (plain, URL-encoded): scrubbed from
        # stderr tails, error messages and error chunks.
        forms = {form for v in spec.env.values() for form in secret_forms(v.get_secret_value())}
        self._secrets = tuple(sorted(forms, key=len, reverse=True))
        self._warm: WarmGroup | None = None

    def prepare(self) -> None:
        """Find the CLI (eager init reports a missing CLI at load), and start keeping
        spares when the spec asks for warm processes (eager/background init: now).

        Raises:
            CLINotFoundError: the CLI is not on PATH, ``path`` or ``search_paths``.
        """
        self._path = self.ctx.cli_path()
        self.located()
        self._keep_warm()

    def located(self) -> None:
        """Called once the CLI was found (codex looks for its native binary here)."""

    # ------------------------------------------------------------------ warm processes

    def warm_kind(self) -> WarmKind | None:
        """This kind's part of the warm pool; None for a kind that keeps no spares."""
        return None

    def warm_stdin(self, prompt: str) -> bytes:
        """What a request writes to a spare it took (default: what a cold run reads)."""
        return self.stdin(prompt)

    def _keep_warm(self) -> None:
        pool = pool_of(self.ctx.warm)
        settings = self.cli_spec.warm
        kind = self.warm_kind()
        if pool is None or settings is None or not settings.spares or kind is None:
            return
        if self._warm is None and not self._closed:
            group = self._warm = pool.group(f"{self.name}:{id(self):x}", self.name, settings, kind)
            group.keep(self._default_command, active=self.cli_spec.init != "lazy")

    def _default_command(self, cwd: str | None) -> CliCommand:
        """The cold command of a default-shaped request in ``cwd`` (the spec's if None)."""
        request = _Request("", None, None, None, cwd, None, {})
        return self.command(request, self.ctx.resolve_model(None))

    def session_command(
        self,
        cwd: str | Path | None,
        model_id: str | None,
        system: str | None,
        options: Mapping[str, Any],
    ) -> CliCommand:
        """The cold command a session's agent process is built from (no prompt).

        Raises:
            ProviderError: ``invalid_request`` for an unknown kind option.
        """
        self._check_options(options)
        return self.command(_Request("", None, system, None, cwd, None, options), model_id)

    def take_spare(self, cold: CliCommand, default_shape: bool) -> WarmProcess | None:
        """A ready spare whose launch is ``cold``'s, or None (a session's first step)."""
        group = self._warm
        return group.take(cold, default_shape) if group is not None else None

    def spare_used(self, cold: CliCommand, spare: WarmProcess) -> None:
        """A spare was taken for good (by a session): its replacement may start."""
        group = self._warm
        if group is not None:
            group.used(cold, spare)

    def _default_shape(self, request: _Request, model_id: str | None) -> bool:
        return (
            request.system is None
            and request.max_tokens is None
            and not request.options
            and model_id == self.ctx.resolve_model(None)
        )

    async def aclose(self) -> None:
        """Retire this instance's spares (a reload changed the spec, or the runtime closed)."""
        await super().aclose()
        group, self._warm = self._warm, None
        if group is not None:
            group.close()

    # ------------------------------------------------------------------ hooks

    def arguments(
        self, model: str | None, system: str | None, options: Mapping[str, Any]
    ) -> list[str]:
        """The CLI's arguments (after the program) for one request; never a secret."""
        raise NotImplementedError

    def parser(self, options: Mapping[str, Any]) -> EventParser:
        """A fresh :class:`EventParser` for one request."""
        raise NotImplementedError

    def program(self) -> Path:
        """The executable to run: the resolved CLI (codex swaps in its native binary)."""
        assert self._path is not None
        return self._path

    def workdir(self, cwd: str | Path | None) -> str | None:
        """The child's working folder: ``cwd=`` of the call, else the spec's, made absolute."""
        workdir = cwd if cwd is not None else self.cli_spec.cwd
        return None if workdir is None else os.path.abspath(os.path.expanduser(workdir))

    def trailing_arguments(self) -> list[str]:
        """Arguments placed after the spec's ``extra_args`` (codex's ``-``: prompt on stdin)."""
        return []

    def stdin(self, prompt: str) -> bytes:
        """The bytes written to the CLI's stdin: the prompt, UTF-8 encoded."""
        return prompt.encode("utf-8")

    def environment(self, max_tokens: int | None) -> dict[str, str]:
        """The child's environment: :func:`minimal_env` plus the spec's ``env``."""
        return minimal_env(self.cli_spec.env)

    # ------------------------------------------------------------------ streaming

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
        """Run the CLI on ``prompt`` and yield chunks as its output lines arrive.

        Ends with one ``result`` chunk (usage, cost_usd, stop_reason, session_id,
        model, timings with ``connect`` = time to spawn).

        Raises:
            ProviderError: ``invalid_request`` for an unknown kind option (at call
                time); while iterating, ``cli_not_found``, ``cli_failed`` (exit
                code and stderr tail), ``timeout``, ``stream_incomplete``, or the
                kind the CLI reported (authentication, rate_limit, ...).
        """
        self._check_options(kind_options)
        request = _Request(prompt, model, system, max_tokens, cwd, timeout, kind_options)
        meter = RequestMeter.of(self.ctx)
        return metered(self, meter, lambda: self._run(request, meter))

    def _check_options(self, kind_options: Mapping[str, Any]) -> None:
        unknown = set(kind_options) - self.options
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise ProviderError(
                f"unknown option(s) {', '.join(sorted(unknown))} for a {self.kind} provider "
                f"(accepted: {known})",
                kind="invalid_request",
                provider=self.name,
            )

    def command(self, request: _Request, model_id: str | None) -> CliCommand:
        """The process to start for one request."""
        spec = self.cli_spec
        cwd = self.workdir(request.cwd)
        options = request.options
        env = self.environment(request.max_tokens)
        # The CLIs read $PWD for their project folder (opencode does): always the real one,
        # never a stale value inherited or declared.
        env["PWD"] = cwd if cwd is not None else os.getcwd()
        return CliCommand(
            argv=(
                str(self.program()),
                *self.arguments(model_id, request.system, options),
                *spec.extra_args,
                *self.trailing_arguments(),
            ),
            stdin=self.stdin(request.prompt),
            env=env,
            cwd=cwd,
            line_limit=spec.line_limit,
            idle_timeout=spec.idle_timeout,
            timeout=request.timeout if request.timeout is not None else spec.timeout,
            kill_grace=spec.kill_grace,
            secrets=self._secrets,
            provider=self.name,
        )

    async def _run(self, request: _Request, meter: RequestMeter) -> AsyncGenerator[Chunk, None]:
        if self._path is None:
            await self.initialize()
        model_id = self.ctx.resolve_model(request.model)
        command = self.command(request, model_id)
        group = self._warm
        if group is not None and group.kind.shared:
            group = None  # a server kind decided before calling this: run cold
        spare: WarmProcess | None = None
        if group is not None:
            spare = group.take(command, self._default_shape(request, model_id))
        state = _Outcome(self.parser(request.options))
        try:
            async with aclosing(self._attempt(command, request, state, meter, spare=spare)) as run:
                async for chunk in run:
                    yield chunk
        finally:
            if group is not None:
                group.used(command, spare)
        parser = state.parser
        data = cast(dict[str, Any], parser.final)
        usage = data.setdefault("usage", Usage())
        data.setdefault("model", model_id)
        data["timings"] = meter.succeeded(usage, data.get("cost_usd"))
        yield Chunk("result", data=data)

    async def _attempt(
        self,
        command: CliCommand,
        request: _Request,
        state: _Outcome,
        meter: RequestMeter,
        *,
        spare: WarmProcess | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """Run ``command`` (on ``spare`` if given) and yield its chunks; raise its failure.

        A spare that exits abnormally before printing a line died as it was taken: the
        request has seen nothing, so it runs cold instead (``state.parser`` is replaced).
        """
        run = command
        if spare is not None:
            run = replace(command, stdin=self.warm_stdin(request.prompt))
        died = False
        async with CliProcess(run, self.ctx.metrics, owner=self, adopt=spare) as proc:
            meter.connected()
            async for event in proc.events():
                for chunk in self._chunks(state.parser, event):
                    yield chunk
            code = await proc.wait()
            died = spare is not None and code != 0 and proc.lines == 0
            if not died:
                state.parser.finish()
                self._raise_failure(state.parser, proc, code, command)
        if died:
            self.ctx.metrics.incr("warm_miss", f"{self.name}/died_at_take")
            state.parser = self.parser(request.options)
            async with aclosing(self._attempt(command, request, state, meter)) as cold:
                async for chunk in cold:
                    yield chunk

    def _chunks(self, parser: EventParser, event: dict[str, Any]) -> tuple[Chunk, ...]:
        chunks = parser.parse(event)
        if self._secrets and any(chunk.type in _MESSAGE_CHUNKS for chunk in chunks):
            # An error or retry event is an error message (the raised error is scrubbed
            # too); other chunks are the agent's own output, forwarded as they are.
            return tuple(
                _scrubbed(c, self._secrets) if c.type in _MESSAGE_CHUNKS else c for c in chunks
            )
        return chunks

    def _raise_failure(
        self, parser: EventParser, proc: CliProcess, code: int, command: CliCommand
    ) -> None:
        """Raise the request's failure, if it failed: the CLI's own report first."""
        if parser.error is not None:
            error = parser.error
            error.message = scrub(error.message, self._secrets)
            error.args = (error.message,)
            error.exit_code = code if code != 0 else None
            error.stderr_tail = proc.stderr_tail
            raise error
        if code != 0:
            raise proc.failure(code)
        if parser.final is None:
            raise ProviderError(
                f"{command.program} exited without reporting the end of the request; "
                "its output was cut short",
                kind="stream_incomplete",
                provider=self.name,
                stderr_tail=proc.stderr_tail,
            )


@dataclass(slots=True)
class _Outcome:
    """One request's parser (a new one when a spare died as it was taken)."""

    parser: EventParser


@dataclass(frozen=True, slots=True)
class _Request:
    """One call's arguments, as ``stream()`` received them."""

    prompt: str
    model: str | None
    system: str | None
    max_tokens: int | None
    cwd: str | Path | None
    timeout: float | None
    options: Mapping[str, Any]


def _scrubbed(chunk: Chunk, secrets: tuple[str, ...]) -> Chunk:
    """``chunk`` with every secret value masked in its text and string data."""
    data = chunk.data
    if data is not None:
        data = {k: scrub(v, secrets) if isinstance(v, str) else v for k, v in data.items()}
    return Chunk(chunk.type, scrub(chunk.text, secrets), data)
