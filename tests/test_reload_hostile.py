"""Hostile saves under ``watch``: special files, huge files and failures of any type.

Whatever is saved over providers.yaml (a FIFO, a socket, a symlink to /dev/zero, a
folder, a 300 MB file) and whatever the build step raises (MemoryError, RecursionError,
even SystemExit from a plugin), the outcome is a rejected reload: the last good runtime
stays live, ``last_error`` is set, an event is published, ``reload()`` returns instead
of raising, later good saves go live, and ``aclose()`` finishes. ``provcfg watch`` as a
real subprocess reports such saves and still stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from provcfg._errors import ManifestError, ManifestReadError, ProvcfgError
from provcfg._manifest import AnthropicApiSpec
from provcfg._providers.base import BaseProvider, KindRegistry, ProviderKind
from provcfg._reload import LiveRuntime, watch
from tests.support_reload import api_manifest, os_replace, settled, until_event, write_in_place
from tests.support_special import EXPECTED_WORDS, SPECIAL_KINDS, replace_with_special


def _restore(path: Path, text: str) -> None:
    """Save a regular manifest where a special file (maybe a folder) was put."""
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    os_replace(path, text)


async def _closes(live: LiveRuntime) -> None:
    async with asyncio.timeout(30):  # a hang guard: aclose() must finish
        await live.aclose()


@pytest.mark.parametrize("kind", SPECIAL_KINDS)
async def test_special_file_saved_over_the_manifest_is_rejected(tmp_path: Path, kind: str) -> None:
    """A FIFO/socket/device/folder saved over the file: a rejected reload; recovery works."""
    path = tmp_path / "providers.yaml"
    write_in_place(path, api_manifest({"api": 1}))
    live = watch(path, environ={})
    await live.__aenter__()
    release = lambda: None  # noqa: E731
    try:
        await settled(live)
        first = live.runtime
        release = replace_with_special(kind, path)
        event = await until_event(live, lambda e: not e.ok)
        assert EXPECTED_WORDS[kind] in event.error
        assert isinstance(live.last_error, ManifestReadError)
        assert live.runtime is first and live.generation == 1
        # An explicit re-check returns its outcome; it never raises.
        again = await asyncio.wait_for(live.reload(), 30)
        assert again is None or not again.ok
        _restore(path, api_manifest({"api": 2}))
        good = await until_event(live, lambda e: e.ok)
        assert good.generation == 2 and live.last_error is None
    finally:
        await _closes(live)
        release()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-symlink", "socket"])
async def test_watch_refuses_a_special_file_at_start(tmp_path: Path, kind: str) -> None:
    """Entering watch() on a special file raises ManifestReadError instead of blocking."""
    path = tmp_path / "providers.yaml"
    path.write_text("x")
    release = replace_with_special(kind, path)
    try:
        async with asyncio.timeout(30):
            with pytest.raises(ManifestReadError, match="not a regular file"):
                async with watch(path, environ={}):
                    pass
    finally:
        release()


async def test_a_300_mb_save_is_rejected_without_reading_it(tmp_path: Path) -> None:
    """A 300 MB save is a rejected reload, and the process's peak memory stays flat."""
    path = tmp_path / "providers.yaml"
    write_in_place(path, api_manifest({"api": 1}))
    big = tmp_path / ".big"
    async with watch(path, environ={}) as live:
        await settled(live)
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open(big, "wb") as stream:
            stream.truncate(300 * 1024 * 1024)
        os.replace(big, path)
        event = await until_event(live, lambda e: not e.ok)
        assert "larger than the 1048576-byte limit" in event.error
        assert isinstance(live.last_error, ManifestError)
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
        assert grown_kib < 50 * 1024  # KiB; reading the file whole would add 300 MB
        os_replace(path, api_manifest({"api": 2}))
        assert (await until_event(live, lambda e: e.ok)).generation == 2


class _FailingSpec(AnthropicApiSpec):
    kind: Literal["failing"]  # type: ignore[assignment]


class _Failing(BaseProvider):
    """An eager provider whose preparation raises whatever the test sets (a build failure)."""

    error: ClassVar[BaseException | None] = None

    def prepare(self) -> None:
        if type(self).error is not None and int(self.spec.max_tokens) > 1:
            raise type(self).error


