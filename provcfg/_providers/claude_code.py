"""The claude-code provider kind: Claude Code's ``claude -p --output-format stream-json``.

One request is one ``claude -p`` process with the prompt on stdin. Its NDJSON
lines become chunks:

=====================================  =========================================
``system`` / ``init``                  ``system`` chunk (session_id, model, tools)
``system`` / ``api_retry``             ``retry`` chunk (attempt, delay, status)
``stream_event`` text/thinking delta   ``text`` / ``thinking`` chunks (partial messages)
``assistant`` text / thinking blocks   ``text`` / ``thinking`` chunks, unless the same
                                       message was already streamed as deltas
``assistant`` tool_use blocks          ``tool_use`` chunk (id, name, input)
``user`` tool_result blocks            ``tool_result`` chunk (tool_use_id, content)
``result``                             the closing ``result`` chunk, or the mapped
                                       error when ``is_error`` is true
=====================================  =========================================

Text written by sub-agents (``parent_tool_use_id`` set) is not the answer and is
not forwarded as text; their tool calls are, with ``parent_tool_use_id`` in data.
Permissions come from the spec (``--permission-mode``, ``--allowedTools``,
``--disallowedTools``); provcfg never skips them on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from provcfg._manifest import ClaudeCodeSpec
from provcfg._providers._claude_session import ClaudeSession
from provcfg._providers._claude_warm import ClaudeWarm, user_line
from provcfg._providers._cli import CliProvider, EventParser, error_kind
from provcfg._providers._subprocess import minimal_env
from provcfg._providers._wire import (
    count,
    flag,
    obj,
    opt_int,
    opt_number,
    opt_str,
    seq,
    string,
)
from provcfg._providers.base import Chunk, Usage

__all__ = ["ClaudeCodeParser", "ClaudeCodeProvider"]

_NOTHING: tuple[Chunk, ...] = ()
# Informational lines a run normally prints: known, so skipped without counting
# them as unknown (the counter is for lines a newer CLI starts to print).
_QUIET_TYPES = frozenset(
    {"rate_limit_event", "tool_progress", "tool_use_summary", "auth_status", "prompt_suggestion"}
)
_QUIET_SYSTEM = frozenset(
    {
        "status",
        "informational",
        "notification",
        "compact_boundary",
        "thinking_tokens",
        "turn_starting",
        "turn_duration",
        "task_started",
        "task_progress",
        "task_updated",
        "task_summary",
        "task_notification",
        "session_state_changed",
        "post_turn_summary",
        "stop_hook_summary",
    }
)


def usage_from(raw: object, what: str = "usage") -> Usage:
    """A :class:`Usage` from Anthropic-style usage counts (missing counts are 0).

    Raises:
        MalformedEvent: ``raw`` is not an object, or a count is not a non-negative integer.
    """
    usage = obj(raw, what)
    return Usage(
        input_tokens=count(usage.get("input_tokens"), f"{what}.input_tokens"),
        output_tokens=count(usage.get("output_tokens"), f"{what}.output_tokens"),
        cache_read_input_tokens=count(
            usage.get("cache_read_input_tokens"), f"{what}.cache_read_input_tokens"
        ),
        cache_creation_input_tokens=count(
            usage.get("cache_creation_input_tokens"), f"{what}.cache_creation_input_tokens"
        ),
    )


class ClaudeCodeParser(EventParser):
    """Claude Code stream-json objects -> chunks, for one request.

    Every field it reads is type-checked (:mod:`provcfg._providers._wire`); a field of
    the wrong type raises :class:`~provcfg._providers._wire.MalformedEvent`.
    """

    def __init__(self, provider: str, metrics: Any, partial: bool) -> None:
        super().__init__(provider, metrics)
        self.partial = partial
        self.session_id: str | None = None
        self.model: str | None = None
        # Ids of messages whose text already reached the consumer as deltas.
        self._streamed: set[str] = set()
        self._current: str | None = None
        self._handlers = {
            "system": self._system,
            "assistant": self._assistant,
            "user": self._user,
            "stream_event": self._stream_event,
            "result": self._result,
        }

    def feed(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        """Return the chunks of one stream-json object."""
        etype = string(event.get("type"), "type")
        handler = self._handlers.get(etype)
        if handler is None:
            return _NOTHING if etype in _QUIET_TYPES else self.unknown(etype)
        return handler(event)

    def _stream_event(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        inner = obj(event.get("event"), "event")
        etype = opt_str(inner.get("type"), "event.type")
        if etype == "content_block_delta":
            if opt_str(event.get("parent_tool_use_id"), "parent_tool_use_id"):
                return _NOTHING
            delta = obj(inner.get("delta"), "event.delta")
            dtype = opt_str(delta.get("type"), "event.delta.type")
            if dtype == "text_delta":
                text = string(delta.get("text", ""), "event.delta.text")
                if self._current is not None:
                    self._streamed.add(self._current)
                return (Chunk("text", text),)
            if dtype == "thinking_delta":
                text = string(delta.get("thinking", ""), "event.delta.thinking")
                if self._current is not None:
                    self._streamed.add(self._current)
                return (Chunk("thinking", text),)
            return _NOTHING
        if etype == "message_start":
            message = obj(inner.get("message"), "event.message")
            self._current = opt_str(message.get("id"), "event.message.id")
        return _NOTHING

    def _system(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        subtype = opt_str(event.get("subtype"), "subtype")
        if subtype == "init":
            self.session_id = opt_str(event.get("session_id"), "session_id")
            self.model = opt_str(event.get("model"), "model")
            listed = seq(event.get("tools"), "tools")
            tools = tuple(string(tool, f"tools[{i}]") for i, tool in enumerate(listed))
            return (
                Chunk(
                    "system",
                    data={
                        "subtype": "init",
                        "session_id": self.session_id,
                        "model": self.model,
                        "tools": tools,
                        "permission_mode": opt_str(event.get("permissionMode"), "permissionMode"),
                        "cwd": opt_str(event.get("cwd"), "cwd"),
                    },
                ),
            )
        if subtype == "api_retry":
            delay = opt_number(event.get("retry_delay_ms"), "retry_delay_ms")
            return (
                Chunk(
                    "retry",
                    data={
                        "attempt": opt_int(event.get("attempt"), "attempt"),
                        "max_retries": opt_int(event.get("max_retries"), "max_retries"),
                        "delay_seconds": (delay or 0.0) / 1000,
                        "status": opt_int(event.get("error_status"), "error_status"),
                        "error": opt_str(event.get("error"), "error"),
                    },
                ),
            )
        if subtype in _QUIET_SYSTEM:
            return _NOTHING
        return self.unknown(f"system/{subtype}")

    def _assistant(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        message = obj(event.get("message"), "message")
        parent = opt_str(event.get("parent_tool_use_id"), "parent_tool_use_id")
        message_id = opt_str(message.get("id"), "message.id")
        skip_text = parent is not None or message_id in self._streamed
        chunks: list[Chunk] = []
        for i, raw in enumerate(seq(message.get("content"), "message.content")):
            where = f"message.content[{i}]"
            block = obj(raw, where)
            btype = opt_str(block.get("type"), f"{where}.type")
            if btype == "text":
                text = opt_str(block.get("text"), f"{where}.text")
                if not skip_text and text:
                    chunks.append(Chunk("text", text))
            elif btype == "tool_use":
                chunks.append(
                    Chunk(
                        "tool_use",
                        data={
                            "id": opt_str(block.get("id"), f"{where}.id"),
                            "name": opt_str(block.get("name"), f"{where}.name"),
                            "input": dict(obj(block.get("input"), f"{where}.input")),
                            "parent_tool_use_id": parent,
                        },
                    )
                )
            elif btype == "thinking":
                text = opt_str(block.get("thinking"), f"{where}.thinking")
                if not skip_text and text:
                    chunks.append(Chunk("thinking", text))
        return tuple(chunks)

    def _user(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        message = obj(event.get("message"), "message")
        content = message.get("content")
        if type(content) is not list:  # a plain string: the prompt itself, no tool results
            opt_str(content, "message.content")
            return _NOTHING
        parent = opt_str(event.get("parent_tool_use_id"), "parent_tool_use_id")
        chunks: list[Chunk] = []
        for i, raw in enumerate(content):
            where = f"message.content[{i}]"
            block = obj(raw, where)
            if opt_str(block.get("type"), f"{where}.type") != "tool_result":
                continue
            chunks.append(
                Chunk(
                    "tool_result",
                    data={
                        "tool_use_id": opt_str(block.get("tool_use_id"), f"{where}.tool_use_id"),
                        "content": _tool_content(block.get("content"), f"{where}.content"),
                        "is_error": flag(block.get("is_error"), f"{where}.is_error"),
                        "parent_tool_use_id": parent,
                    },
                )
            )
        return tuple(chunks)

    def _result(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        session_id = opt_str(event.get("session_id"), "session_id") or self.session_id
        subtype = opt_str(event.get("subtype"), "subtype")
        if flag(event.get("is_error"), "is_error"):
            status = opt_int(event.get("api_error_status"), "api_error_status")
            errors = [str(e) for e in seq(event.get("errors"), "errors")]
            text = opt_str(event.get("result"), "result") or "; ".join(errors)
            # api_error_status is null for failures without an HTTP answer (a lost
            # connection, no credentials): then the text says what happened.
            kind = error_kind(status, text)
            self.fail(
                f"Claude Code reported an error ({subtype}): {text or 'no detail'}",
                kind,
                status=status,
                subtype=subtype,
                session_id=session_id,
            )
            return _NOTHING
        self.final = {
            "usage": usage_from(event.get("usage")),
            "cost_usd": opt_number(event.get("total_cost_usd"), "total_cost_usd"),
            "stop_reason": opt_str(event.get("stop_reason"), "stop_reason") or subtype,
            "session_id": session_id,
            "model": self.model,
            "num_turns": opt_int(event.get("num_turns"), "num_turns"),
        }
        return _NOTHING


def _tool_content(value: object, what: str) -> str | list[Any] | None:
    """A tool result's content: a string, a list of content blocks, or nothing."""
    if value is None or type(value) is str:
        return value
    return [dict(obj(block, f"{what}[{i}]")) for i, block in enumerate(seq(value, what))]


