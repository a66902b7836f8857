"""`provcfg run` when the provider's agent CLI is not installed: one line, then what to do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support_manifest import EXAMPLE, clean_env
from tests.support_services import free_port

PROVCFG = str(Path(sys.executable).with_name("provcfg"))


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROVCFG, "run", *args],
        cwd=cwd,
        env=clean_env(PATH="/usr/bin:/bin", HOME=str(cwd)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_default_provider_without_claude(tmp_path: Path) -> None:
    """The example's default provider with no claude installed: exit 8, one line saying so
    (not the list of PATH folders), then the npm package, `provcfg doctor` and the offline
    stub provider."""
    shutil.copy(EXAMPLE, tmp_path / "providers.yaml")
    done = _run("hi", cwd=tmp_path)
    assert done.returncode == 8
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "provcfg: provider 'claude' needs the claude CLI, which is not on PATH (2 folders) "
        "nor in ~/.claude/local",
        "  install it:   npm install -g @anthropic-ai/claude-code",
        "  diagnose:     provcfg doctor",
        '  try offline:  provcfg run -p local --stub "Say hi"',
    ]


def test_the_suggestions_name_the_manifest_and_work(tmp_path: Path) -> None:
    """With -f and an explicit path that does not exist, the line names the path and the
    suggested offline command, run as printed, streams the stub's answer."""
    manifest = tmp_path / "team.yaml"
    port = free_port()
    manifest.write_text(
        "version: 1\ndefault_provider: agent\nproviders:\n"
        "  agent: {kind: codex, path: /nonexistent/codex}\n"
        f"  offline: {{kind: anthropic-api, base_url: 'http://127.0.0.1:{port}', api_key: stub,"
        " model: claude-haiku-4-5, transport: fast}\n"
    )
    done = _run("-f", str(manifest), "hi", cwd=tmp_path)
    assert done.returncode == 8
    lines = done.stderr.splitlines()
    assert lines[0] == (
        "provcfg: provider 'agent' needs the codex CLI, its providers.agent.path "
        "/nonexistent/codex is no executable (does not exist)"
    )
    assert lines[1] == "  install it:   npm install -g @openai/codex"
    assert lines[2] == f"  diagnose:     provcfg doctor {manifest}"
    suggested = lines[3].split("provcfg run ", 1)[1]
    assert suggested == f'-f {manifest} -p offline --stub "Say hi"'
    again = _run("-f", str(manifest), "-p", "offline", "--stub", "Say hi", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "Hello from the provcfg stub.\n"
