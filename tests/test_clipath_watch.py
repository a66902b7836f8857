"""The CLI resolver with its watcher: a hit makes no system call; a change is still seen.

The system calls are counted by strace on a real process (the watcher thread's own
calls are told apart by thread id), not by replacing anything in the resolver.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from provcfg._clipath import CLIResolver
from provcfg._metrics import Metrics

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from provcfg._clipath import CLIResolver
    from provcfg._metrics import Metrics
    folder = sys.argv[1]
    watch = sys.argv[2] == "watch"
    resolver = CLIResolver(Metrics(), watch=watch)
    kw = dict(path=None, search_paths=(folder,), install_hint="")
    resolver.resolve("fake-agent", **kw)
    deadline = time.monotonic() + 30
    while watch and not resolver.watching and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(100):  # warm every code path first
        resolver.resolve("fake-agent", **kw)
    os.write(1, b"BEGIN\\n")
    for _ in range(1000):
        resolver.resolve("fake-agent", **kw)
    os.write(1, b"END\\n")
    print(resolver.watching, flush=True)
    resolver.close()
    resolver.join_watcher()
    """
)


def _fake_cli(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / "fake-agent"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    return tool


def _calls_between_markers(tmp_path: Path, mode: str) -> list[str]:
    """The system calls the main thread made between BEGIN and END (strace -f)."""
    folder = tmp_path / "bin"
    _fake_cli(folder)
    trace = tmp_path / f"trace-{mode}.txt"
    done = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace), sys.executable, "-c", SCRIPT, str(folder), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["BEGIN", "END", str(mode == "watch")]
    lines = trace.read_text().splitlines()
    begin = next(i for i, ln in enumerate(lines) if 'write(1, "BEGIN' in ln)
    main = lines[begin].split()[0]
    end = next(i for i, ln in enumerate(lines) if 'write(1, "END' in ln and ln.startswith(main))
    calls = []
    for line in lines[begin + 1 : end]:
        pid, _, rest = line.partition(" ")
        if pid == main:
            match = re.match(r"\s*(\w+)\(", rest)
            if match:
                calls.append(match.group(1))
    return calls


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_a_watched_hit_makes_no_system_call(tmp_path: Path) -> None:
    """1000 cached lookups with the watcher listening make no system call at all; without a
    watcher each one checks the file with fstat (so the count can tell them apart)."""
    assert _calls_between_markers(tmp_path, "watch") == []
    unwatched = _calls_between_markers(tmp_path, "plain")
    assert unwatched.count("fstat") + unwatched.count("newfstatat") >= 1000


def _wait(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_watcher_sees_a_replaced_binary_and_tells_listeners(tmp_path: Path) -> None:
    """Replacing the watched file (a new inode) drops its entry, calls the listeners with
    it, and the next lookup detects the file again."""
    tool = _fake_cli(tmp_path / "bin")
    metrics = Metrics()
    resolver = CLIResolver(metrics, watch=True)
    heard: list[str] = []
    resolver.on_change(heard.append)
    kw = {"path": None, "search_paths": (str(tool.parent),), "install_hint": ""}
    try:
        assert resolver.resolve("fake-agent", **kw) == tool
        _wait(lambda: resolver.watching)
        resolver.resolve("fake-agent", **kw)
        assert metrics.counter("cli_path_miss", "fake-agent") == 1
        new = tool.parent / "fake-agent.new"
        new.write_text("#!/bin/sh\nexit 1\n")
        new.chmod(0o755)
        os.replace(new, tool)
        _wait(lambda: heard == [str(tool)])
        assert resolver.resolve("fake-agent", **kw) == tool
        assert metrics.counter("cli_path_miss", "fake-agent") == 2
    finally:
        resolver.close()
        resolver.join_watcher()


def test_closing_the_resolver_ends_its_watcher(tmp_path: Path) -> None:
    """close() stops the watcher thread (no thread, no inotify descriptor is left)."""
    import threading

    tool = _fake_cli(tmp_path / "bin")
    resolver = CLIResolver(Metrics(), watch=True)
    resolver.resolve("fake-agent", path=str(tool), search_paths=(), install_hint="")
    _wait(lambda: resolver.watching)
    assert any(t.name == "provcfg-cli-watch" for t in threading.enumerate())
    resolver.close()
    resolver.join_watcher()
    assert not resolver.watching
    assert not any(t.name == "provcfg-cli-watch" for t in threading.enumerate())


async def test_rt_cli_path_follows_a_dropped_entry(tmp_path: Path) -> None:
    """rt.cli_path's no-call fast path holds the last entry: once the watcher drops it
    (the binary deleted) or invalidate() forgets it, the next call detects again instead
    of answering the old file."""
    import provcfg

    first = _fake_cli(tmp_path / "a")
    second = _fake_cli(tmp_path / "b")
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        "version: 1\nproviders:\n"
        f"  c: {{kind: claude-code, command: fake-agent, search_paths: ['{first.parent}', "
        f"'{second.parent}']}}\n"
    )
    async with provcfg.load(manifest) as rt:
        assert rt.cli_path("c") == first
        _wait(lambda: rt.cli_resolver.watching)
        assert rt.cli_path("c") == first  # a watched hit
        first.unlink()
        _wait(lambda: rt.cli_path("c") == second)
        assert rt.cli_path("c") == second
        misses = rt.metrics.counter("cli_path_miss", "fake-agent")
        assert rt.cli_resolver.invalidate() == 1
        assert rt.cli_path("c") == second
        assert rt.metrics.counter("cli_path_miss", "fake-agent") == misses + 1
