"""The process-wide registry of live agent-CLI process groups: nothing outlives its owner.

This module holds global state on purpose, and only here: the set of CLI process
groups provcfg has started and not yet reaped, whichever event loop or thread
started them. Each :class:`~provcfg._providers._subprocess.CliProcess` registers its
group when it spawns and unregisters once :meth:`CliProcess.aclose` has stopped it.
Two safety nets reach a group whose owner never closed it:

* **garbage collection**: a ``weakref.finalize`` on the *owner* (the provider
  instance that started the process; a Runtime holds its instances, so collecting a
  Runtime and the streams it started collects them) and one on the ``CliProcess``
  itself. When a stream is dropped without being closed (an embedding program that
  forgot ``aclose()`` and closed its loop, or dropped the runtime), its group gets
  SIGTERM at once and SIGKILL after the provider's ``kill_grace`` (from a daemon
  timer thread: a finalizer must not block). A stream still referenced, or
  resurrected by its running event loop's async-generator hook, is closed the
  normal way instead.
* **interpreter exit**: an ``atexit`` handler sends SIGTERM to every group still
  registered, waits up to the longest ``kill_grace`` among them for the groups to
  empty, then sends SIGKILL. It runs before daemon threads (and event loops running
  in them) are frozen, so it also reaches processes started from such threads.

:func:`terminate_all` is the same sweep for a program's own signal handler
(``provcfg run`` uses it on a second signal). The counts per provider feed the
``cli_processes_running`` gauge.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "GroupEntry",
    "group_members",
    "live_groups",
    "orphaned",
    "register",
    "running",
    "running_gauge",
    "terminate_all",
    "unregister",
]

_POLL: Final = 0.01
_AFTER_KILL: Final = 2.0


@dataclass(frozen=True, slots=True)
class GroupEntry:
    """One live CLI process group: its id (the CLI's pid), provider and grace period."""

    pgid: int
    provider: str
    kill_grace: float
    owner: int
    """``id()`` of the Metrics the process reports to (one per runtime lineage)."""
    holder: int = 0
    """``id()`` of the object whose collection stops the group (0: none)."""


_lock = threading.Lock()
_groups: dict[int, GroupEntry] = {}
_held: dict[int, set[int]] = {}  # id(holder) -> pgids it started


def register(entry: GroupEntry, holder: object | None = None) -> GroupEntry:
    """Remember a group just spawned; collecting ``holder`` (or the exit sweep) stops it.

    Returns:
        The entry as registered (with its ``holder`` key).
    """
    with _lock:
        if holder is not None:
            key = id(holder)
            entry = GroupEntry(entry.pgid, entry.provider, entry.kill_grace, entry.owner, key)
            pgids = _held.get(key)
            if pgids is None:
                pgids = _held[key] = set()
                # Not at exit: the blocking sweep below handles exit (a finalizer's
                # SIGKILL timer would die with the interpreter).
                weakref.finalize(holder, _holder_gone, key).atexit = False
            pgids.add(entry.pgid)
        _groups[entry.pgid] = entry
    return entry


def unregister(pgid: int) -> None:
    """Forget a group its owner has stopped and reaped."""
    with _lock:
        entry = _groups.pop(pgid, None)
        if entry is not None and entry.holder:
            pgids = _held.get(entry.holder)
            if pgids is not None:
                pgids.discard(pgid)


def _holder_gone(key: int) -> None:
    with _lock:
        pgids = _held.pop(key, set())
        entries = [_groups[p] for p in pgids if p in _groups]
    for entry in entries:
        orphaned(entry.pgid, entry.kill_grace)


def live_groups() -> list[GroupEntry]:
    """The groups registered now (started, not yet stopped by their owner)."""
    with _lock:
        return list(_groups.values())


def running(owner: int, provider: str) -> int:
    """How many registered groups belong to ``provider`` of the lineage ``owner``."""
    with _lock:
        return sum(1 for e in _groups.values() if e.owner == owner and e.provider == provider)


def running_gauge(owner: int, provider: str) -> Callable[[], int]:
    """A gauge reader: ``running(owner, provider)`` read at snapshot/scrape time."""

    def read() -> int:
        return running(owner, provider)

    return read


def _signal(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of process group ``pgid``.

    The kernel is asked about the group first (``killpg(pgid, 0)``): when it has no
    member at all, which is what a request that left nothing behind gives, no process
    table is read. Only when members remain is /proc read once, to tell live members
    from zombies (a zombie counts for ``killpg`` but needs no signal; where PID 1 does
    not reap orphans, as in some containers, zombies stay for good).
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        return [pgid]  # someone else's group now: nothing we may signal; report it
    try:
        names = os.listdir("/proc")
    except OSError:
        return [pgid]  # cannot tell: treat the group as alive
    return [int(name) for name in names if name.isdigit() and _live_in_group(name, pgid)]


def _live_in_group(pid: str, pgid: int) -> bool:
    stat = _read_stat(pid)
    if stat is None:
        return False
    # Fields after the command name (which may hold spaces): state ppid pgrp ...
    fields = stat[stat.rfind(b")") + 2 :].split(b" ", 3)
    return len(fields) >= 3 and int(fields[2]) == pgid and fields[0] != b"Z"


def _read_stat(pid: str) -> bytes | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read()
    except OSError:
        return None


def orphaned(pgid: int, kill_grace: float) -> None:
    """A ``CliProcess`` was collected without being closed: stop its group without blocking.

    SIGTERM now; SIGKILL after ``kill_grace`` from a daemon timer thread (cancelled
    early when the group is gone). Called by ``weakref.finalize``; never raises.
    """
    with _lock:
        known = pgid in _groups
    if not known:
        return  # its owner already stopped and reaped it (the pid may be reused)
    if not _signal(pgid, signal.SIGTERM) or kill_grace <= 0:
        _signal(pgid, signal.SIGKILL)
        unregister(pgid)
        return
    # The group stays registered until it is gone: if the interpreter exits first, the
    # exit sweep (which blocks) finishes the job this daemon thread could not.
    thread = threading.Thread(
        target=_kill_after, args=(pgid, kill_grace), name="provcfg-reap", daemon=True
    )
    thread.start()


def _kill_after(pgid: int, grace: float) -> None:
    until = time.monotonic() + grace
    while time.monotonic() < until and _group_alive(pgid):
        time.sleep(_POLL)
    _signal(pgid, signal.SIGKILL)
    unregister(pgid)


def terminate_all(grace: float | None = None) -> int:
    """SIGTERM every registered group, wait for them to empty, SIGKILL what is left.

    ``grace`` caps the wait (default: the longest ``kill_grace`` among the groups);
    0 sends SIGKILL at once. Groups stay registered: their owners still reap them.
    Blocks the calling thread for at most the grace period plus 2 s for SIGKILL to land.

    Returns:
        How many groups were signalled.
    """
    entries = live_groups()
    if not entries:
        return 0
    wait = max(e.kill_grace for e in entries) if grace is None else grace
    signalled = [
        e.pgid for e in entries if _signal(e.pgid, signal.SIGTERM if wait else signal.SIGKILL)
    ]
    until = time.monotonic() + wait
    while signalled and time.monotonic() < until:
        if not any(_group_alive(pgid) for pgid in signalled):
            return len(signalled)
        time.sleep(_POLL)
    for pgid in signalled:
        _signal(pgid, signal.SIGKILL)
    # SIGKILL is delivered when the kernel next runs each process: wait (briefly) until
    # they are gone, so that a caller about to exit leaves nothing running.
    until = time.monotonic() + _AFTER_KILL
    while time.monotonic() < until and any(_group_alive(pgid) for pgid in signalled):
        time.sleep(_POLL)
    return len(signalled)


def _sweep_at_exit() -> None:
    with contextlib.suppress(Exception):  # nothing may turn an exit into a traceback
        terminate_all()


atexit.register(_sweep_at_exit)