class ClaudeCodeProvider(CliProvider):
    """Runs ``claude -p --output-format stream-json --verbose`` per request.

    Kind options: ``partial_messages`` (bool: token-level text), ``max_turns``
    (int), ``append_system`` (str: ``--append-system-prompt``), ``resume`` (a
    session id to continue). ``system`` replaces Claude Code's system prompt
    (``--system-prompt``); ``max_tokens`` sets ``CLAUDE_CODE_MAX_OUTPUT_TOKENS``.
    """

    kind = "claude-code"
    options: ClassVar[frozenset[str]] = frozenset(
        {"partial_messages", "max_turns", "append_system", "resume"}
    )

    def arguments(
        self, model: str | None, system: str | None, options: Mapping[str, Any]
    ) -> list[str]:
        """``-p --output-format stream-json --verbose`` plus model, permissions and limits."""
        spec = self.cli_spec
        assert isinstance(spec, ClaudeCodeSpec)
        args = ["-p", "--output-format", "stream-json", "--verbose"]
        if model:
            args += ["--model", model]
        if options.get("partial_messages", spec.partial_messages):
            args.append("--include-partial-messages")
        args += ["--permission-mode", spec.permission_mode]
        if spec.allowed_tools:
            args += ["--allowedTools", ",".join(spec.allowed_tools)]
        if spec.disallowed_tools:
            args += ["--disallowedTools", ",".join(spec.disallowed_tools)]
        max_turns = options.get("max_turns", spec.max_turns)
        if max_turns is not None:
            args += ["--max-turns", str(int(max_turns))]
        if system is not None:
            args += ["--system-prompt", system]
        if options.get("append_system"):
            args += ["--append-system-prompt", str(options["append_system"])]
        if options.get("resume"):
            args += ["--resume", str(options["resume"])]
        return args

    def session(
        self,
        *,
        cwd: str | Path | None = None,
        model: str | None = None,
        system: str | None = None,
        **kind_options: Any,
    ) -> ClaudeSession:
        """A conversation with one Claude Code process (stream-json input), many turns.

        Takes a ready spare of the same launch when there is one. Kind options as for
        ``stream()`` (``resume``: continue an earlier session id).
        """
        self._check_options(kind_options)
        return ClaudeSession(self, cwd=cwd, model=model, system=system, options=kind_options)

    def warm_kind(self) -> ClaudeWarm:
        """Spares: the same command with ``--input-format stream-json``, primed."""
        return ClaudeWarm()

    def warm_stdin(self, prompt: str) -> bytes:
        """A spare reads stream-json: the prompt as one user message line."""
        return user_line(prompt)

    def environment(self, max_tokens: int | None) -> dict[str, str]:
        """The minimal environment, with ``CLAUDE_CODE_MAX_OUTPUT_TOKENS`` for ``max_tokens``."""
        env = minimal_env(self.cli_spec.env)
        if max_tokens is not None:
            env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(int(max_tokens))
        return env

    def parser(self, options: Mapping[str, Any]) -> ClaudeCodeParser:
        """A parser that knows whether partial messages were asked for."""
        spec = self.cli_spec
        assert isinstance(spec, ClaudeCodeSpec)
        partial = bool(options.get("partial_messages", spec.partial_messages))
        return ClaudeCodeParser(self.name, self.ctx.metrics, partial)
