"""The one subprocess runner behind every CLI provider kind (claude-code, opencode, codex).

:class:`CliProcess` starts an agent CLI in its own session (so the whole process
group can be signalled), writes the prompt to its stdin, and yields the NDJSON
objects it prints as they arrive. It owns every failure mode of a child process:

- stdout is read in blocks and split into lines by us, with an explicit
  ``line_limit``: asyncio's ``readline`` stops at 64 KiB, and real agent output
  (a file read by a tool, a long diff) is often larger. A line over the limit is
  reported as a ``cli_failed`` :class:`ProviderError`, never a hang.
- stderr is drained concurrently into a bounded tail, so a chatty CLI can never
  block on a full stderr pipe while we wait on stdout.
- an idle timeout between reads and a total deadline raise ``timeout``.
- leaving the ``async with`` block for any reason (end, error, timeout, a
  consumer that stops iterating, task cancellation) sends SIGTERM to the process
  group, waits ``kill_grace``, sends SIGKILL to whatever is left, and reaps.
  When the CLI exits by itself, processes it left behind in its group are
  stopped the same way, so no grandchild outlives the request.
- a process whose owner never closes it (a dropped stream, an interpreter that
  exits first) is still stopped: every group is registered in
  :mod:`provcfg._providers._groups`, which stops it when the ``CliProcess`` is
  garbage-collected or the interpreter exits.
- the child sees a minimal environment (:func:`minimal_env`) plus the provider's
  declared ``env``; secret values travel only there and are scrubbed from every
  stderr tail and error message.

Metrics: ``cli_process_spawned`` and ``cli_process_killed`` (a group provcfg had
to signal while something in it still ran) per provider, and the gauge
``cli_processes_running.<provider>``.

Per line the runner does one ``str.split`` share, one ``json.loads`` and one
``yield``; it logs once when a process starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from pydantic import SecretStr

from provcfg._errors import ProviderError
from provcfg._logs import get_logger
from provcfg._metrics import Metrics
from provcfg._providers import _groups
from provcfg._providers._groups import _read_stat, group_members
from provcfg._secrets import scrub

__all__ = [
    "DEFAULT_LINE_LIMIT",
    "STDERR_TAIL_BYTES",
    "CliCommand",
    "CliProcess",
    "minimal_env",
    "scrub",
]

log = get_logger(__name__)

DEFAULT_LINE_LIMIT = 16 * 1024 * 1024
"""Largest NDJSON line accepted unless the spec says otherwise (matches ``line_limit``)."""

STDERR_TAIL_BYTES = 8192
"""How much of the end of stderr is kept for error reports."""

_READ_SIZE = 256 * 1024
_GROUP_POLL = 0.01
_DRAIN_AFTER_KILL = 1.0
# SHELL: Claude Code tells its agent which shell the Bash tool runs ("Shell: unknown" without it).
_BASE_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "TERM", "TMPDIR", "USER", "SHELL")


def minimal_env(
    declared: Mapping[str, SecretStr | str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Build a child environment: PATH, HOME, LANG, LC_*, TERM, TMPDIR, USER, SHELL + ``declared``.

    Nothing else of the parent's environment (API keys, tokens, proxies) reaches
    the child unless the manifest declares it under the provider's ``env``; a
    declared value overrides the inherited one. ``SecretStr`` values are revealed
    here and only here.

    Returns:
        A new dict suitable for ``env=`` of a subprocess call.
    """
    source = os.environ if base is None else base
    env = {key: source[key] for key in _BASE_ENV if key in source}
    env.update((key, value) for key, value in source.items() if key.startswith("LC_"))
    for key, value in (declared or {}).items():
        env[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return env


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The protocol asyncio.create_subprocess_exec uses, plus a call when the child exits.

    It holds that call weakly: the event loop's child watcher keeps the transport, and
    so this protocol, alive for as long as the child runs, and a strong reference would
    keep the ``CliProcess`` (and through its metrics, the runtime's instances) alive too,
    so that a dropped stream could never be collected and its group never stopped.
    """

    def __init__(
        self, limit: int, loop: asyncio.AbstractEventLoop, on_exit: Callable[[], None]
    ) -> None:
        super().__init__(limit=limit, loop=loop)
        self._on_exit: Callable[[], Callable[[], None] | None] = weakref.WeakMethod(on_exit)

    def process_exited(self) -> None:
        super().process_exited()
        on_exit = self._on_exit()
        if on_exit is not None:
            on_exit()


def _running(pid: int) -> bool:
    stat = _read_stat(str(pid))
    return stat is not None and stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


async def wait_gone(pids: Iterable[int], deadline: float) -> None:
    """Return once every pid in ``pids`` has exited (zombies count as exited), or at
    ``deadline`` (loop time). Uses a pidfd per process (readable when it exits) where
    the kernel has them, else polls each one's /proc entry every 10 ms.
    """
    loop = asyncio.get_running_loop()
    waits: list[asyncio.Future[None]] = []
    fds: list[int] = []
    polled: list[int] = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        except (AttributeError, OSError):
            polled.append(pid)
            continue
        fds.append(fd)
        done = loop.create_future()
        loop.add_reader(fd, _settle, done)
        waits.append(done)
    try:
        if waits:
            await asyncio.wait(waits, timeout=max(0.0, deadline - loop.time()))
        while any(_running(pid) for pid in polled) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_GROUP_POLL)
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)


async def _drain_stderr(reader: asyncio.StreamReader, tail: bytearray, keep: int) -> None:
    """Read stderr to its end, keeping its last ``keep`` bytes in ``tail`` (in place).

    A plain function, not a method: the task running it is kept alive by the pipe
    (through the loop's child watcher) and must not keep the ``CliProcess`` alive.
    """
    while data := await reader.read(_READ_SIZE):
        tail += data
        if len(tail) > 2 * keep:
            del tail[:-keep]


async def _read_to_end(reader: asyncio.StreamReader | None) -> None:
    if reader is not None:
        while await reader.read(_READ_SIZE):
            pass


def _settle(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)


@dataclass(frozen=True, slots=True)
class CliCommand:
    """Everything needed to run one CLI process.

    Attributes:
        argv: the program (an absolute path) and its arguments; never a secret.
        stdin: bytes written to the child's stdin, then closed; None gives /dev/null.
        env: the child's whole environment (see :func:`minimal_env`).
        cwd: working folder of the child; None keeps ours.
        line_limit: largest stdout line accepted, in bytes.
        idle_timeout: longest silence on stdout, in seconds; None waits forever.
        timeout: total deadline from spawn to exit, in seconds; None for none.
        kill_grace: seconds between SIGTERM and SIGKILL.
        secrets: values scrubbed from stderr tails and error messages.
        provider: the provider's manifest name, for messages and logs.
        stderr_tail_bytes: how much of the end of stderr to keep.
        keep_stdin: leave stdin open after writing ``stdin`` (a session writes more
            later with :meth:`CliProcess.write`).
    """

    argv: tuple[str, ...]
    stdin: bytes | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    line_limit: int = DEFAULT_LINE_LIMIT
    idle_timeout: float | None = None
    timeout: float | None = None
    kill_grace: float = 5.0
    secrets: tuple[str, ...] = ()
    provider: str = ""
    stderr_tail_bytes: int = STDERR_TAIL_BYTES
    keep_stdin: bool = False

    @property
    def program(self) -> str:
        """The executable's file name, used in messages."""
        return Path(self.argv[0]).name


class Adoptable(Protocol):
    """A process started earlier (a warm spare) that a :class:`CliProcess` can take over."""

    async def attach(self, loop: asyncio.AbstractEventLoop, on_exit: Callable[[], None]) -> Any:
        """Its pipes and exit on ``loop``, shaped like ``asyncio.subprocess.Process``."""
        ...


class CliProcess:
    """One running CLI: ``async with CliProcess(cmd) as proc: async for obj in proc.events()``.

    Entering spawns the process (``spawn_seconds`` says how long that took), or adopts
    ``adopt``, a process started earlier with the same command (a warm spare, see
    :mod:`provcfg._providers._warm`); leaving stops the whole process group and reaps it,
    whatever happened. After :meth:`events` is exhausted, :meth:`wait` gives the exit
    code and :meth:`failure` builds the ``cli_failed`` error for a non-zero one.
    """

    def __init__(
        self,
        command: CliCommand,
        metrics: Metrics | None = None,
        owner: object | None = None,
        adopt: Adoptable | None = None,
    ) -> None:
        """``owner``: the object (a provider instance) whose collection stops the group;
        ``adopt``: a process started earlier for this command (a warm spare) to take over."""
        self.command = command
        self.metrics = metrics
        self._owner = weakref.ref(owner) if owner is not None else None
        self.pid: int | None = None
        self.spawn_seconds: float | None = None
        self.lines = 0
        self.bad_lines = 0
        self._adopt = adopt
        self._proc: Any = None
        self._stderr = bytearray()
        self._stderr_task: asyncio.Task[None] | None = None
        self._exited = asyncio.Event()
        self._kill_later: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._started = 0.0
        self._closed = False
        self._outcome = "ok"
        self._events: AsyncGenerator[dict[str, Any], None] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._killed = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> CliProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and self._outcome == "ok":
            self._outcome = exc_type.__name__
        await self.aclose()

    async def start(self) -> None:
        """Spawn the process in a new session with the prompt on stdin.

        Raises:
            ProviderError: ``cli_not_found`` if the program cannot be executed,
                ``invalid_request`` if ``cwd`` is not a folder.
        """
        cmd = self.command
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        if cmd.timeout is not None:
            self._deadline = self._started + cmd.timeout
        begin = time.perf_counter()
        if self._adopt is not None:
            proc = self._proc = await self._adopt.attach(loop, self._on_exit)
            self.spawn_seconds = time.perf_counter() - begin
            self._begin(proc, loop, adopted=True)
            return
        try:
            # asyncio.create_subprocess_exec, with a protocol that also tells us the
            # moment the child exits: Process.wait() only returns once every pipe is
            # closed, which a leftover grandchild holding stdout can delay forever.
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitAwareProtocol(_READ_SIZE, loop, self._on_exit),
                *cmd.argv,
                stdin=asyncio.subprocess.PIPE
                if cmd.stdin is not None
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=dict(cmd.env),
                cwd=cmd.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            if cmd.cwd is not None and exc.filename == cmd.cwd:
                # subprocess names the folder when the child's chdir() failed.
                raise ProviderError(
                    f"cannot use working folder {cmd.cwd!r}: {exc.strerror}; fix the "
                    f"providers.{cmd.provider or '<name>'}.cwd setting or the cwd= argument",
                    kind="invalid_request",
                    provider=cmd.provider,
                ) from None
            raise ProviderError(
                f"cannot run {cmd.argv[0]!r}: {exc.strerror or exc}; check that the CLI is "
                "installed and executable (providers.<name>.path / command)",
                kind="cli_not_found",
                provider=cmd.provider,
            ) from None
        self.spawn_seconds = time.perf_counter() - begin
        proc = self._proc = asyncio.subprocess.Process(transport, protocol, loop)
        self._begin(proc, loop, adopted=False)

    def _begin(self, proc: Any, loop: asyncio.AbstractEventLoop, *, adopted: bool) -> None:
        cmd = self.command
        self.pid = proc.pid
        self._track(proc.pid, adopted)
        if proc.stdin is not None:
            # The transport writes in the background and closes after the last byte,
            # so a prompt larger than the pipe buffer cannot deadlock us against a
            # child that writes stdout before reading all of stdin.
            proc.stdin.write(cmd.stdin or b"")
            if not cmd.keep_stdin:
                proc.stdin.close()
        assert proc.stderr is not None
        self._stderr_task = loop.create_task(
            _drain_stderr(proc.stderr, self._stderr, cmd.stderr_tail_bytes)
        )
        log.info(
            "cli_process_started",
            provider=cmd.provider,
            program=cmd.program,
            pid=proc.pid,
            spawn_ms=round((self.spawn_seconds or 0.0) * 1000, 3),
            warm=adopted,
        )

    def _track(self, pid: int, adopted: bool = False) -> None:
        """Register the new group (GC and exit safety nets) and count it (a warm spare was
        counted when the pool started it)."""
        cmd = self.command
        metrics = self.metrics
        owner = id(metrics) if metrics is not None else 0
        holder = self._owner() if self._owner is not None else None
        _groups.register(_groups.GroupEntry(pid, cmd.provider, cmd.kill_grace, owner), holder)
        # The callback holds the pid, never self: a finalizer must not keep its object alive.
        # Not at exit: the registry's blocking exit sweep handles that.
        self._finalizer = weakref.finalize(self, _groups.orphaned, pid, cmd.kill_grace)
        self._finalizer.atexit = False
        if metrics is not None:
            if not adopted:
                metrics.incr("cli_process_spawned", cmd.provider)
            metrics.gauge(
                f"cli_processes_running.{cmd.provider}", _groups.running_gauge(owner, cmd.provider)
            )

    def _count_killed(self) -> None:
        if not self._killed:
            self._killed = True
            if self.metrics is not None:
                self.metrics.incr("cli_process_killed", self.command.provider)

    async def aclose(self) -> None:
        """Stop the process group (SIGTERM, grace, SIGKILL), reap it and close the pipes.

        Idempotent; safe to call when the process already exited.
        """
        if self._closed or self._proc is None:
            return
        self._closed = True
        proc = self._proc
        if self._kill_later is not None:
            self._kill_later.cancel()
        try:
            if self._events is not None:
                await self._events.aclose()
            await self._stop_group(proc)
        finally:
            # Whatever happened above (even a second cancellation), nothing survives.
            self._signal_group(signal.SIGKILL)
            await self._close_pipes(proc)
            if self._finalizer is not None:
                self._finalizer.detach()
            if self.pid is not None:
                _groups.unregister(self.pid)
            log.info(
                "cli_process_ended",
                provider=self.command.provider,
                pid=proc.pid,
                exit_code=proc.returncode,
                duration_s=round(asyncio.get_running_loop().time() - self._started, 4),
                lines=self.lines,
                outcome=self._outcome,
            )

    async def _stop_group(self, proc: Any) -> None:
        grace = self.command.kill_grace
        loop = asyncio.get_running_loop()
        until = loop.time() + grace
        if proc.returncode is None:
            if self._signal_group(signal.SIGTERM):
                self._count_killed()
            try:
                async with asyncio.timeout(grace):
                    await self._exited.wait()
            except TimeoutError:
                pass
        members = group_members(self.pid) if self.pid is not None else []
        if members:
            # Processes left behind in the CLI's group (tool shells, servers) belong to
            # this request and go with it: SIGTERM, the rest of the grace, then SIGKILL.
            self._signal_group(signal.SIGTERM)
            self._count_killed()
            await wait_gone(members, until)
            if self.pid is not None and group_members(self.pid):
                self._signal_group(signal.SIGKILL)
        await proc.wait()

    async def _close_pipes(self, proc: Any) -> None:
        # With the group gone, the pipes reach EOF at once; read what is left so
        # the transport sees both pipes close and closes itself. A process that
        # escaped the group with setsid() could hold a pipe open: bound the wait.
        try:
            async with asyncio.timeout(_DRAIN_AFTER_KILL):
                await _read_to_end(proc.stdout)
                if self._stderr_task is not None:
                    await self._stderr_task
        except TimeoutError:
            if self._stderr_task is not None:
                self._stderr_task.cancel()
            # No public API closes a subprocess transport whose pipe is still held
            # by an escaped process; closing it releases our fds.
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()

    # ------------------------------------------------------------------ sessions

    def write(self, data: bytes) -> None:
        """Write ``data`` to stdin (``keep_stdin`` commands); buffered, never blocks.

        Raises:
            ProviderError: ``cli_failed`` when stdin is closed (the process exited).
        """
        proc = self._proc
        stdin = proc.stdin if proc is not None else None
        if stdin is None or stdin.is_closing():
            raise ProviderError(
                f"{self.command.program} no longer reads its input (it exited)",
                kind="cli_failed",
                provider=self.command.provider,
                stderr_tail=self.stderr_tail,
            )
        stdin.write(data)

    def close_stdin(self) -> None:
        """Close stdin (the CLI sees EOF); idempotent."""
        proc = self._proc
        if proc is not None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()

    def restart_clock(self, timeout: float | None) -> None:
        """A new total deadline, ``timeout`` seconds from now (a session's next turn)."""
        loop = asyncio.get_running_loop()
        self._deadline = None if timeout is None else loop.time() + timeout

    @property
    def exited(self) -> bool:
        """Whether the process has exited."""
        return self._exited.is_set()

    def _on_exit(self) -> None:
        self._exited.set()
        # The CLI is done; whatever it left in its group (a tool's shell, a server)
        # would hold stdout open and keep us from seeing EOF: stop it now.
        if not self._closed and self._signal_group(signal.SIGTERM):
            if self.pid is not None and group_members(self.pid):
                self._count_killed()
            loop = asyncio.get_running_loop()
            self._kill_later = loop.call_later(
                self.command.kill_grace, self._signal_group, signal.SIGKILL
            )

    def _signal_group(self, sig: int) -> bool:
        if self.pid is None:
            return False
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    # ------------------------------------------------------------------ output

    def events(self) -> AsyncGenerator[dict[str, Any], None]:
        """Yield each JSON object line of stdout as soon as it is complete.

        The generator belongs to this process: :meth:`aclose` closes it, so a caller
        may leave ``async for`` at any point without closing it itself.

        Blank lines are skipped; lines that are not a JSON object are counted
        (``bad_lines``, metric ``cli_bad_line``) and skipped.

        Raises:
            ProviderError: ``cli_failed`` for a line longer than ``line_limit``;
                ``timeout`` when the idle timeout or the total deadline passes.
        """
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise RuntimeError("CliProcess.events() called before start()")
        self._events = self._lines(proc.stdout)
        return self._events

    async def _lines(self, reader: asyncio.StreamReader) -> AsyncGenerator[dict[str, Any], None]:
        limit = self.command.line_limit
        timed = self.command.idle_timeout is not None or self._deadline is not None
        loads = json.loads
        buf = bytearray()
        while True:
            data = await (self._read_timed(reader) if timed else reader.read(_READ_SIZE))
            if not data:
                break
            buf += data
            last = buf.rfind(b"\n")
            if last < 0:
                if len(buf) > limit:
                    raise self._oversize()
                continue
            if last > limit:
                self._check_line_lengths(buf, last)
            text = buf[:last].decode("utf-8", "replace")
            del buf[: last + 1]
            if len(buf) > limit:
                raise self._oversize()
            for line in text.split("\n"):
                if not line or line.isspace():
                    continue
                self.lines += 1
                try:
                    obj = loads(line)
                except ValueError:
                    self._bad_line()
                    continue
                if type(obj) is not dict:
                    self._bad_line()
                    continue
                yield obj
        if buf.strip():
            # A last line without its newline: parse it like any other.
            self.lines += 1
            try:
                obj = loads(buf)
            except ValueError:
                self._bad_line()
            else:
                if type(obj) is dict:
                    yield obj
                else:
                    self._bad_line()

    async def _read_timed(self, reader: asyncio.StreamReader) -> bytes:
        loop = asyncio.get_running_loop()
        now = loop.time()
        idle = self.command.idle_timeout
        when = self._deadline
        if idle is not None and (when is None or now + idle < when):
            when = now + idle
        try:
            async with asyncio.timeout_at(when):
                return await reader.read(_READ_SIZE)
        except TimeoutError:
            raise self._timeout_error() from None

    async def wait(self) -> int:
        """Wait for the process to exit (within the total deadline) and return its code.

        Raises:
            ProviderError: ``timeout`` when the deadline passes first.
        """
        proc = self._proc
        if proc is None:
            raise RuntimeError("CliProcess.wait() called before start()")
        if proc.returncode is not None:
            return int(proc.returncode)
        try:
            async with asyncio.timeout_at(self._deadline):
                return int(await proc.wait())
        except TimeoutError:
            raise self._timeout_error() from None

    # ------------------------------------------------------------------ errors

    @property
    def stderr_tail(self) -> str:
        """The last ``stderr_tail_bytes`` of stderr, decoded, with secrets masked."""
        raw = bytes(self._stderr[-self.command.stderr_tail_bytes :])
        return scrub(raw.decode("utf-8", "replace"), self.command.secrets)

    def failure(self, exit_code: int) -> ProviderError:
        """The ``cli_failed`` error for a non-zero exit, with the stderr tail attached."""
        tail = self.stderr_tail
        last = next((ln.strip() for ln in reversed(tail.splitlines()) if ln.strip()), "")
        hint = f": {last[:300]}" if last else " (no stderr output)"
        self._outcome = "failed"
        return ProviderError(
            f"{self.command.program} failed{hint}",
            kind="cli_failed",
            provider=self.command.provider,
            exit_code=exit_code,
            stderr_tail=tail,
        )

    def _oversize(self) -> ProviderError:
        self._outcome = "line_too_long"
        limit = self.command.line_limit
        name = self.command.provider or "<name>"
        return ProviderError(
            f"{self.command.program} wrote an output line longer than the line limit of "
            f"{limit} bytes; raise providers.{name}.line_limit if such output is expected",
            kind="cli_failed",
            provider=self.command.provider,
            stderr_tail=self.stderr_tail,
            details={"line_limit": limit},
        )

    def _check_line_lengths(self, buf: bytearray, end: int) -> None:
        # Only reached when one read holds more than line_limit bytes of lines.
        limit = self.command.line_limit
        start = 0
        while start < end:
            nl = buf.find(b"\n", start, end + 1)
            if nl - start > limit:
                raise self._oversize()
            start = nl + 1

    def _timeout_error(self) -> ProviderError:
        self._outcome = "timeout"
        cmd = self.command
        name = cmd.provider or "<name>"
        now = asyncio.get_running_loop().time()
        if self._deadline is not None and now >= self._deadline - 1e-3:
            message = (
                f"{cmd.program} did not finish within {cmd.timeout:g}s; raise the timeout= "
                f"argument or providers.{name}.timeout"
            )
            which = "total"
        else:
            message = (
                f"{cmd.program} printed nothing for {cmd.idle_timeout:g}s; raise "
                f"providers.{name}.idle_timeout if the agent needs longer silences"
            )
            which = "idle"
        return ProviderError(
            message,
            kind="timeout",
            provider=cmd.provider,
            stderr_tail=self.stderr_tail,
            details={"timeout": which},
        )

    def _bad_line(self) -> None:
        self.bad_lines += 1
        if self.metrics is not None:
            self.metrics.incr("cli_bad_line", self.command.provider)
