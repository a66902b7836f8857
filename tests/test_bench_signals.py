"""Stopping provcfg bench with SIGTERM or Ctrl-C leaves no process behind (the stub child)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
            found.append(int(name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_sigterm_mid_case_stops_the_stub_child_and_exits_130(tmp_path: Path) -> None:
    """SIGTERM while a streaming case runs: exit 130, and its stub process is gone too."""
    bench = subprocess.Popen(
        [sys.executable, "-m", "provcfg._cli", "bench", "--case", "stream.first-chunk"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        stubs: list[int] = []
        while not stubs and time.monotonic() < deadline:
            time.sleep(0.1)
            stubs = [
                pid
                for pid in _children(bench.pid)
                if b"provcfg.stub" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
        assert stubs, "the case never started its stub"
        time.sleep(0.5)
        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    # 130, or (seen twice in ~20 loaded full-suite runs, not reproduced alone) death by
    # SIGINT after "interrupted" was printed: the status a shell reports as 130 too.
    assert bench.returncode in (130, -signal.SIGINT), err.decode()[-2000:]
    assert b"provcfg: interrupted" in err
    assert b"Traceback" not in err
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in stubs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in stubs)
