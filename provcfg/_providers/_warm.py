"""Warm agent processes: CLI processes started before the request that will use them.

An agent CLI spends nearly all of a request's time starting up (Claude Code: ~0.4-0.9 s
on a quiet machine, the stub answering in under 1 ms). A *spare* is that CLI started
ahead of time with everything a cold request would give it except the prompt, then
left waiting on stdin. A request whose launch matches a spare's exactly takes it,
writes the prompt and reads its output as it would a cold process's; a replacement
starts once the request has ended. A request that finds none runs cold, as always.

The parts:

* :class:`LaunchKey`: what must match: the provider's spec (``name:digest``), the
  binary's identity (real path, device, inode, size, mtime), the whole argv, a digest
  of the whole environment, the working folder. The model and every option are in
  the argv, so a request of another shape simply finds no spare.
* :class:`WarmProcess`: one child in its own session with three pipes, owned by no
  event loop (spawned with :class:`subprocess.Popen` in the pool's threads), so any
  loop can adopt it (:meth:`WarmProcess.attach`). It is *healthy* while it runs, has
  printed nothing since it was prepared (one ``poll`` of its pipes), and is younger
  than ``max_age``; anything else reaps its whole process group.
* :class:`WarmKind`: the per-kind part (how a spare's command differs from the cold
  one, how it is prepared, what makes it stale); :mod:`provcfg._providers._claude_warm`.
* :class:`WarmPool`: one per runtime lineage. It holds the ready spares by key, keeps
  the runtime-wide cap (``warm.max_processes``), spawns in two worker threads with a
  back-off per key, reaps (exited, unexpected output, stale, max_age, idle_timeout,
  binary_changed, retired, closed), counts hits, misses and why, spawn time, and the
  RSS of what it holds, and leaves no process behind: :meth:`WarmPool.close`, and at
  interpreter exit a finalizer. A spare also dies with us: Claude Code and codex exit
  when their stdin (our pipe) closes; opencode's server is started with
  ``setpriv --pdeathsig`` where that exists.
* :class:`WarmGroup`: one provider's share of the pool: its settings, the launches it
  keeps warm (its cwd, ``warm.cwds``, and folders learned from requests), retired
  as a whole when the provider instance closes (a reload changed its spec).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import select
import signal
import subprocess
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from provcfg._logs import get_logger
from provcfg._providers._groups import group_members
from provcfg._providers._subprocess import CliCommand

if TYPE_CHECKING:
    from provcfg._manifest import WarmSpec
    from provcfg._metrics import Metrics

__all__ = [
    "LaunchKey",
    "WarmGroup",
    "WarmKind",
    "WarmPool",
    "WarmProcess",
    "WarmSpawnError",
    "pool_of",
]

log = get_logger(__name__)

DEFAULT_SERVER_USES: Final = 200
"""Requests one server (opencode, codex) serves before it is replaced, unless max_uses says."""
SPAWN_TIMEOUT: Final = 120.0
"""Longest a spare may take to become ready (under load every CLI start stretches 3-10x)."""
_TICK: Final = 1.0
_RSS_EVERY: Final = 10.0
_BACKOFF_FIRST: Final = 0.5
_BACKOFF_MAX: Final = 30.0
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")
_monotonic: Final = time.monotonic


class WarmSpawnError(Exception):
    """A spare could not be started or prepared (it is reaped; the key backs off)."""


@dataclass(frozen=True, slots=True)
class LaunchKey:
    """Everything that makes two launches of an agent CLI the same process (see module doc)."""

    owner: str
    binary: tuple[str, int, int, int, int]
    argv: tuple[str, ...]
    env: str
    cwd: str | None

    @classmethod
    def of(cls, owner: str, command: CliCommand) -> LaunchKey | None:
        """The key of ``command`` (the cold command of a request); None if its binary is gone."""
        program = command.argv[0]
        try:
            real = os.path.realpath(program)
            st = os.stat(real)
        except OSError:
            return None
        binary = (real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        return cls(owner, binary, command.argv, env_digest(command.env), command.cwd)


def env_digest(env: Mapping[str, str]) -> str:
    """A digest of a whole environment (its values are secrets: never kept in clear)."""
    h = hashlib.sha256()
    for key in sorted(env):
        h.update(key.encode("utf-8", "surrogateescape") + b"\0")
        h.update(env[key].encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


class WarmKind(Protocol):
    """What one CLI kind adds to the pool (implemented per kind).

    ``shared``: True for a server that serves many requests at once (opencode,
    codex): requests borrow it; False for a spare that one request takes (Claude Code).
    """

    shared: bool

    def healthy(self, proc: WarmProcess) -> bool:
        """Whether a shared process's client still works (True for spares)."""
        ...

    def spare_command(self, cold: CliCommand) -> CliCommand:
        """The command that starts a spare for requests that would run ``cold``."""
        ...

    def prepare(self, proc: WarmProcess, deadline: float) -> None:
        """Make a just-spawned spare ready (blocking; ``deadline`` is monotonic time).

        Raises:
            WarmSpawnError: it exited, printed something unexpected, or was too slow.
        """
        ...

    def fingerprint(self, command: CliCommand) -> object:
        """What the agent reads at start-up and would not see change later (None: nothing)."""
        ...


