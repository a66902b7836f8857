"""The ``echo-conversation`` reply: a compact, deterministic summary of the conversation received.

Session tests need to see what a client sent on turn N (did turn 2 carry turn 1?), and
so do people debugging an agent offline. The summary has one line per message::

    1 user: Say the word apple
    2 assistant: 1 user: Say the word apple
    3 user: [tool_result] 42 | What did I say first?

A line is ``INDEX ROLE: PART | PART ...``. A text part is its text with runs of
whitespace made one space, cut to :data:`MAX_PART` characters (``...`` marks a cut);
other parts are a bracketed tag: ``[tool_use NAME]``, ``[tool_result] TEXT``,
``[function_call NAME]``, ``[function_call_output] TEXT``, ``[image]``, ``[thinking]``,
``[reasoning]``, ``[TYPE]``. The three dialects' shapes are read:

* Messages: ``messages`` (``content`` a string or a list of blocks); ``system`` is left out;
* Chat Completions: ``messages`` (system and developer messages included, as sent);
* Responses: ``input`` (a string is one user message; items with a ``role``, plus
  ``function_call`` / ``*_call_output`` / ``reasoning`` items); ``instructions`` is left out.

At most :data:`MAX_MESSAGES` messages of at most :data:`MAX_PARTS` parts are listed,
and the summary stops near :data:`MAX_SUMMARY` characters (then ``... N more
messages``).
Anything of an unexpected type is shown as ``[?]``, never an error: the summary is for
looking at, and a hostile body must not break it.
"""

from __future__ import annotations

from typing import Any

from provcfg.stub.config import safe_text

__all__ = ["MAX_MESSAGES", "MAX_PART", "MAX_PARTS", "MAX_SUMMARY", "summarize"]

MAX_PART = 200
MAX_PARTS = 50
MAX_MESSAGES = 1000
MAX_SUMMARY = 256 * 1024
_EMPTY = "(no messages)"


def summarize(body: dict[str, Any]) -> str:
    """Return the summary of the conversation in a request ``body`` (any of the three dialects)."""
    messages = body.get("messages")
    if messages is None:
        given = body.get("input")
        messages = [{"role": "user", "content": given}] if isinstance(given, str) else given
    if not isinstance(messages, list):
        return _EMPTY
    lines = []
    size = 0
    for index, message in enumerate(messages[:MAX_MESSAGES], 1):
        if size > MAX_SUMMARY:
            break
        role, parts = _message(message)
        if len(parts) > MAX_PARTS:
            parts = [*parts[:MAX_PARTS], f"... {len(parts) - MAX_PARTS} more parts"]
        lines.append(f"{index} {role}: {' | '.join(parts)}")
        size += len(lines[-1]) + 1
    if len(lines) < len(messages):
        lines.append(f"... {len(messages) - len(lines)} more messages")
    return safe_text("\n".join(lines)) if lines else _EMPTY


def _message(message: Any) -> tuple[str, list[str]]:
    if not isinstance(message, dict):
        return "?", ["[?]"]
    kind = message.get("type")
    role = message.get("role")
    if role is None and isinstance(kind, str):
        # Responses API items without a role: calls come from the model, outputs from tools.
        if kind == "function_call" or kind.endswith("_call"):
            return "assistant", [_tagged(f"[{kind} {_name(message)}]")]
        if kind.endswith("_call_output"):
            return "tool", [_tagged(f"[{kind}]", _text(message.get("output")))]
        if kind == "reasoning":
            return "assistant", ["[reasoning]"]
        return "?", [f"[{_cut(kind)}]"]
    parts = _parts(message.get("content"))
    for call in message.get("tool_calls") or []:  # Chat Completions
        function = call.get("function") if isinstance(call, dict) else None
        parts.append(_tagged(f"[tool_call {_name(function)}]"))
    return (_cut(role) if isinstance(role, str) else "?"), parts or [""]


def _parts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [_cut(content)]
    if not isinstance(content, list):
        return [] if content is None else ["[?]"]
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(_cut(block))
            continue
        if not isinstance(block, dict):
            parts.append("[?]")
            continue
        kind = block.get("type")
        text = block.get("text")
        if isinstance(text, str) and kind in ("text", "input_text", "output_text", None):
            parts.append(_cut(text))
        elif kind == "tool_use":
            parts.append(_tagged(f"[tool_use {_name(block)}]"))
        elif kind == "tool_result":
            parts.append(_tagged("[tool_result]", _text(block.get("content"))))
        elif kind in ("image", "input_image", "image_url"):
            parts.append("[image]")
        elif kind in ("thinking", "redacted_thinking"):
            parts.append("[thinking]")
        else:
            parts.append(f"[{_cut(kind)}]" if isinstance(kind, str) else "[?]")
    return parts


def _text(content: Any) -> str:
    """The text of a tool result: a string, or the text blocks of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text") for b in content if isinstance(b, dict)]
        return " ".join(t for t in texts if isinstance(t, str))
    return ""


def _name(owner: Any) -> str:
    name = owner.get("name") if isinstance(owner, dict) else None
    return _cut(name) if isinstance(name, str) else "?"


def _tagged(tag: str, text: str = "") -> str:
    return f"{tag} {_cut(text)}" if text else tag


def _cut(text: str) -> str:
    flat = " ".join(text[: MAX_PART * 8].split())
    return flat if len(flat) <= MAX_PART else flat[:MAX_PART] + "..."
