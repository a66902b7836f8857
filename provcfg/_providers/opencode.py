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

from collections.abc import Mapping
from typing import Any, ClassVar

from provcfg._errors import ErrorKind, ProviderError
from provcfg._manifest import OpenCodeSpec
from provcfg._providers._cli import CliProvider, EventParser, error_kind, status_in_text
from provcfg._providers._wire import count, obj, opt_int, opt_number, opt_str, string
from provcfg._providers.base import Chunk, Usage

__all__ = ["OpenCodeParser", "OpenCodeProvider"]

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

    def arguments(
        self, model: str | None, system: str | None, options: Mapping[str, Any]
    ) -> list[str]:
        """``run --format json`` plus model, agent and session.

        Raises:
            ProviderError: ``invalid_request`` when ``system`` is given.
        """
        spec = self.cli_spec
        assert isinstance(spec, OpenCodeSpec)
        if system is not None:
            raise ProviderError(
                "opencode run has no system-prompt option; put the system prompt in an "
                f"opencode agent (opencode.json) and set providers.{self.name}.agent",
                kind="invalid_request",
                provider=self.name,
            )
        args = ["run", "--format", "json"]
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