class WarmProcess:
    """One warm child process: spawned by the pool, handed to one request, then its own."""

    __slots__ = (
        "__weakref__",
        "command",
        "extra",
        "fingerprint",
        "inflight",
        "key",
        "last_used",
        "owner_name",
        "pid",
        "popen",
        "ready_at",
        "retiring",
        "shared",
        "spawned_at",
        "uses",
    )

    def __init__(
        self, key: LaunchKey, command: CliCommand, popen: subprocess.Popen[bytes], fp: object
    ) -> None:
        self.key = key
        self.command = command
        self.popen = popen
        self.pid = popen.pid
        self.fingerprint = fp
        self.spawned_at = _monotonic()
        self.ready_at = 0.0
        self.last_used = self.spawned_at
        self.uses = 0
        self.owner_name = command.provider
        self.shared = False  # a server borrowed by many requests, never taken
        self.inflight = 0  # requests using a shared process now
        self.retiring = False  # served max_uses: reaped once its requests end
        self.extra: object = None  # the kind's client of a shared process

    @classmethod
    def spawn(cls, key: LaunchKey, command: CliCommand, fp: object) -> WarmProcess:
        """Start ``command`` in a new session with three unbuffered pipes (blocking, ~ms).

        Raises:
            WarmSpawnError: the program could not be executed or the folder is unusable.
        """
        try:
            popen = subprocess.Popen(
                command.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(command.env),
                cwd=command.cwd,
                start_new_session=True,
                bufsize=0,
                close_fds=True,
            )
        except OSError as exc:
            raise WarmSpawnError(f"cannot start {command.program}: {exc.strerror or exc}") from None
        return cls(key, command, popen, fp)

    # ------------------------------------------------------------------ blocking helpers

    def write(self, data: bytes) -> None:
        """Write ``data`` to the spare's stdin (blocking; used while preparing)."""
        stdin = self.popen.stdin
        assert stdin is not None
        view = memoryview(data)
        while view:
            written = os.write(stdin.fileno(), view)
            view = view[written:]

    def read_line(self, deadline: float) -> bytes:
        """One stdout line (blocking until ``deadline``), without its newline.

        Raises:
            WarmSpawnError: EOF (the process exited) or the deadline passed.
        """
        out = self.popen.stdout
        assert out is not None
        fd = out.fileno()
        buf = bytearray()
        while True:
            left = deadline - _monotonic()
            if left <= 0:
                raise WarmSpawnError(f"{self.command.program} was not ready in time")
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            # One byte at a time is slow but exact: nothing after the line may be consumed
            # here, because the request that adopts the pipe reads from where we stop.
            byte = os.read(fd, 1)
            if not byte:
                raise WarmSpawnError(f"{self.command.program} exited while starting")
            if byte == b"\n":
                return bytes(buf)
            buf += byte

    def stderr_text(self) -> str:
        """Whatever stderr holds right now (non-blocking), for a failure message."""
        err = self.popen.stderr
        if err is None:
            return ""
        data = bytearray()
        while select.select([err.fileno()], [], [], 0)[0]:
            chunk = os.read(err.fileno(), 65536)
            if not chunk:
                break
            data += chunk
        return data[-2000:].decode("utf-8", "replace")

    # ------------------------------------------------------------------ health

    def problem(self, now: float, max_age: float) -> str | None:
        """Why this spare must not be handed out, or None: exited, unexpected_output, max_age.

        A shared process (a server) is read by its client all the time: only its exit
        and its age count.
        """
        if not self.running():
            return "exited"
        if self.shared:
            return "max_age" if now - self.spawned_at >= max_age else None
        fds = [f.fileno() for f in (self.popen.stdout, self.popen.stderr) if f is not None]
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        if poller.poll(0):
            return "unexpected_output"
        if now - self.spawned_at >= max_age:
            return "max_age"
        return None

    def running(self) -> bool:
        """Whether the process has not exited (asks the kernel without reaping it, so a
        thread waiting on it elsewhere cannot make this look alive)."""
        if self.popen.returncode is not None:
            return False
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped already
            return False
        return info is None

    def rss_bytes(self) -> int:
        """Resident memory of the process (0 once it is gone)."""
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            return 0

    def kill(self, grace: float) -> None:
        """Stop the whole process group (SIGTERM, ``grace``, SIGKILL), reap, close the pipes
        (and the kind's client of a shared process)."""
        close = getattr(self.extra, "close", None)
        if callable(close):
            close()
        _signal_group(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        if group_members(self.pid):
            _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=max(grace, 1.0))
        self.close_pipes()

    def close_pipes(self) -> None:
        """Close our ends of the three pipes (idempotent)."""
        for f in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

    # ------------------------------------------------------------------ adoption

    async def attach(self, loop: asyncio.AbstractEventLoop, on_exit: Callable[[], None]) -> Any:
        """This process as ``asyncio.subprocess.Process`` would give it, on ``loop``.

        The pipes move to ``loop`` (stdin as a stream writer, stdout and stderr as
        stream readers) and the exit is watched with a pidfd (or a 50 ms poll where the
        kernel has none); ``on_exit`` runs on the loop once the process has exited.
        """
        return await _Adopted.create(self, loop, on_exit)


