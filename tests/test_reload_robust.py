"""Hot reload under pressure: slow builds during bursts, cancellation mid-build, streams
that never end, and 1,000 reload cycles without a leaked descriptor, process or memory."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from pathlib import Path
from typing import ClassVar, Literal

import pytest
import structlog

from provcfg._manifest import AnthropicApiSpec
from provcfg._reload import watch
from provcfg.plugin import BaseProvider, Chunk, KindRegistry, ProviderKind
from provcfg.stub import StubServer
from tests.support_reload import api_manifest, os_replace, settled, until, write_in_place
from tests.support_stub import stub  # noqa: F401


class _GatedSpec(AnthropicApiSpec):
    kind: Literal["gated"]  # type: ignore[assignment]


class _Gated(BaseProvider):
    """An eager provider whose prepare() is slow or blocked: a build that takes a while.

    It counts preparations running at once, so a test can prove builds never overlap.
    """

    delay: ClassVar[float] = 0.0
    gate: ClassVar[threading.Event | None] = None
    entered: ClassVar[threading.Event] = threading.Event()
    built: ClassVar[list[_Gated]] = []
    running: ClassVar[int] = 0
    most_at_once: ClassVar[int] = 0
    lock: ClassVar[threading.Lock] = threading.Lock()

    def prepare(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.built.append(self)
            cls.running += 1
            cls.most_at_once = max(cls.most_at_once, cls.running)
        # Generation 1 (max_tokens 1) builds freely; the builds of later saves wait.
        gated = cls.gate is not None and int(self.spec.max_tokens) > 1
        if gated:
            cls.entered.set()
        try:
            if gated:
                assert cls.gate is not None
                cls.gate.wait(10)
            threading.Event().wait(cls.delay)
        finally:
            with cls.lock:
                cls.running -= 1

    @classmethod
    def reset(cls, *, delay: float = 0.0, gate: threading.Event | None = None) -> None:
        cls.delay, cls.gate = delay, gate
        cls.entered = threading.Event()
        cls.built, cls.running, cls.most_at_once = [], 0, 0


def _registry() -> KindRegistry:
    kinds = {kind.name: kind for kind in KindRegistry.discover().kinds()}
    kinds["gated"] = ProviderKind("gated", _GatedSpec, _Gated)
    return KindRegistry(kinds)


def _gated_manifest(n: int) -> str:
    # `slow` changes with every n, so each build prepares a new instance of it.
    return api_manifest({"api": 100}) + f"  slow: {{kind: gated, init: eager, max_tokens: {n}}}\n"


def _slow_tokens(runtime_manifest: object) -> int:
    return int(runtime_manifest.providers["slow"].max_tokens)  # type: ignore[attr-defined]


async def test_burst_during_slow_builds_ends_with_the_last_content_one_build_at_a_time(
    tmp_path: Path,
) -> None:
    """Saves and reload() calls racing slow builds: never two builds at once, last content wins."""
    _Gated.reset(delay=0.15)
    path = tmp_path / "providers.yaml"
    write_in_place(path, _gated_manifest(1))
    async with watch(path, environ={}, registry=_registry()) as live:
        await settled(live)
        extra: list[asyncio.Task[object]] = []
        for n in range(2, 22):
            os_replace(path, _gated_manifest(n))
            if n % 5 == 0:  # explicit re-checks compete with the watcher's reloader
                extra.append(asyncio.create_task(live.reload()))
            await asyncio.sleep(0.02)
        await asyncio.gather(*extra)
        await until(lambda: _slow_tokens(live.runtime.manifest) == 21)
        assert live.last_error is None
        assert _Gated.most_at_once == 1
        # Coalesced: far fewer builds than the 20 saves, and every generation was one build.
        assert len(_Gated.built) - 1 == live.generation - 1 < 20


async def test_aclose_cancelled_mid_build_closes_everything(tmp_path: Path) -> None:
    """A timeout cancelling aclose() while a build runs in a thread leaks nothing: the
    half-built runtime is closed (never swapped in) and a second aclose() finishes the job."""
    gate = threading.Event()
    _Gated.reset(gate=gate)
    path = tmp_path / "providers.yaml"
    write_in_place(path, _gated_manifest(1))
    live = watch(path, environ={}, registry=_registry())
    await live.__aenter__()
    try:
        first = live.runtime
        os_replace(path, _gated_manifest(2))
        await asyncio.to_thread(_Gated.entered.wait, 10)
        closer = asyncio.create_task(live.aclose())
        await asyncio.sleep(0.05)
        closer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closer
    finally:
        gate.set()
    async with asyncio.timeout(10):
        await live.aclose()
    half_built = _Gated.built[-1]
    assert int(half_built.spec.max_tokens) == 2
    await until(lambda: half_built._closed)
    assert live.generation == 1 and live.runtime is first
    assert first.closed


def _run_and_forget(path: Path, gate: threading.Event) -> None:
    """An application that starts a watch and returns without closing it, mid-build."""

    async def main() -> None:
        live = watch(path, environ={}, registry=_registry())
        await live.__aenter__()
        os_replace(path, _gated_manifest(2))
        await asyncio.to_thread(_Gated.entered.wait, 10)
        # Let the build finish only while asyncio.run is cancelling the tasks left over.
        threading.Timer(0.2, gate.set).start()

    asyncio.run(main())


async def test_loop_shutdown_mid_build_closes_the_built_runtime(tmp_path: Path) -> None:
    """When asyncio.run cancels the reloader while its thread builds, that build is closed."""
    gate = threading.Event()
    path = tmp_path / "providers.yaml"
    write_in_place(path, _gated_manifest(1))
    _Gated.reset(gate=gate)
    await asyncio.to_thread(_run_and_forget, path, gate)
    built_in_reload = [p for p in _Gated.built if int(p.spec.max_tokens) == 2]
    assert len(built_in_reload) == 1
    await until(lambda: built_in_reload[0]._closed)


SLOW_MODEL = "stub-delay-0.01-deltas-20"


async def test_a_stream_that_never_ends_blocks_neither_reloads_nor_aclose(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """A held stream delays only its own generation's closing: later generations retire,
    aclose() returns after drain_timeout with a warning, and the stream's end closes it."""
    path = tmp_path / "providers.yaml"

    def manifest(n: int) -> str:
        return api_manifest({"api": n, "keep": 1}, base_url=stub.base_url, model=SLOW_MODEL)

    write_in_place(path, manifest(1))
    live = watch(path, environ={}, drain_timeout=0.3)
    await live.__aenter__()
    held = live.runtime.provider("api")
    stream = held.stream("hello")
    chunks: list[Chunk] = [await anext(stream)]  # then nobody reads on for a while
    os_replace(path, manifest(2))
    second = (await live.wait_for_generation(2)).provider("api")
    os_replace(path, manifest(3))
    await live.wait_for_generation(3)
    await until(lambda: second._closed)  # generation 2 retired while generation 1 waits
    assert not held._closed
    with structlog.testing.capture_logs() as logs:
        async with asyncio.timeout(10):
            await live.aclose()
    abandoned = [e for e in logs if e["event"] == "runtime_drain_abandoned"]
    assert len(abandoned) == 1 and abandoned[0]["generations"] == [1]
    assert not held._closed
    chunks += [chunk async for chunk in stream]
    assert chunks[-1].type == "result"
    await until(lambda: held._closed)  # its runtime finished closing once the stream ended


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _child_count() -> int:
    me = str(os.getpid())
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            count += fields[1] == me  # the field after the state: the parent pid
    return count


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


