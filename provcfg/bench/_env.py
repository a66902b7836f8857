"""The environment a run was measured in: machine, load, versions, commit, CLI versions."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment", "load_average"]

_PACKAGES = (
    "provcfg",
    "anthropic",
    "httpx2",
    "pydantic",
    "pyyaml",
    "dogpile.cache",
    "watchfiles",
    "structlog",
    "rich",
    "scipy",
    "numpy",
)
_CLI_PACKAGES = {
    "claude": "@anthropic-ai/claude-code",
    "opencode": "opencode-ai",
    "codex": "@openai/codex",
}


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit(project: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _cli_versions(project: Path) -> dict[str, str | None]:
    modules = project / "tools" / "clis" / "node_modules"
    out: dict[str, str | None] = {}
    for binary, package in _CLI_PACKAGES.items():
        try:
            out[binary] = json.loads((modules / package / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            out[binary] = None
    return out


def environment(project: Path) -> dict[str, Any]:
    """Everything about this machine and install that a figure depends on (JSON-ready)."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": _versions(),
        "git_commit": _git_commit(project),
        "cli_versions": _cli_versions(project),
        "load_before": load_average(),
    }
