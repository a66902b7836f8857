"""Warm servers with the real CLIs: codex app-server (and opencode serve) shared by requests.

A server kind keeps ``spares`` servers; every request of the default shape borrows one
(a hit) and runs as a new thread/session there; other shapes run cold (a miss). Each
test runs in its own loopback-only netns, and checks nothing outlives the runtime.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import provcfg
from provcfg.stub import StubConfig, StubServer
from tests.support_clis import (
    AgentClis,
    Netns,
    agent_clis_fixture,  # noqa: F401 (fixture)
    cli_home_fixture,  # noqa: F401 (fixture)
    marked_processes,
    netns_fixture,  # noqa: F401 (fixture)
)
from tests.support_warm import SECRET, eventually, warm_manifest, write_manifest

pytestmark = [pytest.mark.cli, pytest.mark.slow]

REPLY = "server reply ✓"


@pytest.fixture
async def stub(netns: Netns) -> AsyncIterator[StubServer]:
    """A stub on 127.0.0.1 inside the test's namespace."""
    async with StubServer(config=StubConfig(text=REPLY, chunk_size=4)) as server:
        yield server


async def test_codex_requests_share_the_warm_app_server(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> None:
    """Default requests are hits on one app-server (8 at once included), text streamed
    token by token; a request with max_tokens runs cold (codex exec); a server killed
    while idle is never used."""
    marker = uuid.uuid4().hex
    path = write_manifest(
        cli_home.parent / "p.yaml",
        warm_manifest(agent_clis, stub, cli_home, marker, warm={"spares": 1}, providers=("codex",)),
    )
    async with provcfg.load(path, environ={"STUB_SECRET": SECRET}) as rt:
        report = await rt.warmup(timeout=180)
        assert report["codex"] is None, report
        (server,) = marked_processes(marker)
        p = rt.provider("codex")
        result = await p.complete("Say hello.")
        assert result.text == REPLY and result.session_id
        assert result.usage.input_tokens > 0
        texts = await asyncio.gather(*(p.complete("Say hello.") for _ in range(8)))
        assert [r.text for r in texts] == [REPLY] * 8
        assert rt.metrics.counter("warm_hit", "codex") == 9
        assert marked_processes(marker) == [server]  # one server served them all
        cold = await p.complete("Say hello.", max_tokens=50)
        assert cold.text == REPLY
        assert rt.metrics.counter("warm_miss", "codex/not_kept") == 1
        os.kill(server, signal.SIGKILL)
        await eventually(lambda: server not in marked_processes(marker), 30, "server died")
        again = await p.complete("Say hello.")
        assert again.text == REPLY
        await eventually(
            lambda: rt.metrics.counter("warm_reaped", "codex/exited") == 1, 30, "reaped"
        )
    assert marked_processes(marker) == []


async def test_opencode_requests_share_the_warm_server(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> None:
    """Default requests are hits on one opencode serve (4 at once included); a request with
    an opencode session= option runs cold (opencode run); nothing outlives the runtime."""
    marker = uuid.uuid4().hex
    manifest = warm_manifest(
        agent_clis, stub, cli_home, marker, warm={"spares": 1}, providers=("opencode",)
    )
    path = write_manifest(cli_home.parent / "p.yaml", manifest)
    async with provcfg.load(path, environ={"STUB_SECRET": SECRET}) as rt:
        report = await rt.warmup(timeout=300)
        assert report["opencode"] is None, report
        (server,) = marked_processes(marker)
        p = rt.provider("opencode")
        first = await p.complete("Say hello.")
        assert first.text == REPLY and first.session_id
        assert first.usage.input_tokens > 0
        texts = await asyncio.gather(*(p.complete("Say hello.") for _ in range(4)))
        assert [r.text for r in texts] == [REPLY] * 4
        assert rt.metrics.counter("warm_hit", "opencode") == 5
        assert server in marked_processes(marker)
        cold = await p.complete("Say hello.", session=first.session_id)
        assert cold.text == REPLY
        assert rt.metrics.counter("warm_miss", "opencode/not_kept") == 1
    assert marked_processes(marker) == []


@pytest.mark.parametrize("provider", ["claude", "codex", "opencode"])
def test_sigterm_of_the_process_leaves_nothing_behind(
    agent_clis: AgentClis, cli_home: Path, netns: Netns, tmp_path: Path, provider: str
) -> None:
    """A program holding ready warm processes killed by SIGTERM (no aclose, no atexit)
    leaves none of them alive: Claude Code and codex see their stdin close, opencode's
    server dies with its parent (setpriv --pdeathsig)."""
    marker = uuid.uuid4().hex
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from pathlib import Path
        import provcfg
        from provcfg.stub import StubServer
        from tests.support_clis import AgentClis
        from tests.support_warm import SECRET, warm_manifest, write_manifest

        async def main():
            async with StubServer() as stub:
                clis = AgentClis(Path({str(agent_clis.claude)!r}),
                                 Path({str(agent_clis.opencode)!r}),
                                 Path({str(agent_clis.codex)!r}), {{}})
                home = Path({str(cli_home)!r})
                m = warm_manifest(clis, stub, home, {marker!r}, warm={{"spares": 1}},
                                  providers=({provider!r},))
                rt = provcfg.load(write_manifest(home.parent / "p.yaml", m),
                                  environ={{"STUB_SECRET": SECRET}})
                report = await rt.warmup(timeout=300)
                print("ready", rt.warm_pool.ready_count(), report, flush=True)
                await asyncio.sleep(600)

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready 1 "), line
        assert len(marked_processes(marker)) >= 1
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    end = time.monotonic() + 30
    while marked_processes(marker) and time.monotonic() < end:
        time.sleep(0.1)
    assert marked_processes(marker) == []
