"""``provcfg stub`` / ``python -m provcfg.stub``: run the stub server until SIGINT or SIGTERM.

The port goes to ``--port-file`` once the server listens, written atomically (a
temporary file renamed into place), so a parent process polling for the file
never reads half a number.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

from provcfg._logs import get_logger
from provcfg.stub.config import SCENARIOS, StubConfig, StubError
from provcfg.stub.server import (
    DEFAULT_BACKLOG,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_REQUEST_TIMEOUT,
    StubServer,
)

__all__ = ["main"]

log = get_logger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provcfg stub",
        description="Loopback Anthropic/OpenAI-compatible stub API server (see docs/stub.md).",
    )
    defaults = StubConfig()
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port (default 8765); 0 picks a free one"
    )
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    parser.add_argument(
        "--backlog",
        type=int,
        default=DEFAULT_BACKLOG,
        help=f"connections queued before they are accepted, 1-65535 (default {DEFAULT_BACKLOG}, "
        "capped by the kernel's net.core.somaxconn)",
    )
    parser.add_argument(
        "--max-body-size",
        type=int,
        default=DEFAULT_MAX_BODY_SIZE,
        help=f"largest request body in bytes, 1024-1073741824 (default {DEFAULT_MAX_BODY_SIZE}); "
        "larger gets 413",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT,
        help="seconds from a request's first byte to its last "
        f"(default {DEFAULT_REQUEST_TIMEOUT:g}); slower gets 408",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT,
        help=f"seconds an idle keep-alive connection, or a client that stops reading, is kept "
        f"(default {DEFAULT_IDLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default=defaults.scenario,
        help="what every reply holds unless a request picks another (default text)",
    )
    parser.add_argument("--text", default=defaults.text, help="reply text (repeated to --length)")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=defaults.chunk_size,
        help=f"characters per delta, 1-65536 (default {defaults.chunk_size})",
    )
    parser.add_argument("--length", type=int, help="total reply length in characters")
    parser.add_argument("--deltas", type=int, help="number of text deltas (wins over --length)")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds between streamed events, 0-60"
    )
    parser.add_argument(
        "--echo-conversation",
        action="store_true",
        help="reply with a summary of the conversation received (see docs/stub.md)",
    )
    parser.add_argument(
        "--tool-name", default=defaults.tool_name, help="the tool the tool-use scenario calls"
    )
    parser.add_argument(
        "--tool-input", help='its input, a JSON object (default: {"location": ..., "unit": ...})'
    )
    return parser


def _write_port_file(path: Path, port: int) -> None:
    path = path.expanduser()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{port}\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def _run(server: StubServer, port_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        if port_file is not None:
            _write_port_file(port_file, server.port)
        log.info(
            "stub.listening", base_url=server.base_url, port=server.port, backlog=server.backlog
        )
        await stop.wait()
    log.info("stub.stopped", port=server.port)


def main(argv: list[str] | None = None) -> int:
    """Run the stub server until SIGINT/SIGTERM; return the process exit code.

    0 after a clean shutdown, 1 when the server cannot start (address in use,
    port file not writable), 2 for bad arguments (including a non-loopback host).
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage line
        return exc.code if isinstance(exc.code, int) else 2
    try:
        config = StubConfig(
            text=args.text,
            chunk_size=args.chunk_size,
            length=args.length,
            deltas=args.deltas,
            delay=args.delay,
            scenario=args.scenario,
            tool_name=args.tool_name,
            tool_input=args.tool_input,
            echo_conversation=args.echo_conversation,
        )
        server = StubServer(
            args.host,
            args.port,
            config,
            backlog=args.backlog,
            max_body_size=args.max_body_size,
            request_timeout=args.request_timeout,
            idle_timeout=args.idle_timeout,
        )
    except StubError as exc:
        print(f"provcfg stub: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_run(server, args.port_file))
    except StubError as exc:
        print(f"provcfg stub: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"provcfg stub: cannot write --port-file {args.port_file}: {exc}", file=sys.stderr)
        return 1
    return 0
