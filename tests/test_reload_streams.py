"""Hot reload with work in flight: streams from the stub, removed providers, fds, CLIs."""

from __future__ import annotations

import gc
import os
import stat
from pathlib import Path

import pytest

from provcfg._errors import UnknownProviderError
from provcfg._reload import watch
from provcfg.plugin import Chunk
from provcfg.stub import StubServer
from tests.support_reload import api_manifest, os_replace, until, until_event, write_in_place
from tests.support_stub import stub  # noqa: F401

# 20 deltas of 8 characters with 10 ms between events: the stream is still running
# while the reload happens (and the test only reads on after the swap anyway).
SLOW_MODEL = "stub-delay-0.01-deltas-20"


def _text(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if c.type == "text")


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_stream_running_during_reload_completes_on_its_snapshot(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """A stream started before a reload that rebuilds its provider runs to its result."""
    path = tmp_path / "providers.yaml"
    providers = {"api": 100, "other": 100}
    write_in_place(path, api_manifest(providers, base_url=stub.base_url, model=SLOW_MODEL))
    async with watch(path, environ={}) as live:
        old = live.runtime.provider("api")
        expected = (await old.complete("warm up")).text
        stream = old.stream("hello")
        chunks = [await anext(stream)]
        os_replace(
            path, api_manifest({**providers, "api": 200}, base_url=stub.base_url, model=SLOW_MODEL)
        )
        runtime = await live.wait_for_generation(2)
        assert runtime.changes["api"] == "rebuilt"
        new = runtime.provider("api")
        assert new is not old
        assert not old._closed  # the old runtime waits for this stream
        chunks += [chunk async for chunk in stream]
        assert chunks[-1].type == "result"
        assert _text(chunks) == expected
        await live.drain()
        assert old._closed
        assert (await new.complete("again")).text == expected


async def test_removed_provider_stream_completes_and_new_calls_fail_clearly(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """A removed provider's running stream finishes; the new runtime says it is unknown."""
    path = tmp_path / "providers.yaml"
    write_in_place(
        path, api_manifest({"api": 100, "gone": 100}, base_url=stub.base_url, model=SLOW_MODEL)
    )
    async with watch(path, environ={}) as live:
        doomed = live.runtime.provider("gone")
        stream = doomed.stream("hello")
        chunks = [await anext(stream)]
        os_replace(path, api_manifest({"api": 100}, base_url=stub.base_url, model=SLOW_MODEL))
        runtime = await live.wait_for_generation(2)
        assert runtime.changes["gone"] == "removed"
        with pytest.raises(UnknownProviderError, match="gone"):
            runtime.provider("gone")
        chunks += [chunk async for chunk in stream]
        assert chunks[-1].type == "result"
        assert len(_text(chunks)) == 20 * 8
        await live.drain()
        assert doomed._closed


@pytest.mark.slow
async def test_file_descriptors_stay_flat_across_200_reloads(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """Two hundred reloads, each rebuilding a pool and a provider that served, leak no fd."""
    path = tmp_path / "providers.yaml"

    def manifest(n: int) -> str:
        # `api` sits on its own pool, rebuilt with it on every reload (a new client and
        # connection each time); `keep` stays on the unchanged default pool.
        text = api_manifest({"api": n, "keep": 1}, base_url=stub.base_url)
        text = text.replace("max_tokens: " + str(n) + ",", f"max_tokens: {n}, pool: own,", 1)
        return text + f"pools: {{own: {{max_connections: {n}}}}}\n"

    write_in_place(path, manifest(1))
    async with watch(path, environ={}, step=0.01, debounce=0.05) as live:

        async def one_reload(n: int) -> None:
            os_replace(path, manifest(n))
            runtime = await live.wait_for_generation(n)
            await runtime.provider("api").complete("hi", model="stub-deltas-2")
            await runtime.provider("keep").complete("hi", model="stub-deltas-2")

        for n in range(2, 5):  # warm up: pool connections, lazy imports, thread pools
            await one_reload(n)
        await live.drain()
        gc.collect()
        before = _fd_count()
        for n in range(5, 205):
            await one_reload(n)
        await live.drain()
        gc.collect()
        after = _fd_count()
        assert live.generation == 204
        assert after <= before + 3, f"fds grew from {before} to {after} over 200 reloads"


def _fake_cli(folder: Path, name: str) -> Path:
    folder.mkdir(exist_ok=True)
    binary = folder / name
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary


def _cli_manifest(command: str, search: Path | None, *, api_tokens: int = 100) -> str:
    where = f", search_paths: ['{search}']" if search is not None else ""
    cli = f"  cli: {{kind: claude-code, command: {command}, init: eager{where}}}\n"
    return api_manifest({"api": api_tokens}) + cli


async def test_eager_provider_with_missing_cli_keeps_the_old_runtime(tmp_path: Path) -> None:
    """A save adding an eager provider whose CLI is missing fails; installing it recovers."""
    path = tmp_path / "providers.yaml"
    write_in_place(path, api_manifest({"api": 100}))
    bin_dir = tmp_path / "bin"
    command = "provcfg-test-no-such-cli"
    async with watch(path, environ={}) as live:
        first = live.runtime
        os_replace(path, _cli_manifest(command, bin_dir))
        event = await until_event(live, lambda e: not e.ok)
        assert command in event.error and "not found" in event.error
        assert live.runtime is first and not first.closed
        assert live.last_error is not None
        _fake_cli(bin_dir, command)
        # The same text again: a build failure depends on the world, so it is retried.
        os_replace(path, _cli_manifest(command, bin_dir))
        runtime = await live.wait_for_generation(2)
        assert runtime.cli_path("cli") == bin_dir / command
        assert live.last_error is None


async def test_replaced_or_removed_cli_binary_is_invalidated(tmp_path: Path) -> None:
    """The folder of a resolved CLI is watched; replacing or removing the binary forgets it."""
    path = tmp_path / "conf" / "providers.yaml"
    path.parent.mkdir()
    bin_dir = tmp_path / "bin"
    command = "provcfg-test-fake-cli"
    binary = _fake_cli(bin_dir, command)
    write_in_place(path, _cli_manifest(command, bin_dir))
    async with watch(path, environ={}) as live:
        resolver = live.runtime.cli_resolver
        assert resolver is not None
        assert bin_dir in resolver.watched_dirs()
        assert str(bin_dir) in live.watched_folders

        replacement = _fake_cli(tmp_path / "staging", command)
        os.replace(replacement, binary)
        await until(lambda: bin_dir not in resolver.watched_dirs())

        assert live.runtime.cli_path("cli") == binary  # detected again, watched again
        await until(lambda: str(bin_dir) in live.watched_folders)
        os.unlink(binary)
        await until(lambda: bin_dir not in resolver.watched_dirs())
        await until(lambda: str(bin_dir) not in live.watched_folders)
