"""The README's Quick start: exactly two commands, and the main one works from the checkout."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

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


def test_demo_command_streams_an_answer_offline_with_timings() -> None:
    """scripts/demo.sh validates the example, streams the stub's answer and prints timings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVCFG_")}
    done = subprocess.run(
        [str(ROOT / "scripts" / "demo.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Hello from the provcfg stub." in done.stdout
    assert re.search(r"first_chunk=\d+\.\d+ms", done.stderr), done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
