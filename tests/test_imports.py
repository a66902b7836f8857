"""`import provcfg` and `provcfg validate` stay light: no SDK, HTTP stack, watcher or redis."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support_manifest import EXAMPLE, clean_env

HEAVY = ("anthropic", "httpx2", "httpx", "watchfiles", "redis", "pymemcache")

PROBE = """
import json, sys
{body}
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def _imported(body: str, env: dict[str, str] | None = None) -> list[str]:
    code = PROBE.format(body=body, heavy=(*HEAVY, "pydantic_settings"))
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: list[str] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_import_provcfg_is_light() -> None:
    """`import provcfg` imports none of the heavy dependencies."""
    assert _imported("import provcfg") == []


@pytest.mark.parametrize("command", ["validate", "show", "schema"])
def test_cli_commands_are_light(command: str) -> None:
    """validate/show/schema of the example run without importing the heavy dependencies."""
    args = [command] if command == "schema" else [command, str(EXAMPLE)]
    body = (
        "import contextlib, io\n"
        "from provcfg._cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main({args!r}) == 0\n"
    )
    assert _imported(body) == []


def test_env_overrides_import_only_pydantic_settings() -> None:
    """With a PROVCFG_ variable set, pydantic-settings is imported, and still nothing heavy."""
    body = (
        "from provcfg._loading import load_manifest\n"
        f"m = load_manifest({str(EXAMPLE)!r})\n"
        "assert m.providers['api'].max_tokens == 7\n"
    )
    imported = _imported(body, clean_env(PROVCFG_PROVIDERS__API__MAX_TOKENS="7"))
    assert "pydantic_settings" in imported
    assert all(m.startswith("pydantic_settings") for m in imported)
