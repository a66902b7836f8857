"""Real special files to put where a manifest is expected: FIFOs, sockets, devices, folders.

``SPECIAL_KINDS`` names each kind; :func:`make_special` creates one at a path (a real
``mkfifo``, a bound ``AF_UNIX`` socket, a symlink to ``/dev/zero`` ...) and returns a
closer for what must stay alive meanwhile (the socket).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

SPECIAL_KINDS = (
    "fifo",
    "socket",
    "dev-zero-symlink",
    "dev-null-symlink",
    "dev-urandom-symlink",
    "folder",
    "symlink-to-fifo",
)
"""Every kind of non-regular file the loader must refuse without reading."""

EXPECTED_WORDS = {
    "fifo": "named pipe (FIFO)",
    "socket": "socket",
    "dev-zero-symlink": "character device",
    "dev-null-symlink": "character device",
    "dev-urandom-symlink": "character device",
    "folder": "folder",
    "symlink-to-fifo": "named pipe (FIFO)",
}
"""A fragment the refusal message holds for each kind."""


def make_special(kind: str, path: Path) -> Callable[[], None]:
    """Create a ``kind`` special file at ``path``; returns a function that releases it."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        # AF_UNIX paths are limited to ~107 bytes: bind from the folder, by name.
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        here = os.getcwd()
        os.chdir(path.parent)
        try:
            server.bind(path.name)
        finally:
            os.chdir(here)
        server.listen(1)
        return server.close
    elif kind.startswith("dev-") and kind.endswith("-symlink"):
        os.symlink(f"/dev/{kind[4:-8]}", path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "symlink-to-fifo":
        target = path.with_name(path.name + ".fifo")
        os.mkfifo(target)
        os.symlink(target.name, path)
    else:
        raise ValueError(kind)
    return lambda: None


def replace_with_special(kind: str, path: Path) -> Callable[[], None]:
    """Put a ``kind`` special file in place of ``path`` in one rename (as a save would)."""
    staging = path.with_name(f".{path.name}.special")
    release = make_special(kind, staging)
    if kind == "folder":  # a folder cannot be renamed over a file: remove it first
        path.unlink(missing_ok=True)
    os.replace(staging, path)
    return release


def open_descriptors() -> int:
    """How many file descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))
