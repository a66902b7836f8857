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


def usage_from(raw: object) -> Usage:
    """A :class:`Usage` from Anthropic-style usage counts (missing counts are 0)."""
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cache_read_input_tokens=int(raw.get("cache_read_input_tokens") or 0),
        cache_creation_input_tokens=int(raw.get("cache_creation_input_tokens") or 0),
    )


class ClaudeCodeParser(EventParser):
    """Claude Code stream-json objects -> chunks, for one request."""

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
        etype = event.get("type")
        handler = self._handlers.get(etype)  # type: ignore[arg-type]
        if handler is None:
            return _NOTHING if etype in _QUIET_TYPES else self.unknown(etype)
        return handler(event)

    def _stream_event(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        inner = event.get("event") or {}
        etype = inner.get("type")
        if etype == "content_block_delta":
            if event.get("parent_tool_use_id"):
                return _NOTHING
            delta = inner.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                if self._current is not None:
                    self._streamed.add(self._current)
                return (Chunk("text", delta.get("text", "")),)
            if dtype == "thinking_delta":
                if self._current is not None:
                    self._streamed.add(self._current)
                return (Chunk("thinking", delta.get("thinking", "")),)
            return _NOTHING
        if etype == "message_start":
            message = inner.get("message") or {}
            self._current = message.get("id")
        return _NOTHING

    def _system(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        subtype = event.get("subtype")
        if subtype == "init":
            self.session_id = event.get("session_id")
            self.model = event.get("model")
            return (
                Chunk(
                    "system",
                    data={
                        "subtype": "init",
                        "session_id": self.session_id,
                        "model": self.model,
                        "tools": tuple(event.get("tools") or ()),
                        "permission_mode": event.get("permissionMode"),
                        "cwd": event.get("cwd"),
                    },
                ),
            )
        if subtype == "api_retry":
            return (
                Chunk(
                    "retry",
                    data={
                        "attempt": event.get("attempt"),
                        "max_retries": event.get("max_retries"),
                        "delay_seconds": (event.get("retry_delay_ms") or 0) / 1000,
                        "status": event.get("error_status"),
                        "error": event.get("error"),
                    },
                ),
            )
        if subtype in _QUIET_SYSTEM:
            return _NOTHING
        return self.unknown(f"system/{subtype}")

    def _assistant(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        message = event.get("message") or {}
        parent = event.get("parent_tool_use_id")
        skip_text = parent is not None or message.get("id") in self._streamed
        chunks: list[Chunk] = []
        for block in message.get("content") or ():
            btype = block.get("type")
            if btype == "text":
                if not skip_text and block.get("text"):
                    chunks.append(Chunk("text", block["text"]))
            elif btype == "tool_use":
                chunks.append(
                    Chunk(
                        "tool_use",
                        data={
                            "id": block.get("id"),
                            "name": block.get("name"),
                            "input": block.get("input"),
                            "parent_tool_use_id": parent,
                        },
                    )
                )
            elif btype == "thinking" and not skip_text and block.get("thinking"):
                chunks.append(Chunk("thinking", block["thinking"]))
        return tuple(chunks)

    def _user(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        content = (event.get("message") or {}).get("content")
        if not isinstance(content, list):
            return _NOTHING
        return tuple(
            Chunk(
                "tool_result",
                data={
                    "tool_use_id": block.get("tool_use_id"),
                    "content": block.get("content"),
                    "is_error": bool(block.get("is_error")),
                    "parent_tool_use_id": event.get("parent_tool_use_id"),
                },
            )
            for block in content
            if isinstance(block, dict) and block.get("type") == "tool_result"
        )

    def _result(self, event: dict[str, Any]) -> tuple[Chunk, ...]:
        session_id = event.get("session_id") or self.session_id
        if event.get("is_error"):
            status = event.get("api_error_status")
            subtype = event.get("subtype")
            text = str(event.get("result") or "; ".join(map(str, event.get("errors") or ())))
            # api_error_status is null for failures without an HTTP answer (a lost
            # connection, no credentials): then the text says what happened.
            kind = error_kind(status if isinstance(status, int) else None, text)
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
            "cost_usd": event.get("total_cost_usd"),
            "stop_reason": event.get("stop_reason") or event.get("subtype"),
            "session_id": session_id,
            "model": self.model,
            "num_turns": event.get("num_turns"),
        }
        return _NOTHING


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
