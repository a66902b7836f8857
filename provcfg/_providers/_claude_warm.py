"""Claude Code's warm processes: ``claude -p --input-format stream-json`` started ahead.

Started with stream-json input, Claude Code prints nothing and calls no API until a
message line arrives on stdin (measured: docs/performance.md). A spare is the cold
request's exact command plus ``--input-format stream-json``, primed once with a
``get_context_usage`` control request: the CLI then builds its system prompt and tool
list, so the first turn costs half the CPU, and its reply doubles as the "ready"
signal. The API request a primed spare sends equals the cold CLI's in every part
compared (system prompt, tools, messages, sampling fields, headers).

A request that takes a spare writes one user line and closes stdin; from there the
process behaves like a cold ``-p`` run (same lines, exit 0 after ``result``), so the
same parser and runner read it.

What a spare cannot see: Claude Code snapshots the folder's git status, its
CLAUDE.md files and the date when it *starts*. :meth:`ClaudeWarm.fingerprint` covers
what is cheap to check at take time (git HEAD, index and refs, every CLAUDE.md from
the folder up, the settings files, the folder's own entries, the date); an edit to a
tracked file that touches none of them is bounded by ``warm.max_age`` only.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from typing import Final

from provcfg._providers._subprocess import CliCommand
from provcfg._providers._warm import WarmProcess, WarmSpawnError

__all__ = ["PRIME_ID", "ClaudeWarm", "control_line", "user_line"]

PRIME_ID: Final = "provcfg-prime"
_STREAM_INPUT: Final = ("--input-format", "stream-json")


def user_line(prompt: str) -> bytes:
    """One stream-json user message (the only input line shape provcfg ever writes)."""
    message = {"type": "user", "message": {"role": "user", "content": prompt}}
    return (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8")


def control_line(request_id: str, subtype: str) -> bytes:
    """One control request (answered by a ``control_response`` with the same id)."""
    line = {"type": "control_request", "request_id": request_id, "request": {"subtype": subtype}}
    return (json.dumps(line) + "\n").encode("utf-8")


def stream_input(cold: CliCommand) -> CliCommand:
    """``cold`` with stream-json input: the same agent, fed message lines on stdin."""
    argv = cold.argv
    return replace(cold, argv=(argv[0], *_STREAM_INPUT, *argv[1:]), stdin=b"")


class ClaudeWarm:
    """The claude-code part of the warm pool (see :class:`~provcfg._providers._warm.WarmKind`)."""

    shared = False

    def healthy(self, proc: WarmProcess) -> bool:
        """A spare's health is its pipes and exit, checked by the pool."""
        return True

    def spare_command(self, cold: CliCommand) -> CliCommand:
        """The cold command with ``--input-format stream-json``."""
        return stream_input(cold)

    def prepare(self, proc: WarmProcess, deadline: float) -> None:
        """Prime the spare with ``get_context_usage``; ready once its reply arrives.

        Raises:
            WarmSpawnError: it exited, printed anything but that reply, or was too slow.
        """
        proc.write(control_line(PRIME_ID, "get_context_usage"))
        line = proc.read_line(deadline)
        try:
            reply = json.loads(line)
        except ValueError:
            raise WarmSpawnError("Claude Code printed a non-JSON line while priming") from None
        response = reply.get("response") if isinstance(reply, dict) else None
        if (
            not isinstance(response, dict)
            or reply.get("type") != "control_response"
            or response.get("request_id") != PRIME_ID
        ):
            kind = reply.get("type") if isinstance(reply, dict) else type(reply).__name__
            raise WarmSpawnError(f"Claude Code answered the priming request with {kind!r}")
        if response.get("subtype") != "success":
            raise WarmSpawnError(f"Claude Code refused get_context_usage: {response.get('error')}")

    def fingerprint(self, command: CliCommand) -> object:
        """What a Claude Code process snapshots at start-up (see the module docstring)."""
        cwd = command.cwd or os.getcwd()
        home = command.env.get("HOME") or os.path.expanduser("~")
        paths: list[str] = [
            cwd,
            os.path.join(cwd, ".claude", "settings.json"),
            os.path.join(cwd, ".claude", "settings.local.json"),
            os.path.join(home, ".claude", "CLAUDE.md"),
            os.path.join(home, ".claude", "settings.json"),
        ]
        folder = cwd
        while True:
            paths += [
                os.path.join(folder, "CLAUDE.md"),
                os.path.join(folder, ".git", "HEAD"),
                os.path.join(folder, ".git", "index"),
                os.path.join(folder, ".git", "refs", "heads"),
            ]
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        return (time.localtime()[:3], tuple(_mtime(p) for p in paths))


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1
