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
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

__all__ = [
    "free_port",
    "held_port",
    "held_port_number",
    "memcached_server",
    "redis_server",
    "start_memcached",
    "start_redis",
    "wait_for_port",
]

_START_TIMEOUT = 10.0
_START_ATTEMPTS = 3


class _ExitedEarly(RuntimeError):
    """The server exited before listening (typically: its port was taken meanwhile)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A 127.0.0.1 port held (bound, not listening) for the block: connecting is refused.

    Unlike a port from :func:`free_port`, nothing else can start listening on it meanwhile,
    so a "dead server" stays dead for the whole test.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@contextlib.contextmanager
def held_port_number(port: int) -> Iterator[None]:
    """Hold ``port`` (bound, not listening) for the block, as :func:`held_port` does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        yield


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, pid_query: bytes | None = None
) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; fail if the process exits first.

    With ``pid_query`` (a command whose answer holds ``process_id:N`` or ``STAT pid N``),
    also check that the listener is ``process`` and not another program that took the port.
    """
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise _ExitedEarly(
                f"{process.args[0]} exited with {process.returncode}: {_tail(log)}"  # type: ignore[index]
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as conn:
            if pid_query is None:
                return
            conn.sendall(pid_query)
            answer = conn.recv(65536).decode(errors="replace")
            found = re.search(r"(?:process_id:|STAT pid )(\d+)", answer)
            if found and int(found[1]) == process.pid:
                return
            if found:
                _stop(process)
                raise _ExitedEarly(f"port {port} is taken by another server (pid {found[1]})")
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
def _serve(
    argv_for_port: list[str], port: int, folder: str, pid_query: bytes
) -> Iterator[subprocess.Popen[bytes]]:
    log = Path(folder) / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv_for_port, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        wait_for_port(port, process, log, pid_query)
        yield process
    finally:
        _stop(process)


@contextlib.contextmanager
def _serve_on_some_port(
    argv_for: Callable[[int, str], list[str]], port: int | None, prefix: str, pid_query: bytes
) -> Iterator[int]:
    # A free port is only free when picked: another process may bind it before the server
    # does. The server then exits at once, and a fresh port is tried (not for a fixed port).
    for attempt in range(1 if port else _START_ATTEMPTS):
        chosen = port or free_port()
        with contextlib.ExitStack() as stack:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix))
            try:
                stack.enter_context(_serve(argv_for(chosen, folder), chosen, folder, pid_query))
            except _ExitedEarly:
                if port or attempt == _START_ATTEMPTS - 1:
                    raise
                continue
            yield chosen
            return


@contextlib.contextmanager
def start_redis(port: int | None = None) -> Iterator[str]:
    """Run a throw-away redis-server (on ``port``, or a free one); yield ``redis://127.0.0.1:PORT/0``.

    Raises:
        pytest.skip.Exception / pytest.fail.Exception: redis-server is not installed.
    """
    binary = _binary("redis-server", "redis-server")

    def argv(chosen: int, folder: str) -> list[str]:
        return [
            binary,
            "--port", str(chosen),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", folder,
            "--daemonize", "no",
        ]  # fmt: skip

    with _serve_on_some_port(argv, port, "provcfg-redis-", b"INFO server\r\n") as chosen:
        yield f"redis://127.0.0.1:{chosen}/0"


@contextlib.contextmanager
def start_memcached() -> Iterator[str]:
    """Run a throw-away memcached; yield ``memcached://127.0.0.1:PORT``.

    Raises:
        pytest.skip.Exception / pytest.fail.Exception: memcached is not installed.
    """
    binary = _binary("memcached", "memcached")

    def argv(chosen: int, folder: str) -> list[str]:
        del folder  # memcached keeps nothing on disk
        line = [binary, "-l", "127.0.0.1", "-p", str(chosen), "-U", "0", "-m", "32"]
        if os.geteuid() == 0:
            line += ["-u", "root"]  # memcached refuses to run as root without naming a user
        return line

    with _serve_on_some_port(argv, None, "provcfg-memcached-", b"stats\r\n") as chosen:
        yield f"memcached://127.0.0.1:{chosen}"


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
