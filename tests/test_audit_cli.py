"""Hostile command lines against the real ``provcfg`` executable: no traceback, a clear message."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _provcfg(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provcfg.cli", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("port", ["-1", "65536", "99999"])
def test_stub_port_out_of_range_is_a_usage_error(port: str) -> None:
    """``provcfg stub --port`` outside 0-65535 exits 2 naming the range, not an internal error."""
    done = _provcfg("stub", "--port", port)
    assert done.returncode == 2, done.stderr
    assert f"port {port} is out of range" in done.stderr
    assert "0 for any free port" in done.stderr
    assert "internal error" not in done.stderr
    assert "Traceback" not in done.stderr
