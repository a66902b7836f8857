"""A real Python worker process driven by JSON lines, for tests that need two processes.

The worker runs a script that reads one JSON command per stdin line and answers one
JSON line on stdout; closing stdin ends it. Used to show that two processes share a
cache region (file, redis, memcached) for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


class JsonWorker:
    """``python -c SCRIPT *args`` speaking one JSON object per line each way."""

    def __init__(self, script: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )

    def call(self, op: str, **fields: Any) -> Any:
        """Send one command; return its JSON answer (fails with the worker's stderr if it died)."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(10)
            assert self.process.stderr is not None
            raise AssertionError(f"worker died: {self.process.stderr.read()[-2000:]}")
        return json.loads(line)

    def stop(self) -> None:
        """Close stdin, wait for a clean exit, never leave the process behind."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            code = self.process.wait(10)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        assert code == 0