CYCLES = 1000


@pytest.mark.slow
async def test_1000_reload_cycles_leak_no_fd_process_or_memory(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """1,000 reloads through the watcher's own step (read, hash, validate, build reusing the
    previous runtime, swap, drain the old one), rebuilding a pool, an HTTP provider and an
    eager CLI provider each time, leave descriptors, child processes and RSS flat."""
    cli = tmp_path / "bin" / "fake-claude"
    cli.parent.mkdir()
    cli.write_text("#!/bin/sh\nexit 0\n")
    cli.chmod(0o755)
    path = tmp_path / "providers.yaml"

    def manifest(n: int) -> str:
        text = api_manifest({"api": n, "keep": 1}, base_url=stub.base_url)
        text = text.replace(f"max_tokens: {n},", f"max_tokens: {n}, pool: own,", 1)
        text += (
            f"  cli: {{kind: claude-code, command: {cli.name}, search_paths: ['{cli.parent}'],"
            f" init: eager, timeout: {n}s}}\n"
        )
        return text + f"pools: {{own: {{max_connections: {n}}}}}\n"

    async def cycle(n: int) -> None:
        write_in_place(path, manifest(n))
        await live.reload()  # the watcher's reloader may have taken this content first
        assert live.generation == n, (live.generation, live.last_error)
        runtime = live.runtime
        assert runtime.changes["api"] == "rebuilt" and runtime.changes["keep"] == "unchanged"
        if n % 10 == 0:
            await runtime.provider("api").complete("hi", model="stub-deltas-2")
            await runtime.provider("keep").complete("hi", model="stub-deltas-2")

    write_in_place(path, manifest(1))
    async with watch(path, environ={}) as live:
        for n in range(2, 102):  # warm up: connections, lazy imports, thread pools, allocator
            await cycle(n)
        await live.drain()
        gc.collect()
        fds, children, rss = _fd_count(), _child_count(), _rss_kib()
        for n in range(102, 102 + CYCLES):
            await cycle(n)
        await live.drain()
        gc.collect()
        assert live.generation == 101 + CYCLES
        assert _fd_count() <= fds + 2, f"fds grew from {fds} to {_fd_count()}"
        assert _child_count() <= children, f"child processes grew from {children}"
        # A leaked client, pool or runtime per cycle would add tens of MiB over 1,000.
        assert _rss_kib() - rss < 12 * 1024, (rss, _rss_kib())


async def test_runtime_aclose_cancelled_while_draining_can_be_finished(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """A Runtime.aclose() cancelled while a stream runs can be completed by calling it again
    (what a drain task cancelled at loop shutdown relies on)."""
    import provcfg

    path = tmp_path / "providers.yaml"
    write_in_place(path, api_manifest({"api": 1}, base_url=stub.base_url, model=SLOW_MODEL))
    runtime = provcfg.load(path, environ={})
    provider = runtime.provider("api")
    stream = provider.stream("hello")
    await anext(stream)
    closing = asyncio.create_task(runtime.aclose())
    await asyncio.sleep(0.05)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    async for _chunk in stream:
        pass
    async with asyncio.timeout(5):
        await runtime.aclose()
    assert provider._closed
