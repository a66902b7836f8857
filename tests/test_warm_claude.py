"""Warm Claude Code spares with the real CLI against the stub (each test in its own netns).

A spare is ``claude -p --input-format stream-json ...`` started ahead and primed; these
tests prove it is handed out only when its launch matches, only while healthy, that the
answer through it is the cold answer, that reloads and binary replacements retire
exactly the right spares, and that nothing the runtime started outlives it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import provcfg
from provcfg._providers._claude_warm import control_line
from provcfg.plugin import Chunk
from provcfg.stub import StubConfig, StubServer
from tests.support_clis import (
    AgentClis,
    Netns,
    agent_clis_fixture,  # noqa: F401 (fixture)
    cli_home_fixture,  # noqa: F401 (fixture)
    marked_processes,
    netns_fixture,  # noqa: F401 (fixture)
)
from tests.support_warm import SECRET, WarmRig, eventually, warm_manifest, write_manifest

pytestmark = [pytest.mark.cli, pytest.mark.slow]

REPLY = "warm reply: ✓"
WARM = {"spares": 1, "max_age": "10m", "idle_timeout": "10m"}


@pytest.fixture
async def stub(netns: Netns) -> AsyncIterator[StubServer]:
    """A stub on 127.0.0.1 inside the test's namespace."""
    async with StubServer(config=StubConfig(text=REPLY, chunk_size=4)) as server:
        yield server


async def _rig(
    clis: AgentClis, stub: StubServer, home: Path, where: Netns, **kwargs: Any
) -> tuple[WarmRig, Any]:
    marker = uuid.uuid4().hex
    path = write_manifest(
        home.parent / "providers.yaml", warm_manifest(clis, stub, home, marker, **kwargs)
    )
    rt = provcfg.load(path, environ={"STUB_SECRET": SECRET})
    return WarmRig(rt, stub, marker, where, home.parent / "work", home, path), rt


