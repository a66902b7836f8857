"""The README's Quick start: exactly two commands, and the main one works from the checkout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "Quick start has no ```sh block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_has_exactly_two_commands() -> None:
    """The Quick start block holds two commands: the demo and the test suite (what .ci/run runs)."""
    commands = quick_start_commands()
    assert commands == ["scripts/demo.sh", "scripts/test.sh"]
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
    for command in commands:
        assert os.access(ROOT / command, os.X_OK), command


def fresh_copy(target: Path) -> Path:
    """The checkout's files (tracked and untracked, not ignored) without .venv or node_modules."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = ROOT / raw.decode()
        if source.is_file():
            dest = target / raw.decode()
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
    return target


@pytest.mark.slow
def test_demo_command_streams_an_answer_offline_with_timings(tmp_path: Path) -> None:
    """scripts/demo.sh in a copy with no venv installs, validates, streams and prints timings."""
    checkout = fresh_copy(tmp_path / "checkout")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVCFG_", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [str(checkout / "scripts" / "demo.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=checkout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Hello from the provcfg stub." in done.stdout
    assert re.search(r"first_chunk=\d+\.\d+ms", done.stderr), done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
