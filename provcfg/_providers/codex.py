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

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from provcfg._manifest import CodexSpec
from provcfg._providers._cli import CliProvider, EventParser, error_kind, status_in_text
from provcfg._providers._wire import count, obj, opt_int, opt_str, string
from provcfg._providers.base import Chunk, Usage

__all__ = ["CodexParser", "CodexProvider"]

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

    def trailing_arguments(self) -> list[str]:
        """``-``: codex reads the prompt from stdin."""
        return ["-"]

    def parser(self, options: Mapping[str, Any]) -> CodexParser:
        """A fresh codex parser."""
        return CodexParser(self.name, self.ctx.metrics)
