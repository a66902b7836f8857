"""provcfg's logs as a library and as a command: never stdout, the application's logging decides."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from provcfg.stub import StubServer
from tests.support_manifest import clean_env

# Library code that logs at debug (cache_region_built, cli_path_detected) and at warning
# (cache_discard_failed) through provcfg modules, then prints the application's own output.
LIBRARY_USE = """
import os, sys
from provcfg._cache import build_region, close_region
from provcfg._clipath import CLIResolver
from provcfg._manifest import MemoryRegionSpec
from provcfg._metrics import Metrics

def discard(key, value):
    raise RuntimeError("on_discard failed")

metrics = Metrics()
region = build_region("r", MemoryRegionSpec(backend="memory", max_size=1), namespace="n",
                      metrics=metrics, on_discard=discard)
region.set("a", 1)
region.set("b", 2)                      # evicts a: on_discard raises, provcfg warns
close_region(region)
resolver = CLIResolver(metrics)
resolver.resolve("sh", path=None, search_paths=(), install_hint="")   # logs at debug
resolver.close()
print("application output")
"""


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unconfigured_library_writes_only_warnings_to_stderr() -> None:
    """With no logging set-up, stdout holds only the application's output; stderr the
    warning (through logging's last-resort handler), and no debug event anywhere."""
    done = _python(LIBRARY_USE)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "application output\n"
    assert "cache_discard_failed" in done.stderr
    assert "cache_region_built" not in done.stderr
    assert "cli_path_detected" not in done.stderr


def test_application_logging_configuration_decides() -> None:
    """An application that sets logging to DEBUG on its own handler receives provcfg's debug
    events there, under provcfg's module logger names, and still nothing on stdout."""
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,"
        " format='APP %(name)s %(levelname)s %(message)s')\n" + LIBRARY_USE
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "application output\n"
    lines = done.stderr.splitlines()
    assert any(
        line.startswith("APP provcfg._cache._regions DEBUG") and "cache_region_built" in line
        for line in lines
    ), done.stderr
    assert any(
        line.startswith("APP provcfg._clipath DEBUG") and "cli_path_detected" in line
        for line in lines
    ), done.stderr
    assert any(
        line.startswith("APP provcfg._cache._memory WARNING") and "cache_discard_failed" in line
        for line in lines
    ), done.stderr


def test_application_can_silence_provcfg() -> None:
    """Raising the 'provcfg' logger's level silences its warnings: the application decides."""
    code = "import logging\nlogging.getLogger('provcfg').setLevel(logging.ERROR)\n" + LIBRARY_USE
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "application output\n"
    assert done.stderr == ""


def test_library_user_stdout_holds_only_their_output(
    tmp_path: Path, stub_thread: StubServer
) -> None:
    """load() + stream() of the example-like manifest in a program with no logging set-up:
    its stdout is exactly the streamed text it printed itself."""
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        textwrap.dedent(f"""\
            version: 1
            pools: {{p: {{max_connections: 4}}}}
            providers:
              local: {{kind: anthropic-api, base_url: "{stub_thread.base_url}", api_key: stub,
                       pool: p, model: claude-haiku-4-5, transport: fast}}
              api: {{kind: anthropic-api, base_url: "{stub_thread.base_url}", api_key: stub,
                     pool: p, model: claude-haiku-4-5, init: background}}
            """)
    )
    code = textwrap.dedent(f"""\
        import asyncio, provcfg

        async def main():
            async with provcfg.load({str(manifest)!r}) as rt:
                async for chunk in rt.provider("local").stream("hi"):
                    print(chunk.text, end="")
            print()

        asyncio.run(main())
        """)
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello from the provcfg stub.\n"


def test_library_modules_take_their_logger_from_provcfg_logs() -> None:
    """No provcfg module builds a structlog logger that bypasses logging."""
    root = Path(__file__).resolve().parent.parent / "provcfg"
    direct = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "structlog.get_logger(" in path.read_text(encoding="utf-8")
    )
    assert direct == []


def _run_cli(tmp_path: Path, base_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        "version: 1\nproviders:\n"
        f"  local: {{kind: anthropic-api, base_url: '{base_url}', api_key: stub,"
        " model: claude-haiku-4-5, transport: fast}\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "provcfg", "run", "-f", str(manifest), "-p", "local", "hi"],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_command_logs_go_to_stderr_at_the_chosen_level(
    tmp_path: Path, stub_thread: StubServer
) -> None:
    """`provcfg run` at PROVCFG_LOG_LEVEL=debug: stdout is the answer alone, every provcfg
    event (also from modules on structlog's own loggers) is on stderr."""
    done = _run_cli(tmp_path, stub_thread.base_url, PROVCFG_LOG_LEVEL="debug")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello from the provcfg stub.\n"
    assert "runtime_built" in done.stderr
    assert "pool_client_created" in done.stderr


def test_command_json_log_format(tmp_path: Path, stub_thread: StubServer) -> None:
    """PROVCFG_LOG_FORMAT=json makes every stderr log line one JSON object with a level."""
    done = _run_cli(
        tmp_path, stub_thread.base_url, PROVCFG_LOG_LEVEL="info", PROVCFG_LOG_FORMAT="json"
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert any(e["event"] == "runtime_built" and e["level"] == "info" for e in events)


def test_command_default_level_is_quiet(tmp_path: Path, stub_thread: StubServer) -> None:
    """At the default level (warning) a successful run writes nothing to stderr."""
    done = _run_cli(tmp_path, stub_thread.base_url)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
