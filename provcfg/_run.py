"""``provcfg run``: stream one prompt through a provider to stdout.

Chunks are written as they arrive (text as plain text, or one JSON event per line
with ``--json``). Every error family has its own exit code so scripts can react
without parsing text. SIGINT (Ctrl-C), SIGTERM, SIGHUP and SIGQUIT cancel the stream
cleanly: the provider closes its connection, or stops the agent CLI's whole process
group (SIGTERM, then SIGKILL after the provider's ``kill_grace``), the runtime closes,
and provcfg exits 128 + the signal's number (130, 143, 129, 131). A second signal
while that runs sends SIGKILL to every CLI group at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from pydantic import SecretStr

from provcfg._errors import (
    CLINotFoundError,
    ManifestError,
    ManifestReadError,
    ProvcfgError,
    ProviderError,
)

if TYPE_CHECKING:
    from provcfg._manifest import Manifest

__all__ = ["EXIT_CODES", "STOP_SIGNALS", "RunOptions", "exit_code_for", "run"]

STOP_SIGNALS: tuple[signal.Signals, ...] = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
)
"""The signals that stop ``provcfg run`` cleanly (exit code 128 + the signal's number)."""

EXIT_CODES: dict[str, int] = {
    "manifest": 1,
    "usage": 2,
    "authentication": 3,
    "permission": 3,
    "rate_limit": 4,
    "overloaded": 4,
    "invalid_request": 5,
    "model_not_found": 5,
    "timeout": 6,
    "network": 7,
    "pool_exhausted": 7,
    "server_error": 7,
    "cli_not_found": 8,
    "cli_failed": 9,
    "stream_incomplete": 10,
    "cancelled": 130,
}
"""Exit code per error family (documented in docs/cli.md)."""


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an error raised by a run."""
    if isinstance(exc, ManifestReadError):
        return EXIT_CODES["usage"]  # an unreadable file, as documented for every command
    if isinstance(exc, ManifestError):
        return EXIT_CODES["manifest"]
    if isinstance(exc, ProviderError):
        return EXIT_CODES.get(exc.kind, 9)
    if isinstance(exc, ProvcfgError):
        return EXIT_CODES["usage"]
    return 70


@dataclass(frozen=True)
class RunOptions:
    """What ``provcfg run`` was asked to do."""

    file: str
    prompt: str
    provider: str | None = None
    model: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    json_events: bool = False
    timings: bool = False
    stub: bool = False
    repeat: int = 1


@contextlib.contextmanager
def _embedded_stub(base_url: str) -> Iterator[None]:
    """Serve the stub API on the provider's loopback address for the duration of a run."""
    from provcfg.stub import StubServer

    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    with StubServer(host=host, port=port).running_in_thread():
        yield


async def _stream(opts: RunOptions, out: TextIO, err: TextIO) -> int:
    import provcfg

    load_start = time.perf_counter()
    async with provcfg.load(opts.file) as rt:
        try:
            return await _stream_on(rt, opts, out, err, load_start)
        except CLINotFoundError as exc:
            err.write(cli_missing_text(exc, rt.manifest, opts.file))
            err.flush()
            return EXIT_CODES["cli_not_found"]


async def _stream_on(rt: Any, opts: RunOptions, out: TextIO, err: TextIO, load_start: float) -> int:
    """Stream ``opts.prompt`` on the loaded runtime ``rt``; returns the exit code."""
    try:
        provider = rt.provider(opts.provider)
    except ProvcfgError:
        raise
    except Exception as exc:
        # The kind's factory (a plugin's: third-party code) failed. Only the type is
        # shown, as its message may hold spec values.
        name = opts.provider or rt.manifest.default_provider or next(iter(rt.manifest.providers))
        kind = rt.manifest.providers[name].kind
        raise ProvcfgError(
            f"provider {name!r}: kind {kind!r} could not build it ({type(exc).__name__}); "
            f"fix or reinstall the package that provides kind {kind!r}"
        ) from exc
    loaded = time.perf_counter() - load_start
    if opts.timings:
        err.write(f"timings: load={loaded * 1000:.1f}ms provider={provider.name}\n")
    stub: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if opts.stub:
        stub = _embedded_stub(_stub_url(rt.manifest, provider.name))
    with stub:
        for attempt in range(1, opts.repeat + 1):
            await _one(provider, opts, out, err, attempt)
    return 0


def cli_missing_text(exc: CLINotFoundError, manifest: Manifest, file: str) -> str:
    """What ``provcfg run`` says when the provider's CLI is not installed: one line, then
    what to do (install it, diagnose with ``doctor``, or try the offline stub provider)."""
    from provcfg._cliprobe import agent_cli

    name = exc.provider
    spec = manifest.providers.get(name)
    cli = agent_cli(getattr(spec, "kind", ""))
    explicit = getattr(spec, "path", None)
    if explicit is not None:
        from provcfg._clipath import _unusable

        reason = _unusable(os.path.abspath(os.path.expanduser(explicit))) or "unusable"
        problem = f"its providers.{name}.path {explicit} is no executable ({reason})"
    else:
        path_folders = sum(1 for place in exc.searched if place.startswith("PATH "))
        problem = f"which is not on PATH ({path_folders} folders)"
        extra = tuple(getattr(spec, "search_paths", ()))
        if extra:
            problem += f" nor in {', '.join(extra)}"
    target = "" if file == "providers.yaml" else f" -f {file}"
    lines = [f"provcfg: provider {name!r} needs the {exc.command} CLI, {problem}"]
    if cli is not None:
        lines.append(f"  install it:   {cli.install}")
    else:
        lines.append(f"  install it:   put {exc.command!r} on PATH, or set providers.{name}.path")
    lines.append(f"  diagnose:     provcfg doctor{' ' + file if target else ''}")
    offline = [
        other
        for other, other_spec in manifest.providers.items()
        if getattr(other_spec, "kind", None) == "anthropic-api"
        and _is_loopback(str(getattr(other_spec, "base_url", "")))
    ]
    if offline:
        lines.append(f'  try offline:  provcfg run{target} -p {offline[0]} --stub "Say hi"')
    return "\n".join(lines) + "\n"


def _is_loopback(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


async def _one(provider: Any, opts: RunOptions, out: TextIO, err: TextIO, attempt: int) -> None:
    start = time.perf_counter()
    first: float | None = None
    chunks = 0
    final: Any = None
    stream = provider.stream(
        opts.prompt, model=opts.model, system=opts.system, max_tokens=opts.max_tokens
    )
    async for chunk in stream:
        if first is None:
            first = time.perf_counter() - start
        chunks += 1
        if opts.json_events:
            out.write(json.dumps(chunk.as_dict(), default=_jsonable) + "\n")
        elif chunk.type == "text":
            out.write(chunk.text)
        if chunk.type == "result":
            final = chunk.data
        out.flush()
    if not opts.json_events:
        out.write("\n")
        out.flush()
    if opts.timings:
        total = time.perf_counter() - start
        timings = (final or {}).get("timings")
        connect = getattr(timings, "connect", None)
        # Which provider answered: a provider with fallbacks may have handed over.
        answered = getattr(stream, "provider", None) or provider.name
        line = [f"run={attempt}", f"provider={answered}"]
        moved = getattr(stream, "attempts", None)
        if moved:
            line.append("fallback_from=" + ",".join(f"{p}({kind})" for p, kind in moved))
        if connect is not None:
            line.append(f"connect={connect * 1000:.1f}ms")
        if first is not None:
            line.append(f"first_chunk={first * 1000:.1f}ms")
        line.append(f"total={total * 1000:.1f}ms")
        line.append(f"chunks={chunks}")
        usage = (final or {}).get("usage")
        if usage is not None:
            line.append(f"tokens_in={usage.input_tokens} tokens_out={usage.output_tokens}")
        err.write("timings: " + " ".join(line) + "\n")
        err.flush()


def _jsonable(value: object) -> object:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


class _Stopped(Exception):
    """A stop signal ended the run (after the streams and the runtime were closed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


async def _stream_until_signal(opts: RunOptions, out: TextIO, err: TextIO) -> int:
    """:func:`_stream`, cancelled by the first stop signal; a second one kills at once."""
    from provcfg._providers import _groups

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []

    def stop(signum: int) -> None:
        if received:
            # Impatient: no more grace periods for the agents' process groups.
            _groups.terminate_all(grace=0)
            return
        received.append(signum)
        if task is not None:
            task.cancel()

    installed: list[signal.Signals] = []
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, stop, int(sig))
        except (ValueError, RuntimeError):  # not the main thread: the caller's handlers stay
            continue
        installed.append(sig)
    try:
        code = await _stream(opts, out, err)
    except asyncio.CancelledError:
        if received:
            raise _Stopped(received[0]) from None
        raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    if received:
        raise _Stopped(received[0])
    return code


def run(opts: RunOptions, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Stream ``opts.prompt`` and return the exit code (see :data:`EXIT_CODES`)."""
    try:
        return asyncio.run(_stream_until_signal(opts, out, err))
    except _Stopped as stopped:
        name = signal.Signals(stopped.signum).name
        err.write(f"\nprovcfg: cancelled by {name}; the stream and its processes were closed\n")
        err.flush()
        return 128 + stopped.signum
    except KeyboardInterrupt:
        err.write("\nprovcfg: cancelled\n")
        return EXIT_CODES["cancelled"]
    except ManifestError as exc:
        for problem in exc.problems:
            err.write(f"{problem}\n")
        return exit_code_for(exc)
    except ProvcfgError as exc:
        err.write(f"provcfg: {exc}\n")
        return exit_code_for(exc)


def _stub_url(manifest: Manifest, name: str) -> str:
    """The base_url of the provider that ``--stub`` should serve (loopback only)."""
    spec = manifest.providers.get(name)
    base_url = getattr(spec, "base_url", None)
    if isinstance(base_url, SecretStr):  # a base_url may carry a password
        base_url = base_url.get_secret_value()
    if not base_url:
        raise ProvcfgError(
            f"--stub serves the Anthropic API for an anthropic-api provider; "
            f"provider {name!r} has no base_url"
        )
    host = urlsplit(base_url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
        raise ProvcfgError(
            f"--stub only serves loopback addresses; provider {name!r} points at {host!r}"
        )
    return str(base_url)
