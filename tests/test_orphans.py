"""Nothing outlives provcfg: the agent CLI's whole process group goes with a signalled
``provcfg run``, with an embedding program that exits without ``aclose()``, and with a
Runtime that is garbage-collected; the CLI process metrics move as it happens.

Every test runs a real fake CLI (tests/fake_clis/replay.py) that ignores SIGTERM and
starts a SIGTERM-ignoring grandchild in its group, then scans the process table for
any live member of that group afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from provcfg._monitoring._collector import ProvcfgCollector
from provcfg._providers import _groups
from tests.support_fake_cli import fake_cli, scenario

ROOT = Path(__file__).resolve().parent.parent

TEXT = {
    "type": "assistant",
    "message": {
        "id": "m1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "working on it"}],
        "stop_reason": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    },
    "parent_tool_use_id": None,
    "session_id": "s1",
}


def group_alive(pgid: int) -> list[int]:
    """Pids of live (not zombie) processes in process group ``pgid``, from /proc."""
    alive = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split(b" ")
        if int(fields[2]) == pgid and fields[0] != b"Z":
            alive.append(int(name))
    return alive


def wait_for(check: object, timeout: float = 30.0) -> bool:
    """Poll ``check()`` until it is true or ``timeout`` passes; returns the last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return bool(check())  # type: ignore[operator]


