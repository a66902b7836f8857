"""``provcfg run``: stream one prompt through a provider to stdout.

Chunks are written as they arrive (text as plain text, or one JSON event per line
with ``--json``). Every error family has its own exit code so scripts can react
without parsing text; Ctrl-C cancels the stream cleanly (the provider closes its
connection or stops its process group) and exits 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from pydantic import SecretStr

from provcfg._errors import ManifestError, ManifestReadError, ProvcfgError, ProviderError

if TYPE_CHECKING:
    from provcfg._manifest import Manifest

__all__ = ["EXIT_CODES", "RunOptions", "exit_code_for", "run"]

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
            provider = rt.provider(opts.provider)
        except ProvcfgError:
            raise
        except Exception as exc:
            # The kind's factory (a plugin's: third-party code) failed. Only the type is
            # shown, as its message may hold spec values.
            name = (
                opts.provider or rt.manifest.default_provider or next(iter(rt.manifest.providers))
            )
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
        line = [f"run={attempt}"]
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


def run(opts: RunOptions, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Stream ``opts.prompt`` and return the exit code (see :data:`EXIT_CODES`)."""
    try:
        return asyncio.run(_stream(opts, out, err))
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
