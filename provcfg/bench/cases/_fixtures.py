"""Temporary manifests, fake CLIs and the stub child the built-in cases build on."""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "MODEL",
    "api_providers",
    "claude_lines",
    "scratch",
    "shell_cli",
    "write",
]

MODEL = "stub-bench"
"""A model id no API knows (the SDK warns about deprecated real ones); the stub echoes it."""


@contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="provcfg-bench-") as folder:
        yield Path(folder)


def write(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``folder/name`` and return the path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def shell_cli(folder: Path, name: str, lines: Sequence[str], *, read_stdin: bool = True) -> Path:
    """An executable ``/bin/sh`` CLI printing ``lines`` (after reading its stdin).

    The cheapest real process that speaks a CLI's protocol: the provider and the
    by-hand reader both pay the same spawn, so what differs is provcfg.
    """
    body = ["#!/bin/sh"]
    if lines:
        body.append(f"printf '%s\\n' {shlex.quote(lines[0])}")
    if read_stdin:
        body.append("cat >/dev/null")
    body.extend(f"printf '%s\\n' {shlex.quote(line)}" for line in lines[1:])
    path = write(folder, name, "\n".join(body) + "\n")
    path.chmod(0o755)
    return path


def claude_lines(text_deltas: int = 1) -> list[str]:
    """Claude Code ``stream-json`` output: init, ``text_deltas`` deltas, result."""
    lines = [json.dumps({"type": "system", "subtype": "init", "session_id": "s", "model": "m"})]
    for i in range(text_deltas):
        event = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": f"token {i} "},
        }
        lines.append(
            json.dumps(
                {
                    "type": "stream_event",
                    "event": event,
                    "session_id": "s",
                    "parent_tool_use_id": None,
                }
            )
        )
    lines.append(
        json.dumps(
            {
                "type": "result",
                "subtype": "success",
                "is_error": False,
                "session_id": "s",
                "result": "hello",
                "usage": {"input_tokens": 1, "output_tokens": 1},
                "total_cost_usd": 0.0,
            }
        )
    )
    return lines


def api_providers(
    count: int,
    base_url: str,
    *,
    transport: str = "fast",
    pool: str = "shared",
    init: str = "lazy",
    pools: int = 1,
    max_connections: int = 100,
    keepalive: int = 20,
) -> str:
    """A manifest with ``count`` anthropic-api providers ``api0..`` at ``base_url``."""
    lines = ["version: 1", "pools:"]
    lines += [
        f"  {pool}{i if pools > 1 else ''}: {{max_connections: {max_connections}, "
        f"max_keepalive_connections: {keepalive}}}"
        for i in range(pools)
    ]
    lines.append("providers:")
    for i in range(count):
        name = f"{pool}{i % pools}" if pools > 1 else pool
        lines.append(
            f"  api{i}: {{kind: anthropic-api, base_url: '{base_url}', api_key: sk-bench, "
            f"pool: {name}, transport: {transport}, init: {init}, max_retries: 0, "
            f"model: {MODEL}}}"
        )
    return "\n".join(lines) + "\n"


@contextmanager
def path_prepended(folders: Sequence[Path]) -> Iterator[None]:
    """``PATH`` is ``folders`` (then the old PATH) inside the block."""
    old = os.environ.get("PATH")
    os.environ["PATH"] = os.pathsep.join([*map(str, folders), *([old] if old else [])])
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = old
