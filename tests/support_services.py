"""Real redis-server and memcached processes for the tests, on free 127.0.0.1 ports.

Import the fixtures explicitly (``from support_services import redis_server``).
Each server is started once per test session, waited for until it accepts
connections, and terminated and reaped at the end. A missing binary skips the
tests locally and fails them in CI (``CI=true``), where ``.ci/run`` must
install it (``apt-get install -y redis-server memcached``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "free_port",
    "memcached_server",
    "redis_server",
    "start_memcached",
    "start_redis",
    "wait_for_port",
]

_START_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; fail if the process exits first."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited with {process.returncode}: {_tail(log)}"  # type: ignore[index]
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{process.args[0]} did not listen on {port}: {_tail(log)}")  # type: ignore[index]


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-1000:]
    except OSError:
        return "(no log)"


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed; .ci/run must install it (apt-get install -y {package})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def _serve(argv_for_port: list[str], port: int, folder: str) -> Iterator[subprocess.Popen[bytes]]:
    log = Path(folder) / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv_for_port, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        wait_for_port(port, process, log)
        yield process
    finally:
        _stop(process)


@contextlib.contextmanager
def start_redis(port: int | None = None) -> Iterator[str]:
    """Run a throw-away redis-server (on ``port``, or a free one); yield ``redis://127.0.0.1:PORT/0``.

    Raises:
        pytest.skip.Exception / pytest.fail.Exception: redis-server is not installed.
    """
    binary = _binary("redis-server", "redis-server")
    with tempfile.TemporaryDirectory(prefix="provcfg-redis-") as folder:
        port = port or free_port()
        argv = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", folder,
            "--daemonize", "no",
        ]  # fmt: skip
        with _serve(argv, port, folder):
            yield f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def start_memcached() -> Iterator[str]:
    """Run a throw-away memcached; yield ``memcached://127.0.0.1:PORT``.

    Raises:
        pytest.skip.Exception / pytest.fail.Exception: memcached is not installed.
    """
    binary = _binary("memcached", "memcached")
    with tempfile.TemporaryDirectory(prefix="provcfg-memcached-") as folder:
        port = free_port()
        argv = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "32"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root without naming a user
        with _serve(argv, port, folder):
            yield f"memcached://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a real redis-server shared by the session (use unique region names per test)."""
    with start_redis() as url:
        yield url


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[str]:
    """URL of a real memcached shared by the session (use unique region names per test)."""
    with start_memcached() as url:
        yield url
