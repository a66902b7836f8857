"""1,000 cycles of load, use, close in one process leave descriptors and memory flat."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from provcfg.stub import StubProcess

CYCLES = 1000


def _manifest(tmp_path: Path, base_url: str, cli: Path) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            default_provider: api
            models:
              fast: {{anthropic-api: claude-haiku-4-5}}
            cache:
              providers: {{backend: memory, max_size: 8, ttl: 1h}}
              responses: {{backend: file, path: {tmp_path / "responses.dbm"}}}
            pools:
              p: {{max_connections: 4}}
            providers:
              api: {{kind: anthropic-api, base_url: "{base_url}", api_key: stub, pool: p,
                     model: fast, transport: fast, max_retries: 0}}
              sdk: {{kind: anthropic-api, base_url: "{base_url}", api_key: stub, pool: p,
                     model: fast, transport: sdk, max_retries: 0}}
              cli: {{kind: claude-code, command: {cli.name}, search_paths: ["{cli.parent}"]}}
            """
        )
    )
    return path


@pytest.mark.slow
def test_load_use_close_cycles_are_flat(tmp_path: Path, stub_process: StubProcess) -> None:
    """After 1,000 load/use/close cycles the fd count and RSS stay where they were after 100."""
    cli = tmp_path / "bin" / "fake-claude"
    cli.parent.mkdir()
    cli.write_text("#!/bin/sh\nexit 0\n")
    cli.chmod(0o755)
    manifest = _manifest(tmp_path, stub_process.base_url, cli)
    # A fresh interpreter, so nothing else the suite did distorts the counts.
    code = textwrap.dedent(
        f"""\
        import asyncio, gc, os, resource, sys
        import provcfg

        def fds():
            return len(os.listdir("/proc/self/fd"))

        def rss_kib():
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])

        async def cycle(i):
            async with provcfg.load({str(manifest)!r}) as rt:
                p = rt.provider()
                assert rt.provider("api") is p
                assert rt.translate_model("api", "fast") == "claude-haiku-4-5"
                rt.cli_path("cli")
                rt.metrics.snapshot()
                if i % 10 == 0:
                    r = await p.complete("x")
                    assert r.text
                if i % 100 == 0:
                    r = await rt.provider("sdk").complete("y")
                    assert r.text

        async def main():
            samples = []
            for i in range({CYCLES}):
                await cycle(i)
                if i in (99, {CYCLES - 1}):
                    gc.collect()
                    samples.append((fds(), rss_kib()))
            print(samples[0][0], samples[0][1], samples[1][0], samples[1][1])

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PROVCFG_LOG_LEVEL": "error"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    fd_100, rss_100, fd_end, rss_end = map(int, done.stdout.strip().splitlines()[-1].split())
    assert fd_end <= fd_100, (fd_100, fd_end)
    # RSS may wobble with the allocator; a leak of one client or region per cycle
    # would add tens of MiB over 900 cycles.
    assert rss_end - rss_100 < 8 * 1024, (rss_100, rss_end)
