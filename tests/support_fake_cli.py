"""Helpers for tests that drive the fake CLI in tests/fake_clis/replay.py through real processes.

``scenario(tmp_path, text)`` writes a scenario file; ``runner_command`` builds a
:class:`CliCommand` that runs it with this interpreter; ``fake_cli`` writes an
executable wrapper (what a provider's ``cli_path`` returns); ``process_gone``
tells whether a pid no longer runs (gone, or a zombie left to a PID 1 that does
not reap orphans).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from provcfg._providers._subprocess import CliCommand, minimal_env

__all__ = ["REPLAY", "fake_cli", "process_gone", "reaped", "runner_command", "scenario"]

REPLAY = Path(__file__).parent / "fake_clis" / "replay.py"


def scenario(tmp_path: Path, text: str, name: str = "scenario.txt") -> Path:
    """Write a scenario for replay.py and return its path."""
    path = tmp_path / name
    path.write_text(text)
    return path


def runner_command(script: Path, **kwargs: Any) -> CliCommand:
    """A CliCommand running replay.py on ``script`` (extra env from ``env_extra``)."""
    env_extra: dict[str, str] = kwargs.pop("env_extra", {})
    declared = {"FAKE_SCENARIO": SecretStr(str(script))}
    declared.update({k: SecretStr(v) for k, v in env_extra.items()})
    kwargs.setdefault("kill_grace", 0.5)
    kwargs.setdefault("provider", "fake")
    return CliCommand(argv=(sys.executable, str(REPLAY)), env=minimal_env(declared), **kwargs)


def fake_cli(tmp_path: Path, name: str = "fake-cli") -> Path:
    """An executable that runs replay.py with this interpreter (exec: same pid)."""
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{REPLAY}' \"$@\"\n")
    path.chmod(0o755)
    return path


def process_gone(pid: int) -> bool:
    """True if ``pid`` does not exist or is a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 :].split(b" ", 1)[0] == b"Z"


def reaped(pid: int) -> bool:
    """True if ``pid`` no longer exists at all (exited and reaped, not even a zombie)."""
    return not Path(f"/proc/{pid}").exists()


def make_provider(
    cls: type[Any],
    spec_cls: type[Any],
    kind: str,
    tmp_path: Path,
    script: str,
    *,
    default_model: str = "claude-sonnet-4-5",
    env: dict[str, str] | None = None,
    **spec_fields: Any,
) -> tuple[Any, Path]:
    """A CLI provider whose CLI is replay.py on ``script``; returns it and its dump file.

    The fake CLI dumps argv, environment and stdin into the dump file.
    """
    from provcfg._metrics import Metrics
    from provcfg.testing import make_context

    dump = tmp_path / "dump.json"
    cli = fake_cli(tmp_path)
    declared = {"FAKE_SCENARIO": str(scenario(tmp_path, script)), "FAKE_DUMP": str(dump)}
    declared.update(env or {})
    spec_fields.setdefault("kill_grace", 0.5)
    spec_fields.setdefault("model", default_model)
    spec = spec_cls(kind=kind, env=declared, **spec_fields)
    ctx = make_context(spec, name="agent", cli_path=cli, metrics=Metrics())
    return cls(ctx), dump