@pytest.fixture
async def rig(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> AsyncIterator[WarmRig]:
    """One eager claude provider keeping one spare; everything checked gone at the end."""
    rig, rt = await _rig(agent_clis, stub, cli_home, netns, warm=WARM)
    async with rt:
        yield rig
    assert marked_processes(rig.marker) == [], "a process outlived aclose()"


def _main_body(requests: list[Any]) -> Any:
    """The body of the largest request (the agent's turn, not a side request)."""
    return max(requests, key=lambda r: r.body_size).body


def _readable(proc: Any) -> bool:
    import select

    return bool(select.select([proc.popen.stdout.fileno()], [], [], 0)[0])


def _counter(rig: WarmRig, name: str, label: str) -> int:
    return int(rig.rt.metrics.counter(name, label))


def _waitable(pid: int) -> bool:
    """The child has exited as far as its parent (this process) can tell, not reaped."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _text(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if c.type == "text")


async def _ready(rig: WarmRig, provider: str = "claude", count: int = 1) -> list[int]:
    report = await rig.rt.warmup(timeout=180)
    assert report.get(provider) is None, report
    pool = rig.rt.warm_pool
    await eventually(lambda: pool.ready_count() >= count, 180, "spares ready")
    return sorted(rig.alive())


async def test_a_warm_hit_answers_like_a_cold_request(rig: WarmRig) -> None:
    """A default request takes the ready spare (a hit) and gets the stub's reply, and the
    API request it sent carries the same system prompt and tools as a cold one's."""
    spare = await _ready(rig)
    assert len(spare) == 1
    chunks = [c async for c in rig.rt.provider("claude").stream("Say hello.")]
    assert _text(chunks) == REPLY
    assert chunks[-1].type == "result" and chunks[-1].data is not None
    assert _counter(rig, "warm_hit", "claude") == 1
    warm_body = _main_body(rig.stub.requests)
    seen = len(rig.stub.requests)
    # Another shape (a system prompt) runs cold: the miss is counted with its reason.
    cold = [c async for c in rig.rt.provider("claude").stream("Say hello.", max_tokens=99)]
    assert _text(cold) == REPLY
    assert _counter(rig, "warm_miss", "claude/not_kept") == 1
    cold_body = _main_body(rig.stub.requests[seen:])
    assert warm_body is not None and cold_body is not None
    assert sorted(t["name"] for t in warm_body["tools"]) == sorted(
        t["name"] for t in cold_body["tools"]
    )
    assert [b.get("text", "")[:40] for b in warm_body["system"]] == [
        b.get("text", "")[:40] for b in cold_body["system"]
    ]
    # The spare taken is gone; a replacement starts once the request has ended.
    await eventually(lambda: rig.rt.warm_pool.ready_count() == 1, 180, "replacement ready")
    assert set(spare).isdisjoint(rig.alive())


async def test_a_spare_killed_while_idle_is_never_handed_out(rig: WarmRig) -> None:
    """A spare SIGKILLed while idle is noticed at take time: the request runs cold and works."""
    (spare,) = await _ready(rig)
    os.kill(spare, signal.SIGKILL)
    # Waitable, not only gone from the marked list: a multi-threaded process loses its
    # environ (and shows Z for its main thread) while its other threads still exit, and
    # until the last one has, the kernel reports it running to its parent.
    await eventually(lambda: _waitable(spare), 30, "the spare died")
    before = len(rig.stub.requests)
    chunks = [c async for c in rig.rt.provider("claude").stream("Say hello.")]
    assert _text(chunks) == REPLY
    # Seen dead at take time, or already reaped by the pool's maintenance: never used.
    await eventually(lambda: _counter(rig, "warm_reaped", "claude/exited") == 1, 30, "reaped")
    assert _counter(rig, "warm_miss", "claude/died_at_take") == 0
    # The answer came from a fresh agent asking the stub (the replacement spare may ask
    # it too, e.g. count_tokens).
    assert "/v1/messages" in [r.path for r in rig.stub.requests[before:]]


async def test_a_spare_that_printed_something_is_never_handed_out(rig: WarmRig) -> None:
    """A spare with unexpected output on stdout is reaped, not used."""
    (stray,) = await _ready(rig)
    pool = rig.rt.warm_pool
    (proc,) = [p for spares in pool._ready.values() for p in spares]
    # A control request gets a reply: output nobody asked the idle spare for.
    proc.write(control_line("stray", "get_binary_version"))
    # The pool's maintenance may see it first and reap the spare (closing its pipes):
    # on a fast machine it did, before this poll, and reading a closed pipe raised.
    await eventually(lambda: proc.popen.stdout.closed or _readable(proc), 30, "the stray output")
    chunks = [c async for c in rig.rt.provider("claude").stream("Say hello.")]
    assert _text(chunks) == REPLY
    # Seen at take time or by the pool's maintenance: reaped either way, never used.
    assert _counter(rig, "warm_reaped", "claude/unexpected_output") == 1
    assert stray not in rig.alive()


async def test_twenty_concurrent_requests_against_two_spares_all_succeed(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> None:
    """20 requests at once with 2 spares: 2 hits, 18 cold, every answer complete."""
    rig, rt = await _rig(agent_clis, stub, cli_home, netns, warm={**WARM, "spares": 2})
    async with rt:
        await _ready(rig, count=2)

        async def one() -> str:
            return (await rt.provider("claude").complete("Say hello.")).text

        texts = await asyncio.gather(*(one() for _ in range(20)))
        assert texts == [REPLY] * 20
        assert _counter(rig, "warm_hit", "claude") == 2
        assert _counter(rig, "warm_miss", "claude/no_spare") == 18
    assert marked_processes(rig.marker) == []


async def test_a_reload_retires_exactly_the_changed_providers_spares(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> None:
    """Changing claude2's spec retires its spare; claude's spare (unchanged spec) lives on."""
    rig, rt = await _rig(
        agent_clis, stub, cli_home, netns, warm=WARM, providers=("claude", "claude2")
    )
    async with rt:
        await rt.warmup(timeout=180)
        pool = rt.warm_pool
        await eventually(lambda: pool.ready_count() == 2, 180, "two spares")
        by_provider = {p.owner_name: p.pid for s in pool._ready.values() for p in s}
        manifest = json.loads(rig.path.read_text())
        manifest["providers"]["claude2"]["model"] = "claude-opus-4-1"
        write_manifest(rig.path, manifest)
        from provcfg._loading import load_manifest

        new = provcfg.Runtime.build(
            load_manifest(rig.path, environ={"STUB_SECRET": SECRET}), rt, file=str(rig.path)
        )
        try:
            assert new.changes["claude"] == "unchanged" and new.changes["claude2"] == "rebuilt"
            await rt.aclose()
            await eventually(lambda: by_provider["claude2"] not in rig.alive(), 30, "retired")
            assert by_provider["claude"] in rig.alive()
            assert new.warm_pool is pool
            # The new claude2 keeps a spare of its new spec.
            await new.warmup(timeout=180)
            await eventually(lambda: pool.ready_count() == 2, 180, "claude2's new spare")
            assert new.metrics.counter("warm_reaped", "claude2/retired") >= 1
        finally:
            await new.aclose()
    assert marked_processes(rig.marker) == []


async def test_a_replaced_binary_retires_the_spares_of_the_old_one(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> None:
    """Replacing the CLI file on disk (a new inode, as npm does) retires the old spare and a
    spare of the new file takes its place; requests keep working."""
    bin_dir = cli_home.parent / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "claude"
    script = f"#!/bin/sh\nexec '{agent_clis.claude}' \"$@\"\n"
    wrapper.write_text(script)
    wrapper.chmod(0o755)
    rig, rt = await _rig(agent_clis, stub, cli_home, netns, warm=WARM)
    manifest = json.loads(rig.path.read_text())
    manifest["providers"]["claude"]["path"] = str(wrapper)
    write_manifest(rig.path, manifest)
    await rt.aclose()
    rt = provcfg.load(rig.path, environ={"STUB_SECRET": SECRET})
    rig.rt = rt
    async with rt:
        (old,) = await _ready(rig)
        replacement = bin_dir / "claude.new"
        replacement.write_text(script + "# v2\n")
        replacement.chmod(0o755)
        os.replace(replacement, wrapper)
        await eventually(lambda: old not in rig.alive(), 60, "old spare retired")
        await eventually(lambda: rt.warm_pool.ready_count() == 1, 180, "new spare")
        assert rt.metrics.counter("warm_reaped", "claude/binary_changed") >= 1
        chunks = [c async for c in rt.provider("claude").stream("Say hello.")]
        assert _text(chunks) == REPLY
        assert rt.metrics.counter("warm_hit", "claude") == 1
    assert marked_processes(rig.marker) == []
