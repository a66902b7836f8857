"""The agent CLIs provcfg drives, and a bounded look at one of them on this machine.

``provcfg init`` (which CLIs to write into a new manifest) and ``provcfg doctor`` (is a
provider's CLI there, runnable, at a tested version) share this. :data:`AGENT_CLIS`
names, per CLI kind, the command, the npm package that installs it, the version
provcfg's tests run (``tools/clis/package.json`` pins the same ones; a test keeps the two
equal) and the environment variables that authenticate it.

:func:`locate` finds a CLI the way the runtime does (explicit path, then ``PATH``, then
``search_paths``) and also says where it was found. :func:`probe_version` runs
``CLI --version`` in its own process group with a minimal environment (no secret is
handed to it) and a deadline: a CLI that hangs is killed with its whole group and
reaped, so nothing outlives the probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from provcfg._clipath import _path_dirs, _search, _unusable

__all__ = [
    "AGENT_CLIS",
    "AgentCli",
    "Location",
    "VersionProbe",
    "agent_cli",
    "locate",
    "probe_version",
]

_VERSION = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.]+)?")
_OUTPUT_LIMIT = 200
_REAP_TIMEOUT = 1.0


@dataclass(frozen=True, slots=True)
class AgentCli:
    """One agent CLI kind as provcfg knows it."""

    kind: str
    """The provider kind that drives it (``claude-code``)."""
    name: str
    """The provider name ``provcfg init`` writes for it (``claude``)."""
    command: str
    """The executable's name (``claude``)."""
    npm_package: str
    """The npm package that installs it."""
    tested_version: str
    """The version provcfg's tests run (pinned in tools/clis/package.json)."""
    auth_env: tuple[str, ...]
    """Environment variables that authenticate it, the usual one first."""
    search_paths: tuple[str, ...] = ()
    """Folders its own installer uses besides ``PATH``."""

    @property
    def install(self) -> str:
        """The command that installs it."""
        return f"npm install -g {self.npm_package}"


AGENT_CLIS: tuple[AgentCli, ...] = (
    AgentCli(
        kind="claude-code",
        name="claude",
        command="claude",
        npm_package="@anthropic-ai/claude-code",
        tested_version="2.1.197",
        auth_env=("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
        search_paths=("~/.claude/local",),
    ),
    AgentCli(
        kind="opencode",
        name="opencode",
        command="opencode",
        npm_package="opencode-ai",
        tested_version="1.18.33",
        auth_env=("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENCODE_API_KEY"),
        search_paths=("~/.opencode/bin",),
    ),
    AgentCli(
        kind="codex",
        name="codex",
        command="codex",
        npm_package="@openai/codex",
        tested_version="0.171.0",
        auth_env=("OPENAI_API_KEY", "CODEX_API_KEY"),
    ),
)
"""The built-in CLI kinds, in the order ``provcfg init`` prefers them as default."""


def agent_cli(kind: str) -> AgentCli | None:
    """The :class:`AgentCli` of a provider kind, or None for a kind that is not a CLI."""
    return next((cli for cli in AGENT_CLIS if cli.kind == kind), None)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a CLI was looked for and found."""

    file: str | None
    """The executable found, or None."""
    source: str
    """How it was found: ``path`` (the explicit one), ``PATH``, ``search_paths <folder>``,
    or ``command`` (a command with a folder); empty when not found."""
    path_folders: int
    """How many ``PATH`` folders were searched."""
    search_paths: tuple[str, ...]
    """The search paths looked in after ``PATH``, as written."""
    explicit: str | None = None
    """The explicit ``path`` given, if any."""
    unusable: str | None = None
    """Why the explicit path (or the command with a folder) cannot be run."""

    def not_found_text(self, command: str) -> str:
        """One phrase saying where ``command`` was looked for in vain."""
        if self.explicit is not None:
            return f"{self.explicit} (the explicit path) is {self.unusable or 'unusable'}"
        if self.source == "command" or os.path.dirname(command):
            return f"{command} is {self.unusable or 'unusable'}"
        where = f"not on PATH ({self.path_folders} folders)"
        if self.search_paths:
            where += f" nor in search_paths {', '.join(self.search_paths)}"
        return where


def locate(
    command: str,
    *,
    path: str | None = None,
    search_paths: tuple[str, ...] = (),
    path_value: str | None = None,
) -> Location:
    """Find ``command`` as the runtime would: ``path``, else ``PATH`` (``path_value``,
    default this process's), else ``search_paths`` (``~`` expanded)."""
    if path_value is None:
        path_value = os.environ.get("PATH")
    folders = _path_dirs(path_value)
    file = _search(command, path, search_paths, path_value)
    if path is not None:
        explicit = os.path.abspath(os.path.expanduser(path))
        return Location(
            file, "path" if file else "", len(folders), search_paths, explicit, _unusable(explicit)
        )
    if os.path.dirname(command):
        candidate = os.path.abspath(command)
        return Location(file, "command", len(folders), search_paths, unusable=_unusable(candidate))
    if file is None:
        return Location(None, "", len(folders), search_paths)
    found_in = os.path.dirname(file)
    source = "PATH"
    if found_in not in {os.path.abspath(d) for d in folders}:
        for raw in search_paths:
            if os.path.abspath(os.path.expanduser(raw)) == found_in:
                source = f"search_paths {raw}"
                break
    return Location(file, source, len(folders), search_paths)


ProbeStatus = Literal["ok", "failed", "timeout", "unrunnable"]


@dataclass(frozen=True, slots=True)
class VersionProbe:
    """What ``CLI --version`` answered."""

    status: ProbeStatus
    """``ok`` (exit 0), ``failed`` (another exit status), ``timeout`` (killed at the
    deadline) or ``unrunnable`` (the system could not start it)."""
    version: str | None
    """The first ``X.Y.Z`` in its output, if any."""
    output: str
    """The first line of its output (stdout, else stderr), at most 200 characters."""
    exit_code: int | None = None
    reason: str = ""
    """Why it could not be started (``unrunnable``)."""


async def probe_version(
    file: str, *, timeout: float, env: Mapping[str, str] | None = None
) -> VersionProbe:
    """Run ``file --version`` with ``env`` (default: a minimal environment) and ``timeout``.

    Never raises for the CLI's sake: every outcome is a :class:`VersionProbe`. The
    process runs in a session of its own; on timeout, the whole group is killed and
    reaped, and any process it left behind in its group is killed either way.
    """
    if env is None:
        from provcfg._providers._subprocess import minimal_env

        env = minimal_env()
    try:
        proc = await asyncio.create_subprocess_exec(
            file,
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        return VersionProbe("unrunnable", None, "", reason=exc.strerror or type(exc).__name__)
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        _kill_group(proc.pid)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_REAP_TIMEOUT):
                await proc.communicate()
        return VersionProbe("timeout", None, "")
    finally:
        if proc.returncode is None:  # cancelled from outside: do not leave it running
            _kill_group(proc.pid)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(_REAP_TIMEOUT):
                    await proc.wait()
    _kill_group(proc.pid)  # whatever it started and left behind
    text = out.decode(errors="replace").strip() or err.decode(errors="replace").strip()
    first = text.splitlines()[0][:_OUTPUT_LIMIT] if text else ""
    match = _VERSION.search(first)
    status: ProbeStatus = "ok" if proc.returncode == 0 else "failed"
    return VersionProbe(status, match.group(0) if match else None, first, proc.returncode)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
