"""Helpers for the warm-process tests with the real CLIs: a manifest, a rig, process scans.

The rig is tests/test_cli_real.py's: the test's thread in a loopback-only network
namespace, a stub on 127.0.0.1 there, the pinned CLIs pointed at it, a marker variable
in every CLI's environment so that /proc scans find whatever the runtime started.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provcfg.stub import StubServer
from tests.support_clis import (
    MARKER_VAR,
    AgentClis,
    Netns,
    claude_env,
    codex_env,
    marked_processes,
    opencode_env,
    write_codex_config,
    write_opencode_config,
)

__all__ = [
    "SECRET",
    "WarmRig",
    "eventually",
    "warm_manifest",
    "write_manifest",
]

SECRET = "sk-provcfg-warm-" + uuid.uuid4().hex
OPENCODE_MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "stub-hang", "stub-fault-401")


@dataclass
class WarmRig:
    """One test's runtime, stub, marker, folders and manifest path."""

    rt: Any
    stub: StubServer
    marker: str
    where: Netns
    work: Path
    home: Path
    path: Path

    def alive(self) -> list[int]:
        """Pids of live processes carrying this test's marker."""
        return marked_processes(self.marker)


def warm_manifest(
    clis: AgentClis,
    stub: StubServer,
    home: Path,
    marker: str,
    *,
    warm: dict[str, Any] | None = None,
    providers: tuple[str, ...] = ("claude",),
    max_processes: int = 8,
    init: str = "eager",
) -> dict[str, Any]:
    """A manifest with the named real-CLI providers (claude, claude2, codex, opencode)."""
    work = home.parent / "work"
    work.mkdir(exist_ok=True)
    codex_home = home / ".codex"
    write_codex_config(codex_home, stub.base_url)
    config = write_opencode_config(home, stub.base_url, OPENCODE_MODELS)
    common: dict[str, Any] = {"kill_grace": "2s", "timeout": "3m", "init": init}
    if warm is not None:
        common["warm"] = warm

    def env(values: dict[str, str]) -> dict[str, str]:
        out = {k: ("${STUB_SECRET}" if v == SECRET else v) for k, v in values.items()}
        out[MARKER_VAR] = marker
        return out

    every = {
        "claude": {
            "kind": "claude-code",
            "path": str(clis.claude),
            "model": "claude-sonnet-4-5",
            "cwd": str(work),
            "env": env(claude_env(stub.base_url, home, SECRET)),
            **common,
        },
        "claude2": {
            "kind": "claude-code",
            "path": str(clis.claude),
            "model": "claude-haiku-4-5",
            "cwd": str(work),
            "env": env(claude_env(stub.base_url, home, SECRET)),
            **common,
        },
        "codex": {
            "kind": "codex",
            "path": str(clis.codex),
            "model": "gpt-5.5",
            "cwd": str(work),
            "env": env(codex_env(home, codex_home, SECRET)),
            **common,
        },
        "opencode": {
            "kind": "opencode",
            "path": str(clis.opencode),
            "model": "provcfg/claude-sonnet-4-5",
            "cwd": str(work),
            "env": env(opencode_env(home, SECRET, config=config)),
            **common,
        },
    }
    return {
        "version": 1,
        "warm": {"max_processes": max_processes},
        "providers": {name: every[name] for name in providers},
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` as JSON (which is YAML) and return the path."""
    path.write_text(json.dumps(manifest, indent=2))
    return path


async def eventually(check: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Wait until ``check()`` is true (polling every 50 ms); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        await asyncio.sleep(0.05)


def pids_alive(pids: list[int]) -> list[int]:
    """The pids of ``pids`` that still run (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        if stat[stat.rfind(b")") + 2 :][:1] != b"Z":
            out.append(pid)
    return out


def environ_of(pid: int) -> dict[str, str]:
    """The environment of process ``pid``."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    items = raw.decode(errors="replace").split("\0")
    return dict(item.split("=", 1) for item in items if "=" in item)


def os_pid() -> int:
    """Our pid (for scans that must skip this process)."""
    return os.getpid()
