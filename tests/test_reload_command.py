"""``provcfg watch`` as a real subprocess: one line per reload, exit 0 on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.support_reload import api_manifest, os_replace, write_in_place

_RUN = "import sys; from provcfg._watchcmd import run; sys.exit(run(sys.argv[1]))"


class _Watcher:
    """A ``watch_command`` child whose stdout we read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[str] = []

    async def line_with(self, needle: str, timeout: float = 15.0) -> str:
        """The next stdout line containing ``needle`` (log lines in between are skipped)."""
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


async def _start(path: Path) -> _Watcher:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RUN,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return _Watcher(process)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_watch_command_prints_a_line_per_reload_and_exits_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Good saves print generation, per-provider fate and latency; bad ones their problems."""
    path = tmp_path / "providers.yaml"
    write_in_place(path, api_manifest({"api": 100, "local": 100}))
    child = await _start(path)
    try:
        await child.line_with("generation 1 live")
        os_replace(path, api_manifest({"api": 200, "local": 100, "new": 1}))
        line = await child.line_with("generation 2 live")
        assert "api rebuilt" in line and "local unchanged" in line and "new added" in line
        assert " ms:" in line
        os_replace(path, "version: 1\nproviders:\n  api: {kind: anthropic-api, bogus: 1}\n")
        problem = await child.line_with(f"{path}:3:")
        assert "bogus" in problem
        await child.line_with("generation 2 stays live")
        os_replace(path, api_manifest({"api": 200}))
        line = await child.line_with("generation 3 live")
        assert "local removed" in line and "new removed" in line
        child.process.send_signal(signum)
        async with asyncio.timeout(15):
            code = await child.process.wait()
        assert code == 0
        assert child.process.stderr is not None
        assert b"Traceback" not in await child.process.stderr.read()
    finally:
        if child.process.returncode is None:
            child.process.kill()
            await child.process.wait()


async def test_watch_command_waits_for_a_valid_file_at_start(tmp_path: Path) -> None:
    """Started on an invalid file, the command reports it and goes live on the next good save."""
    path = tmp_path / "providers.yaml"
    write_in_place(path, "version: 1\nproviders: {}\n")
    child = await _start(path)
    try:
        await child.line_with(":2:12: providers: declare at least one provider")
        await child.line_with("waiting for a valid save")
        os_replace(path, api_manifest({"api": 1}))
        await child.line_with("generation 1 live")
        child.process.send_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            assert await child.process.wait() == 0
    finally:
        if child.process.returncode is None:
            child.process.kill()
            await child.process.wait()


async def test_watch_command_missing_folder_exits_2(tmp_path: Path) -> None:
    """A FILE whose folder does not exist is a usage error (exit 2) with a message."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RUN,
        str(tmp_path / "nope" / "providers.yaml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await process.communicate()
    assert process.returncode == 2
    assert b"does not exist" in err


_REPORT_LINES = (
    r"generation \d+ live( in \d+ ms)?: \S+ (unchanged|rebuilt|added|removed)"
    r"(, \S+ (unchanged|rebuilt|added|removed))*",
    r"reload failed \(\d+ problems?\); generation \d+ stays live",
)


async def test_provcfg_watch_stdout_holds_only_report_lines(tmp_path: Path) -> None:
    """The installed `provcfg watch`, with info logs on: stdout holds only the report (one
    line per good reload, FILE:LINE:COL problems), log events go to stderr, and a rejected
    save is reported once (on stdout, not again as a log event)."""
    path = tmp_path / "providers.yaml"
    write_in_place(path, api_manifest({"api": 100, "local": 100}))
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "provcfg"),
        "watch",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PROVCFG_LOG_LEVEL": "info", "PROVCFG_LOG_FORMAT": "json"},
    )
    child = _Watcher(process)
    try:
        await child.line_with("generation 1 live")
        os_replace(path, api_manifest({"api": 200, "local": 100, "new": 1}))
        await child.line_with("generation 2 live")
        os_replace(path, "version: 1\nproviders:\n  api: {kind: anthropic-api, bogus: 1}\n")
        await child.line_with("stays live")
        os_replace(path, api_manifest({"api": 200}))
        await child.line_with("generation 3 live")
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(15):
            rest, err = await process.communicate()
        assert process.returncode == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    lines = child.seen + rest.decode().splitlines()
    start = re.escape(f"{path}: generation 1 live (api, local); watching for changes")
    problem = re.escape(f"{path}:") + r"\d+:\d+: \S+: .+"
    for line in lines:
        assert any(re.fullmatch(p, line) for p in (start + ".*", problem, *_REPORT_LINES)), line
    assert sum("live in" in line for line in lines) == 2  # one line per good reload
    events = [json.loads(line)["event"] for line in err.decode().splitlines()]
    assert "config_reloaded" in events and "config_reload_failed" not in events
    assert sum("bogus" in line for line in lines) == 1


async def test_provcfg_watch_format_json_writes_one_object_per_report(tmp_path: Path) -> None:
    """`provcfg watch --format json`: a start object, then one object per reload outcome with
    generation, changes, latency and problems (a bad save once, with its FILE:LINE:COL)."""
    path = tmp_path / "providers.yaml"
    write_in_place(path, "version: 1\nproviders: {}\n")
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "provcfg"),
        "watch",
        "--format",
        "json",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    child = _Watcher(process)
    try:
        await child.line_with('"waiting"')
        os_replace(path, api_manifest({"api": 100, "local": 100}))
        await child.line_with('"live"')
        os_replace(path, api_manifest({"api": 200, "local": 100}))
        await child.line_with('"rebuilt"')
        os_replace(path, "version: 1\nproviders:\n  api: {kind: anthropic-api, bogus: 1}\n")
        await child.line_with('"ok": false')
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            rest, err = await process.communicate()
        assert process.returncode == 0, err
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    objects = [json.loads(line) for line in child.seen + rest.decode().splitlines()]
    assert [o["type"] for o in objects] == ["waiting", "live", "reload", "reload"]
    assert all(o["file"] == str(path) for o in objects)
    waiting, live, good, bad = objects
    assert waiting["problems"][0].startswith(f"{path}:2:12: providers:")
    assert live == {
        "file": str(path),
        "type": "live",
        "generation": 1,
        "providers": ["api", "local"],
    }
    assert good["ok"] is True and good["generation"] == 2
    assert good["changes"] == {"api": "rebuilt", "local": "unchanged"}
    assert good["latency_ms"] >= 0 and good["problems"] == [] and good["error"] == ""
    assert 0 <= good["build_ms"] <= good["latency_ms"]
    assert bad["ok"] is False and bad["generation"] == 2 and bad["changes"] == {}
    assert bad["latency_ms"] is None and bad["build_ms"] is None
    assert len(bad["problems"]) == 1 and bad["problems"][0].startswith(f"{path}:3:")
    assert "bogus" in bad["error"]
    assert err == b""