def hanging_agent(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A manifest whose provider ``agent`` runs a CLI that ignores SIGTERM, starts a
    SIGTERM-ignoring grandchild, prints one text message and hangs.

    Returns the manifest, the CLI's pid file and the grandchild's pid file.
    """
    cli_pid = tmp_path / "cli.pid"
    grand_pid = tmp_path / "grandchild.pid"
    script = scenario(
        tmp_path,
        f"#!pidfile {cli_pid}\n#!ignore_term\n#!grandchild {grand_pid}\n"
        + json.dumps(TEXT)
        + "\n#!hang\n",
    )
    cli = fake_cli(tmp_path)
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        "version: 1\n"
        "default_provider: agent\n"
        "providers:\n"
        "  agent:\n"
        "    kind: claude-code\n"
        f"    path: {cli}\n"
        "    kill_grace: 0.5\n"
        "    model: claude-sonnet-4-5\n"
        f"    env: {{FAKE_SCENARIO: {script}}}\n"
    )
    return manifest, cli_pid, grand_pid


def started(cli_pid: Path, grand_pid: Path) -> tuple[int, int]:
    assert wait_for(lambda: cli_pid.exists() and grand_pid.exists() and grand_pid.read_text())
    return int(cli_pid.read_text()), int(grand_pid.read_text())


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT], ids=lambda s: s.name
)
def test_signalled_run_stops_the_cli_group_then_exits(tmp_path: Path, sig: signal.Signals) -> None:
    """`provcfg run` killed by SIGTERM/SIGHUP/SIGINT/SIGQUIT stops the CLI, its
    SIGTERM-ignoring grandchild and the whole group before exiting 128 + the signal."""
    manifest, cli_pid, grand_pid = hanging_agent(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "provcfg", "run", "-f", str(manifest), "go"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    pgid = 0
    try:
        pgid, _grand = started(cli_pid, grand_pid)
        assert group_alive(pgid), "the fake CLI's group should be running before the signal"
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if pgid:
            left = group_alive(pgid)
            if left:
                os.killpg(pgid, signal.SIGKILL)
    assert proc.returncode == 128 + int(sig), err
    assert left == [], f"processes of the CLI's group outlived provcfg run: {left}"
    assert f"cancelled by {sig.name}" in err
    assert "Traceback" not in err


def test_second_signal_kills_the_group_at_once(tmp_path: Path) -> None:
    """A second SIGTERM during the grace period SIGKILLs the CLI's group without waiting."""
    manifest, cli_pid, grand_pid = hanging_agent(tmp_path)
    text = manifest.read_text().replace("kill_grace: 0.5", "kill_grace: 600")
    manifest.write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "provcfg", "run", "-f", str(manifest), "go"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    pgid = 0
    try:
        pgid, _grand = started(cli_pid, grand_pid)
        proc.send_signal(signal.SIGTERM)
        # The CLI ignores SIGTERM and the grace is 10 minutes: only the second signal
        # can end the run within the communicate() bound below.
        time.sleep(0.5)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = group_alive(pgid) if pgid else []
        if left:
            os.killpg(pgid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert left == []


EXITS_WITHOUT_ACLOSE = """
import asyncio, sys, threading
import provcfg

ready = threading.Event()

def serve() -> None:
    async def main() -> None:
        rt = provcfg.load(sys.argv[1])
        async for chunk in rt.provider("agent").stream("go"):
            ready.set()
            await asyncio.sleep(3600)
    asyncio.run(main())

# The stream runs on another thread's event loop, which never gets to clean up.
threading.Thread(target=serve, daemon=True).start()
assert ready.wait(60)
print("exiting", flush=True)
sys.exit(0)
"""

COLLECTED = """
import asyncio, gc, sys, time
import provcfg

async def start():
    rt = provcfg.load(sys.argv[1])
    stream = rt.provider("agent").stream("go").__aiter__()
    await stream.__anext__()
    return rt, stream

loop = asyncio.new_event_loop()
rt, stream = loop.run_until_complete(start())
loop.close()                      # the loop that could have closed the stream is gone
del rt, stream                    # no aclose(): the runtime and its stream are dropped
gc.collect()
print("collected", flush=True)
time.sleep(120)                   # still running: the test checks the group meanwhile
"""


def test_embedding_program_that_exits_without_aclose_leaves_nothing(tmp_path: Path) -> None:
    """A program that exits with a CLI stream open on a daemon thread's loop (no aclose(),
    no loop cleanup) still stops the CLI's whole group at interpreter exit."""
    manifest, cli_pid, grand_pid = hanging_agent(tmp_path)
    program = tmp_path / "embed.py"
    program.write_text(textwrap.dedent(EXITS_WITHOUT_ACLOSE))
    proc = subprocess.Popen(
        [sys.executable, str(program), str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    pgid = 0
    try:
        pgid, _grand = started(cli_pid, grand_pid)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = group_alive(pgid) if pgid else []
        if left:
            os.killpg(pgid, signal.SIGKILL)
    assert "exiting" in out, err
    assert proc.returncode == 0, err
    assert left == [], f"processes of the CLI's group outlived the program: {left}"


def test_collected_runtime_stops_its_cli_groups(tmp_path: Path) -> None:
    """Dropping a Runtime and its open stream (loop closed, no aclose()) and collecting
    them stops the CLI's whole group while the program keeps running."""
    manifest, cli_pid, grand_pid = hanging_agent(tmp_path)
    program = tmp_path / "collect.py"
    program.write_text(textwrap.dedent(COLLECTED))
    proc = subprocess.Popen(
        [sys.executable, str(program), str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
    )
    pgid = 0
    try:
        pgid, _grand = started(cli_pid, grand_pid)
        assert proc.stdout is not None
        # (structlog's default logger also writes to stdout: skip its lines)
        assert any(line.strip() == "collected" for line in iter(proc.stdout.readline, ""))
        gone = wait_for(lambda: not group_alive(pgid), timeout=30)
        still_running = proc.poll() is None
    finally:
        proc.kill()
        proc.communicate()
        left = group_alive(pgid) if pgid else []
        if left:
            os.killpg(pgid, signal.SIGKILL)
    assert still_running, "the program should still run: only GC may have stopped the group"
    assert gone and left == []


def _scrape(registry: CollectorRegistry) -> dict[str, float]:
    """The provcfg_cli_processes_* samples of one scrape, keyed by name."""
    out: dict[str, float] = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("provcfg_cli_processes_") and 'provider="agent"' in line:
            name, value = line.rsplit(" ", 1)
            out[name.split("{", 1)[0]] = float(value)
    return out


async def test_cli_process_metrics_move_in_the_exported_series(tmp_path: Path) -> None:
    """Spawned, killed and running CLI processes show in the Prometheus series: running is 1
    while a stream is open, and a cancelled stream whose group had to be signalled is killed."""
    import provcfg

    manifest, cli_pid, _grand_pid = hanging_agent(tmp_path)
    async with provcfg.load(manifest) as rt:
        registry = CollectorRegistry()
        registry.register(ProvcfgCollector(lambda: rt.metrics))
        assert _scrape(registry).get("provcfg_cli_processes_spawned_total", 0) == 0
        stream = rt.provider("agent").stream("go")
        first = await stream.__anext__()
        assert first.type == "text"
        during = _scrape(registry)
        assert during["provcfg_cli_processes_spawned_total"] == 1
        assert during["provcfg_cli_processes_running"] == 1
        assert during.get("provcfg_cli_processes_killed_total", 0) == 0
        await stream.aclose()  # type: ignore[attr-defined]
        after = _scrape(registry)
        pgid = int(cli_pid.read_text())
    assert after["provcfg_cli_processes_spawned_total"] == 1
    assert after["provcfg_cli_processes_killed_total"] == 1
    assert after["provcfg_cli_processes_running"] == 0
    assert group_alive(pgid) == []
    assert all(e.pgid != pgid for e in _groups.live_groups())


async def test_terminate_all_reaches_groups_of_any_loop(tmp_path: Path) -> None:
    """terminate_all() stops a group started on another thread's event loop (what the exit
    sweep and a second signal rely on)."""
    import threading

    import provcfg

    manifest, cli_pid, _grand_pid = hanging_agent(tmp_path)
    ready = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        async def main() -> None:
            async with provcfg.load(manifest) as rt:
                try:
                    async for _chunk in rt.provider("agent").stream("go"):
                        ready.set()
                except BaseException as exc:
                    errors.append(exc)

        asyncio.run(main())
        done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert await asyncio.to_thread(ready.wait, 60)
    pgid = int(cli_pid.read_text())
    assert group_alive(pgid)
    assert await asyncio.to_thread(_groups.terminate_all, 0.5) >= 1
    assert group_alive(pgid) == []
    # The owning loop sees its CLI die and ends the stream with a typed error.
    assert await asyncio.to_thread(done.wait, 60)
    assert errors and type(errors[0]).__name__ == "ProviderError"