class _Adopted:
    """The asyncio face of an adopted :class:`WarmProcess` (what CliProcess drives)."""

    def __init__(self, proc: WarmProcess, loop: asyncio.AbstractEventLoop) -> None:
        self._proc = proc
        self._loop = loop
        self.pid = proc.pid
        self.stdout = asyncio.StreamReader(limit=2**20, loop=loop)
        self.stderr = asyncio.StreamReader(limit=2**20, loop=loop)
        self.stdin: asyncio.StreamWriter | None = None
        self._exited = asyncio.Event()
        self._on_exit: Callable[[], None] = _nothing
        self._pidfd = -1
        self._transports: list[asyncio.BaseTransport] = []

    @classmethod
    async def create(
        cls, proc: WarmProcess, loop: asyncio.AbstractEventLoop, on_exit: Callable[[], None]
    ) -> _Adopted:
        self = cls(proc, loop)
        self._on_exit = on_exit
        popen = proc.popen
        assert popen.stdin is not None and popen.stdout is not None and popen.stderr is not None
        for reader, pipe in ((self.stdout, popen.stdout), (self.stderr, popen.stderr)):
            transport, _ = await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r, loop=loop),  # type: ignore[misc]
                pipe,
            )
            self._transports.append(transport)
        wtransport, wprotocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=loop), loop=loop),
            popen.stdin,
        )
        self._transports.append(wtransport)
        self.stdin = asyncio.StreamWriter(wtransport, wprotocol, None, loop)
        try:
            self._pidfd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self._poll_later()
        else:
            loop.add_reader(self._pidfd, self._check)
        self._check()
        return self

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has exited and was reaped, else None."""
        return self._proc.popen.returncode if self._exited.is_set() else None

    async def wait(self) -> int:
        """Wait for the exit and return the code."""
        await self._exited.wait()
        code = self._proc.popen.returncode
        return code if code is not None else -1

    def _check(self) -> None:
        if self._exited.is_set() or self._proc.popen.poll() is None:
            return
        if self._pidfd >= 0:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        self._exited.set()
        self._on_exit()

    def _poll_later(self) -> None:
        def tick() -> None:
            self._check()
            if not self._exited.is_set():
                self._loop.call_later(0.05, tick)

        self._loop.call_later(0.05, tick)

    @property
    def _transport(self) -> Any:
        return _Closer(self._transports)


class _Closer:
    """What CliProcess closes when a pipe is held open by an escaped grandchild."""

    def __init__(self, transports: list[asyncio.BaseTransport]) -> None:
        self._transports = transports

    def close(self) -> None:
        for transport in self._transports:
            transport.close()


def _nothing() -> None:
    pass


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# --------------------------------------------------------------------------- the pool


@dataclass(slots=True)
class _Launch:
    """A launch the pool keeps warm: its key, how to start it, who wants it, how many."""

    key: LaunchKey
    command: CliCommand
    group: WarmGroup
    count: int


@dataclass(slots=True)
class _Backoff:
    delay: float = 0.0
    not_before: float = 0.0


class WarmPool:
    """Every warm process of one runtime lineage (see the module docstring).

    Thread-safe. Nothing runs until a group asks for spares; then one maintenance
    thread (reaping, refilling, RSS) and up to two spawn threads exist until
    :meth:`close`.
    """

    def __init__(self, metrics: Metrics, max_processes: int = 4) -> None:
        self.metrics = metrics
        self.max_processes = max_processes
        self._cond = threading.Condition()
        self._ready: dict[LaunchKey, list[WarmProcess]] = {}
        self._launches: dict[LaunchKey, _Launch] = {}
        self._spawning: dict[LaunchKey, int] = {}
        self._pending = 0  # spawns submitted whose process does not exist yet
        self._backoff: dict[LaunchKey, _Backoff] = {}
        self._alive: set[WarmProcess] = set()
        self._groups: weakref.WeakSet[WarmGroup] = weakref.WeakSet()
        self._rss: dict[str, int] = {}
        self._activated: set[str] = set()
        self._busy: dict[LaunchKey, int] = {}  # spares taken by requests still running
        self._rss_at = 0.0
        self._thread: threading.Thread | None = None
        self._spawner: ThreadPoolExecutor | None = None
        self._closed = False
        # At interpreter exit (or if the pool is collected unclosed) nothing stays behind.
        self._finalizer = weakref.finalize(self, _kill_all, self._alive)
        metrics.gauge("warm_pool", self.stats)

    # ------------------------------------------------------------------ configuration

    def configure(self, max_processes: int) -> None:
        """Apply a (reloaded) cap; extra ready spares are reaped by the next tick."""
        with self._cond:
            self.max_processes = max_processes
            self._cond.notify_all()

    def group(self, owner: str, name: str, settings: WarmSpec, kind: WarmKind) -> WarmGroup:
        """A new group for the provider instance ``owner`` (``name:digest``)."""
        group = WarmGroup(self, owner, name, settings, kind)
        with self._cond:
            self._groups.add(group)
        return group

    def activate(self, name: str) -> None:
        """Start the spares of provider ``name`` now, and of its later instances (warmup)."""
        with self._cond:
            self._activated.add(name)
            groups = [g for g in self._groups if g.name == name]
        for group in groups:
            group.activate()

    def activated(self, name: str) -> bool:
        """Whether ``rt.warmup()`` asked for provider ``name``'s spares."""
        return name in self._activated

    # ------------------------------------------------------------------ hot path

    def take(self, key: LaunchKey, group: WarmGroup) -> WarmProcess | None:
        """A healthy ready spare for ``key`` (now the caller's), or None (the miss is counted)."""
        name = group.name
        with self._cond:
            launch = self._launches.get(key)
            spares = self._ready.get(key)
            while spares:
                proc = spares.pop()
                reason = self._unfit(proc, group)
                if reason is None:
                    self._alive.discard(proc)
                    self._busy[key] = self._busy.get(key, 0) + 1
                    proc.uses += 1
                    self._cond.notify_all()  # a slot under the cap came free
                    self.metrics.incr("warm_hit", name)
                    return proc
                self._reap_later(proc, reason)
            if launch is not None:
                reason = "no_spare"
            elif group.binary_changed(key):
                reason = "binary_changed"
            else:
                reason = "not_kept"
        self.metrics.incr("warm_miss", f"{name}/{reason}")
        return None

    def borrow(self, key: LaunchKey, group: WarmGroup) -> WarmProcess | None:
        """A healthy server of ``key`` for one more request (give it back afterwards)."""
        name = group.name
        now = _monotonic()
        with self._cond:
            servers = self._ready.get(key, [])
            for proc in list(servers):
                reason = ("exited" if not group.kind.healthy(proc) else None) or self._unfit(
                    proc, group
                )
                if reason is not None:
                    servers.remove(proc)
                    self._reap_later(proc, reason)
                    continue
                proc.uses += 1
                proc.inflight += 1
                proc.last_used = now
                limit = group.settings.max_uses or DEFAULT_SERVER_USES
                if proc.uses >= limit:
                    servers.remove(proc)
                    proc.retiring = True
                    self._cond.notify_all()  # a replacement may start
                self.metrics.incr("warm_hit", name)
                return proc
            reason = "no_spare" if key in self._launches else "not_kept"
        self.metrics.incr("warm_miss", f"{name}/{reason}")
        return None

    def give_back(self, proc: WarmProcess) -> None:
        """A request that borrowed ``proc`` ended."""
        with self._cond:
            proc.inflight -= 1
            proc.last_used = _monotonic()
            done = proc.retiring and proc.inflight <= 0
        if done:
            self._reap_later(proc, "max_uses")

    def _unfit(self, proc: WarmProcess, group: WarmGroup) -> str | None:
        problem = proc.problem(_monotonic(), group.settings.max_age)
        if problem is not None:
            return problem
        fp = proc.fingerprint
        if fp is not None and group.kind.fingerprint(proc.command) != fp:
            return "stale"
        return None

    # ------------------------------------------------------------------ wants

    def want(self, key: LaunchKey, command: CliCommand, group: WarmGroup, count: int) -> None:
        """Keep ``count`` spares of ``key`` ready (0 forgets the launch)."""
        with self._cond:
            if self._closed:
                return
            if count <= 0:
                self._launches.pop(key, None)
            else:
                self._launches[key] = _Launch(key, command, group, count)
            self._start()
            self._cond.notify_all()

    def release(self, key: LaunchKey) -> None:
        """A request that took a spare of ``key`` ended: its replacement may start."""
        with self._cond:
            left = self._busy.get(key, 0) - 1
            if left > 0:
                self._busy[key] = left
            else:
                self._busy.pop(key, None)
            self._cond.notify_all()

    def forget(self, keys: Iterable[LaunchKey], reason: str) -> None:
        """Stop keeping ``keys`` warm and reap their ready spares."""
        with self._cond:
            for key in keys:
                self._launches.pop(key, None)
                self._backoff.pop(key, None)
                for proc in self._ready.pop(key, []):
                    self._reap_later(proc, reason)
            self._cond.notify_all()

    def retire_binary(self, file: str) -> int:
        """Reap every spare whose binary is ``file`` (the CLI resolver saw it change)."""
        real = os.path.realpath(file)
        with self._cond:
            keys = [k for k in self._launches if real in (k.binary[0], k.argv[0])]
            keys += [k for k in self._ready if k not in keys and real in (k.binary[0], k.argv[0])]
        self.forget(keys, "binary_changed")
        for group in list(self._groups):
            group.refresh_later()
        return len(keys)

    def ready_count(self, owner: str | None = None) -> int:
        """Ready spares (of one provider instance's group, or all)."""
        with self._cond:
            return sum(len(v) for k, v in self._ready.items() if owner is None or k.owner == owner)

    def wait_ready(self, name: str | None, timeout: float) -> bool:
        """Block until every launch (of provider ``name``, or all) has its spares, or
        ``timeout`` passed; True when they have."""
        deadline = _monotonic() + timeout
        with self._cond:
            while True:
                short = [
                    launch
                    for launch in self._launches.values()
                    if (name is None or launch.group.name == name)
                    and len(self._ready.get(launch.key, ())) < launch.count
                ]
                if not short or self._closed:
                    return not short
                left = deadline - _monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, _TICK))

    def stats(self) -> dict[str, dict[str, int]]:
        """Per provider: spares ready, warm processes alive, their RSS in bytes (last sample)."""
        with self._cond:
            out: dict[str, dict[str, int]] = {}
            for proc in self._alive:
                entry = out.setdefault(proc.owner_name, {"ready": 0, "processes": 0})
                entry["processes"] += 1
            for key, spares in self._ready.items():
                for proc in spares:
                    out.setdefault(proc.owner_name, {"ready": 0, "processes": 0})
                    out[proc.owner_name]["ready"] += 1
                del key
            for name, rss in self._rss.items():
                out.setdefault(name, {"ready": 0, "processes": 0})["rss_bytes"] = rss
            return out

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop every warm process (blocking: their grace periods) and the pool's threads."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._launches.clear()
            doomed = [p for spares in self._ready.values() for p in spares]
            self._ready.clear()
            starting = [p for p in self._alive if p not in doomed]
            self._cond.notify_all()
            thread, spawner = self._thread, self._spawner
        # A spare still starting (priming can take seconds) is told to stop now, so the
        # spawn threads see it exit instead of waiting for it to become ready.
        for proc in starting:
            _signal_group(proc.pid, signal.SIGTERM)
        if spawner is not None:
            spawner.shutdown(wait=True, cancel_futures=True)
        if thread is not None:
            thread.join()
        for proc in doomed:
            self._reap(proc, "closed")
        # Whatever a spawn left (it saw the pool closed and reaped its own) is gone now.
        with self._cond:
            left = list(self._alive)
        for proc in left:
            self._reap(proc, "closed")
        self.metrics.remove_gauge("warm_pool", self.stats)
        self._finalizer.detach()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    # ------------------------------------------------------------------ the threads

    def _start(self) -> None:
        if self._thread is None:
            self._spawner = ThreadPoolExecutor(max_workers=2, thread_name_prefix="provcfg-warm")
            self._thread = threading.Thread(
                target=self._maintain, name="provcfg-warm-pool", daemon=True
            )
            self._thread.start()

    def _maintain(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                now = _monotonic()
                self._expire(now)
                starts = self._due(now)
                for key in starts:
                    self._spawning[key] = self._spawning.get(key, 0) + 1
                    self._pending += 1
            for key in starts:
                self._submit(key)
            if now - self._rss_at >= _RSS_EVERY:
                self._sample_rss(now)
            with self._cond:
                if not self._closed:
                    self._cond.wait(_TICK)

    def _expire(self, now: float) -> None:
        """Reap ready spares that went bad, idled out, or are over the cap (lock held)."""
        for key, spares in list(self._ready.items()):
            launch = self._launches.get(key)
            keep: list[WarmProcess] = []
            for proc in spares:
                settings = proc_settings(launch)
                reason = proc.problem(now, settings.max_age if settings else 0.0)
                idle = settings.idle_timeout if settings else None
                if reason is None and launch is None:
                    reason = "retired"
                since = max(proc.ready_at, proc.last_used)
                if reason is None and proc.shared and proc.inflight > 0:
                    since = now
                if reason is None and idle is not None and now - since >= idle:
                    reason = "idle_timeout"
                    # Not replaced until the next request of this launch (WarmGroup.used).
                    self._launches.pop(key, None)
                if reason is None:
                    keep.append(proc)
                elif proc.shared and proc.inflight > 0 and reason != "exited":
                    proc.retiring = True  # reaped when its last request ends
                else:
                    self._reap_later(proc, reason)
            if keep:
                self._ready[key] = keep
            else:
                self._ready.pop(key, None)
        excess = len(self._alive) - self.max_processes
        if excess > 0:
            oldest = sorted(
                (p for spares in self._ready.values() for p in spares), key=lambda p: p.ready_at
            )
            for proc in oldest[:excess]:
                self._ready[proc.key].remove(proc)
                self._reap_later(proc, "cap")

    def _due(self, now: float) -> list[LaunchKey]:
        """Launches short of spares that may start one now, within the cap (lock held)."""
        starts: list[LaunchKey] = []
        room = self.max_processes - len(self._alive) - self._pending
        for key, launch in self._launches.items():
            have = len(self._ready.get(key, ())) + self._spawning.get(key, 0)
            backoff = self._backoff.get(key)
            if (backoff is not None and now < backoff.not_before) or key in self._busy:
                continue
            while have < launch.count and room > 0:
                starts.append(key)
                have += 1
                room -= 1
            if have < launch.count and room <= 0:
                self.metrics.incr("warm_cap_reached", launch.group.name)
        return starts

    def _submit(self, key: LaunchKey) -> None:
        spawner = self._spawner
        if spawner is None:
            return
        try:
            spawner.submit(self._spawn, key)
        except RuntimeError:  # shut down meanwhile
            with self._cond:
                self._spawning[key] -= 1
                self._pending -= 1

    def _spawn(self, key: LaunchKey) -> None:
        with self._cond:
            launch = self._launches.get(key)
        counted = [True]
        try:
            if launch is not None and not self._closed:
                self._spawn_one(launch, counted)
        finally:
            with self._cond:
                if counted[0]:
                    self._pending -= 1
                self._spawning[key] -= 1
                if not self._spawning[key]:
                    del self._spawning[key]
                self._cond.notify_all()

    def _spawn_one(self, launch: _Launch, counted: list[bool]) -> None:
        group = launch.group
        start = time.perf_counter()
        proc: WarmProcess | None = None
        try:
            spare = group.kind.spare_command(launch.command)
            fp = group.kind.fingerprint(launch.command)
            proc = WarmProcess.spawn(launch.key, spare, fp)
            proc.shared = group.kind.shared
            with self._cond:
                self._alive.add(proc)
                self._pending -= 1
                counted[0] = False
            self.metrics.incr("cli_process_spawned", group.name)
            group.kind.prepare(proc, _monotonic() + SPAWN_TIMEOUT)
        except Exception as exc:
            if self._closed:  # stopped by close() while starting: nothing to report
                if proc is not None:
                    self._reap(proc, "closed")
                return
            detail = proc.stderr_text() if proc is not None else ""
            if proc is not None:
                self._reap(proc, "failed")
            self._back_off(launch.key)
            log.warning(
                "warm_spawn_failed",
                provider=group.name,
                error=f"{exc}",
                stderr=detail[-300:],
            )
            return
        seconds = time.perf_counter() - start
        self.metrics.observe("warm_spawn_seconds", seconds, group.name)
        proc.ready_at = _monotonic()
        with self._cond:
            current = self._launches.get(launch.key)
            if (
                self._closed
                or current is None
                or proc.fingerprint != group.kind.fingerprint(launch.command)
            ):
                keep = False
            else:
                keep = True
                self._ready.setdefault(launch.key, []).append(proc)
                self._backoff.pop(launch.key, None)
                self._cond.notify_all()
        if not keep:
            self._reap(proc, "retired" if not self._closed else "closed")
            return
        log.debug("warm_spare_ready", provider=group.name, pid=proc.pid, seconds=round(seconds, 3))

    def _back_off(self, key: LaunchKey) -> None:
        with self._cond:
            backoff = self._backoff.setdefault(key, _Backoff())
            backoff.delay = min(_BACKOFF_MAX, max(_BACKOFF_FIRST, backoff.delay * 2))
            backoff.not_before = _monotonic() + backoff.delay

    def _reap_later(self, proc: WarmProcess, reason: str) -> None:
        """Reap ``proc`` off the caller's thread (lock may be held)."""
        spawner = self._spawner
        if spawner is not None and not self._closed:
            try:
                spawner.submit(self._reap, proc, reason)
                return
            except RuntimeError:
                pass
        threading.Thread(target=self._reap, args=(proc, reason), daemon=True).start()

    def _reap(self, proc: WarmProcess, reason: str) -> None:
        proc.kill(proc.command.kill_grace)
        with self._cond:
            self._alive.discard(proc)
            self._cond.notify_all()
        self.metrics.incr("warm_reaped", f"{proc.owner_name}/{reason}")
        self.metrics.incr("cli_process_killed", proc.owner_name)
        log.debug("warm_spare_reaped", provider=proc.owner_name, pid=proc.pid, reason=reason)

    def _sample_rss(self, now: float) -> None:
        with self._cond:
            procs = list(self._alive)
        rss: dict[str, int] = {}
        for proc in procs:
            rss[proc.owner_name] = rss.get(proc.owner_name, 0) + proc.rss_bytes()
        with self._cond:
            self._rss = rss
            self._rss_at = now


def proc_settings(launch: _Launch | None) -> WarmSpec | None:
    """The warm settings that govern the spares of ``launch`` (None once it is forgotten)."""
    return launch.group.settings if launch is not None else None


def _kill_all(alive: set[WarmProcess]) -> None:
    """Last resort (interpreter exit, pool never closed): no warm process outlives us."""
    for proc in list(alive):
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            proc.popen.wait(timeout=1.0)
        proc.close_pipes()
    alive.clear()


# --------------------------------------------------------------------------- groups


@dataclass(eq=False)
class WarmGroup:
    """One provider instance's launches in the pool (see the module docstring).

    The provider tells the group which cold command a request would run
    (:meth:`take`), and which default-shaped commands to keep warm (:meth:`keep`).
    """

    pool: WarmPool
    owner: str
    name: str
    settings: WarmSpec
    kind: WarmKind
    binaries: set[str] = field(default_factory=set)
    programs: set[str] = field(default_factory=set)
    _kept: dict[str | None, LaunchKey] = field(default_factory=dict)
    _seen: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _learned: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _make: Callable[[str | None], CliCommand] | None = None
    _closed: bool = False
    _stale_binary: bool = False
    active: bool = False

    def keep(self, make: Callable[[str | None], CliCommand], *, active: bool) -> None:
        """Keep spares of the default request shape: ``make(cwd)`` builds its cold command
        for the provider's cwd (None), each of ``warm.cwds`` and each learned folder.

        ``active``: start them now (init eager/background); else on :meth:`activate`
        (after the first request, or ``rt.warmup()``).
        """
        self._make = make
        self.active = self.active or active or self.pool.activated(self.name)
        self.refresh()

    def activate(self) -> None:
        """Start keeping the spares (idempotent)."""
        if not self.active:
            self.active = True
            self.refresh()

    def folders(self) -> list[str | None]:
        """The working folders kept warm: the provider's own (None), warm.cwds, learned ones
        (a server serves every folder: only the provider's own)."""
        out: list[str | None] = [None]
        if self.kind.shared:
            return out
        out += [os.path.abspath(os.path.expanduser(c)) for c in self.settings.cwds]
        out += list(self._learned)
        return list(dict.fromkeys(out))

    def refresh(self) -> None:
        """(Re)compute the kept launches (after a binary change, a learned folder)."""
        make = self._make
        if make is None or self._closed or not self.active:
            return
        wanted: dict[str | None, LaunchKey] = {}
        for folder in self.folders():
            command = make(folder)
            key = LaunchKey.of(self.owner, command)
            if key is None:
                continue
            wanted[folder] = key
            self.binaries.add(key.binary[0])
            self.programs.add(key.argv[0])
            self.pool.want(key, command, self, self.settings.spares)
        gone = [k for f, k in self._kept.items() if wanted.get(f) != k]
        if gone:
            self.pool.forget(gone, "binary_changed" if self._stale_binary else "retired")
        self._stale_binary = False
        self._kept = wanted

    def refresh_later(self) -> None:
        """The binary changed on disk: recompute the keys (in the pool's thread)."""
        self._stale_binary = True
        threading.Thread(target=self.refresh, daemon=True).start()

    def binary_changed(self, key: LaunchKey) -> bool:
        """Whether ``key`` differs from a kept one only by the binary's identity."""
        for kept in self._kept.values():
            if kept.argv == key.argv and kept.cwd == key.cwd and kept.binary != key.binary:
                self._stale_binary = True
                threading.Thread(target=self.refresh, daemon=True).start()
                return True
        return False

    def take(self, command: CliCommand, default_shape: bool) -> WarmProcess | None:
        """A spare for ``command`` (a request's cold command), or None to run it cold.

        ``default_shape``: the request differs from the kept launches at most by its
        working folder; such a folder used twice is learned (``warm.learn``).
        """
        if self._closed:
            return None
        key = LaunchKey.of(self.owner, command)
        if key is None:
            return None
        if self.kind.shared:
            return self.pool.borrow(key, self)
        proc = self.pool.take(key, self)
        if proc is None and default_shape and command.cwd is not None:  # learn the folder
            self._learn(command.cwd)
        return proc

    def used(self, command: CliCommand, spare: WarmProcess | None) -> None:
        """A request that could have used a spare ended (``spare``: the one it took).

        Its launch is kept warm again (an idle_timeout forgot it), a replacement for the
        spare starts now, after the request (the agent may have changed the folder), and
        lazy providers start their spares here.
        """
        if spare is not None and spare.shared:
            self.pool.give_back(spare)
        elif spare is not None:
            self.pool.release(spare.key)
        if self._closed or self._make is None:
            return
        if not self.active:
            self.activate()
            return
        key = spare.key if spare is not None else LaunchKey.of(self.owner, command)
        if key is not None and key in self._kept.values():
            self.pool.want(key, command, self, self.settings.spares)

    def _learn(self, cwd: str) -> None:
        limit = self.settings.learn
        if not limit or cwd in self._learned:
            return
        self._seen[cwd] = self._seen.get(cwd, 0) + 1
        self._seen.move_to_end(cwd)
        while len(self._seen) > 64:
            self._seen.popitem(last=False)
        if self._seen[cwd] < 2:
            return
        self._learned[cwd] = None
        while len(self._learned) > limit:
            self._learned.popitem(last=False)
        self.refresh()

    def close(self) -> None:
        """The provider instance closed: reap its spares, keep nothing warm for it."""
        if self._closed:
            return
        self._closed = True
        self.pool.forget(list(self._kept.values()), "retired")
        self._kept.clear()


def pool_of(warm: object) -> WarmPool | None:
    """The warm pool a provider context carries (``ctx.warm``), if any."""
    return warm if isinstance(warm, WarmPool) else None