def _registry() -> KindRegistry:
    kinds = {kind.name: kind for kind in KindRegistry.discover().kinds()}
    kinds["failing"] = ProviderKind("failing", _FailingSpec, _Failing)
    return KindRegistry(kinds)


def _failing_manifest(max_tokens: int) -> str:
    return api_manifest({"api": 1}) + (
        f"  boom: {{kind: failing, init: eager, max_tokens: {max_tokens}}}\n"
    )


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RecursionError("maximum recursion depth exceeded"),
        ValueError("a bug in a plugin"),
        SystemExit(3),
        KeyboardInterrupt(),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_any_exception_from_the_build_is_a_rejected_reload(
    tmp_path: Path, error: BaseException
) -> None:
    """An exception of any type from the build step: last_error set, event, nothing raised."""
    _Failing.error = error
    path = tmp_path / "providers.yaml"
    write_in_place(path, _failing_manifest(1))
    live = watch(path, environ={}, registry=_registry())
    await live.__aenter__()
    try:
        await settled(live)
        first = live.runtime
        os_replace(path, _failing_manifest(2))
        event = await until_event(live, lambda e: not e.ok)
        assert type(error).__name__ in event.error
        assert isinstance(live.last_error, ProvcfgError)
        assert type(error).__name__ in str(live.last_error)
        assert live.runtime is first
        os_replace(path, _failing_manifest(3))  # new content: tried again, fails again
        again = await until_event(live, lambda e: not e.ok)
        assert again.generation == 1
        # An explicit re-check of content that fails to build returns; it never raises.
        os_replace(path, _failing_manifest(4))
        outcome = await asyncio.wait_for(live.reload(), 30)
        assert outcome is None or not outcome.ok
        _Failing.error = None
        os_replace(path, _failing_manifest(5))
        good = await until_event(live, lambda e: e.ok)
        assert good.generation == 2
    finally:
        _Failing.error = None
        await _closes(live)


# --------------------------------------------------------------------------- provcfg watch


class _Child:
    """A real ``provcfg watch`` process whose stdout is read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[str] = []

    async def line_with(self, needle: str, timeout: float = 30.0) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    raise AssertionError(f"stdout ended before {needle!r}; saw {self.seen!r}")
                line = raw.decode().rstrip("\n")
                self.seen.append(line)
                if needle in line:
                    return line

    async def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):  # a hang guard: SIGTERM must stop it
            return await self.process.wait()

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def _provcfg_watch(path: Path) -> _Child:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "provcfg"),
        "watch",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return _Child(process)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-symlink"])
async def test_provcfg_watch_started_on_a_special_file_stops_on_sigterm(
    tmp_path: Path, kind: str
) -> None:
    """`provcfg watch FIFO` reports the file, waits for a valid save, and exits 0 on SIGTERM."""
    path = tmp_path / "providers.yaml"
    path.write_text("x")
    release = replace_with_special(kind, path)
    child = await _provcfg_watch(path)
    try:
        await child.line_with(EXPECTED_WORDS[kind])
        await child.line_with("waiting for a valid save")
        assert await child.terminate() == 0
    finally:
        await child.kill()
        release()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-symlink"])
async def test_provcfg_watch_survives_a_special_file_saved_over_the_manifest(
    tmp_path: Path, kind: str
) -> None:
    """A FIFO or /dev/zero symlink saved under `provcfg watch`: reported, a good save goes
    live afterwards, and SIGTERM still stops it."""
    path = tmp_path / "providers.yaml"
    write_in_place(path, api_manifest({"api": 1}))
    child = await _provcfg_watch(path)
    release = lambda: None  # noqa: E731
    try:
        await child.line_with("generation 1 live")
        release = replace_with_special(kind, path)
        await child.line_with(EXPECTED_WORDS[kind])
        await child.line_with("generation 1 stays live")
        _restore(path, api_manifest({"api": 2}))
        await child.line_with("generation 2 live")
        assert await child.terminate() == 0
        assert child.process.stderr is not None
        assert b"Traceback" not in await child.process.stderr.read()
    finally:
        await child.kill()
        release()
