"""Stand-ins for what `provcfg init` and `provcfg doctor` meet on a machine.

``fake_agent`` writes an executable named like an agent CLI (``claude``, ``codex``,
...) that answers ``--version`` as told: a version line, a failure, or a hang (with a
child process of its own, so a test can check that the whole group is stopped).
``blackholed_port`` is a loopback port where a TCP connection never completes;
``silent_port`` one that accepts TCP and then never says a word (a TLS handshake
there never ends).
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from provcfg._cliprobe import AGENT_CLIS

__all__ = ["TESTED", "blackholed_port", "fake_agent", "silent_port"]

TESTED = {cli.command: cli.tested_version for cli in AGENT_CLIS}
"""The version each real CLI prints, as provcfg's tests pin them."""

_PRINTS = {
    "claude": "{v} (Claude Code)",
    "opencode": "{v}",
    "codex": "codex-cli {v}",
}


def fake_agent(
    folder: Path,
    command: str,
    *,
    version: str | None = None,
    output: str | None = None,
    exit_code: int = 0,
    hang: bool = False,
    pid_file: Path | None = None,
) -> Path:
    """An executable ``folder/command`` answering ``--version``.

    It prints ``output``, else the real CLI's line for ``version`` (default: the tested
    version), and exits with ``exit_code``. With ``hang`` it starts a child ``sleep`` and
    sleeps itself, writing both pids to ``pid_file``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    line = output
    if line is None:
        template = _PRINTS.get(command, "{v}")
        line = template.format(v=version or TESTED.get(command, "1.0.0"))
    if hang:
        assert pid_file is not None, "a hanging fake needs pid_file to be checked"
        body = f"sleep 600 &\necho $$ $! > {shlex.quote(str(pid_file))}\nexec sleep 600\n"
    else:
        body = f"echo {shlex.quote(line)}\nexit {exit_code}\n"
    path = folder / command
    path.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then\n{body}fi\nexit 64\n')
    path.chmod(0o755)
    return path


@contextlib.contextmanager
def blackholed_port() -> Iterator[int]:
    """A 127.0.0.1 port whose listen queue is full: a new TCP connect gets no answer."""
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        server.bind(("127.0.0.1", 0))
        server.listen(0)  # Linux queues one connection, then drops further SYNs
        port: int = server.getsockname()[1]
        for _ in range(2):
            filler = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        deadline = time.monotonic() + 5
        while not _connect_hangs(port):
            assert time.monotonic() < deadline, f"port {port} could not be blackholed"
            time.sleep(0.05)
        yield port


def _connect_hangs(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        try:
            probe.connect(("127.0.0.1", port))
        except TimeoutError:
            return True
        return False


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A 127.0.0.1 port that completes TCP connections and then never reads or writes."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)  # connections wait in the queue; nobody accepts them
        yield server.getsockname()[1]
