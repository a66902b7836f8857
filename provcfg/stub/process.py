"""Run the stub in a separate process (``python -m provcfg.stub``), for benchmarks and tests.

A benchmark must not share its event loop (or its GIL) with the server it measures;
:class:`StubProcess` starts one, waits for the port file, and on exit sends SIGTERM,
waits, and reaps the child (SIGKILL only if it does not stop in time).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from provcfg.stub.config import StubError

__all__ = ["StubProcess"]


class StubProcess:
    """A ``python -m provcfg.stub --port 0 --port-file F`` child; a context manager.

    ``args`` are extra CLI options (``["--deltas", "10000", "--chunk-size", "4"]``).
    Inside ``with``: ``base_url``, ``port`` and ``process`` (the :class:`subprocess.Popen`).

    Raises:
        StubError: the child exited, or did not write its port within ``timeout`` seconds
            (the message holds its stderr).
    """

    def __init__(self, args: list[str] | None = None, *, timeout: float = 20.0) -> None:
        """Prepare (not start) a child running the stub with extra ``args``."""
        self.args = list(args or [])
        self.timeout = timeout
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        """Return ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start the child and wait until it listens; return ``self``.

        Raises:
            StubError: see the class docstring.
        """
        self._dir = tempfile.TemporaryDirectory(prefix="provcfg-stub-")
        port_file = Path(self._dir.name) / "port"
        command = [sys.executable, "-m", "provcfg.stub", "--port", "0", "--port-file"]
        self.process = subprocess.Popen(
            [*command, str(port_file), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + self.timeout
        while not port_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                stderr = self._stop_and_collect()
                raise StubError(f"the stub process did not start: {stderr.strip() or 'timeout'}")
            time.sleep(0.01)
        self.port = int(port_file.read_text())
        return self

    def stop(self) -> int | None:
        """SIGTERM the child, reap it, and return its exit code (``None`` if never started)."""
        if self.process is None:
            return None
        self._stop_and_collect()
        code = self.process.returncode
        self.process = None
        return code

    def _stop_and_collect(self) -> str:
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
        return stderr.decode(errors="replace")

    def __enter__(self) -> Self:
        """Start the child; see :meth:`start`."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop and reap the child."""
        self.stop()
