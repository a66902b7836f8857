"""Hostile command lines against the real ``provcfg`` executable: no traceback, a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _provcfg(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provcfg", *argv],
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


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(
        "version: 1\n"
        "providers:\n"
        "  local: {kind: anthropic-api, base_url: 'http://127.0.0.1:9', api_key: k,\n"
        "          max_retries: 0}\n"
    )
    return path


def test_run_stdin_not_utf8_names_the_byte(tmp_path: Path) -> None:
    """``run -`` with non-UTF-8 stdin exits 2 naming the byte, whatever stdin's error handler."""
    done = subprocess.run(
        [sys.executable, "-m", "provcfg", "run", "-f", str(_manifest(tmp_path)), "-"],
        input=b"ok \xff\xfe",
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},  # strict decoding of sys.stdin
    )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "byte 3 of standard input (0xff) is not UTF-8" in stderr
    assert "internal error" not in stderr


def test_run_stdin_endless_is_refused(tmp_path: Path) -> None:
    """``run - < /dev/zero`` stops at the size limit with exit 2 instead of filling memory."""
    with open("/dev/zero", "rb") as zero:
        done = subprocess.run(
            [sys.executable, "-m", "provcfg", "run", "-f", str(_manifest(tmp_path)), "-"],
            stdin=zero,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert "larger than 33554432 bytes" in done.stderr


def test_run_stdin_closed(tmp_path: Path) -> None:
    """``run -`` with stdin closed says so and exits 2 instead of an internal error."""
    done = subprocess.run(
        [sys.executable, "-m", "provcfg", "run", "-f", str(_manifest(tmp_path)), "-"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=lambda: os.close(0),  # a closed fd 0 is the input under test
    )
    assert done.returncode == 2, done.stderr
    assert "standard input is closed" in done.stderr


@pytest.mark.parametrize("where", ["missing.yaml", "."])
def test_run_unreadable_manifest_exits_2(tmp_path: Path, where: str) -> None:
    """``run -f`` on a missing file or a folder exits 2 (unreadable), as docs/cli.md says."""
    done = _provcfg("run", "-f", str(tmp_path / where), "hi")
    assert done.returncode == 2, done.stderr
    assert str(tmp_path / where) in done.stderr
    assert "Traceback" not in done.stderr
