"""A loopback-only network namespace for the calling thread (the real-CLI cases).

The real agent CLIs run against the stub inside a fresh network namespace that has
nothing but ``lo``: nothing they do can leave the machine. A namespace belongs to a
thread: sockets the thread opens and processes it starts while inside stay there; on
exit the thread returns. Where the kernel or sandbox refuses (no CAP_SYS_ADMIN, not
Linux) nothing changes and :class:`Netns` says why (every CLI is still configured to
reach only the stub on 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Netns", "loopback_netns"]

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFF_RUNNING = 0x40
_IFREQ = "16sh22x"


@dataclass(frozen=True, slots=True)
class Netns:
    """``isolated``: inside a fresh loopback-only namespace; else ``reason`` says why not."""

    isolated: bool
    reason: str = ""


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(_IFREQ, b"lo", 0)
        flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP | _IFF_RUNNING))


@contextlib.contextmanager
def loopback_netns() -> Iterator[Netns]:
    """Run the calling thread in a fresh namespace with only ``lo`` (up), then return.

    Raises:
        OSError: the thread could not return to its own namespace.
    """
    if not sys.platform.startswith("linux"):
        yield Netns(False, f"network namespaces need Linux, this is {sys.platform}")
        return
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        yield Netns(False, f"cannot open /proc/thread-self/ns/net: {exc.strerror}")
        return
    try:
        if libc.unshare(_CLONE_NEWNET) != 0:
            yield Netns(False, f"unshare(CLONE_NEWNET) refused: {os.strerror(ctypes.get_errno())}")
            return
        try:
            _loopback_up()
            yield Netns(True)
        finally:
            if libc.setns(home, _CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"cannot return to the original namespace: {os.strerror(code)}")
    finally:
        os.close(home)
