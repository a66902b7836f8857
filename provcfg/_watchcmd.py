"""``provcfg watch [FILE]``: the hot-reload loop as a command, one line per reload.

Each good save prints the new generation, every provider's fate (unchanged,
rebuilt, added, removed) and the save-to-live latency; a bad save prints its
problems as ``FILE:LINE:COL: loc: message`` (the form editors annotate) and says
which generation stays live. A file that is invalid or missing at start is
reported the same way and the command waits for the next save instead of exiting.
SIGINT and SIGTERM stop it with exit status 0. With ``--metrics-addr HOST:PORT`` it
also serves /metrics, /metrics.json, /healthz and /alerts of the watched file
(:func:`provcfg.serve_metrics`); the address is bound before anything else, so a port
in use is an error at once (exit status 2). The file is only ever read through
:func:`~provcfg._loading.read_manifest_file` (a FIFO or device saved over it is refused
without blocking), and its name is printed escaped, so it cannot forge a line.

With ``json_lines`` each report is one JSON object per line instead (the shape is
documented in docs/cli.md). Either way a rejected save is reported once: the library's
own ``config_reload_failed`` log event is left out of the command's log output, since
the report already says it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, TextIO

from provcfg._errors import (
    ManifestError,
    ManifestReadError,
    ProvcfgError,
    more_problems,
    printable,
)
from provcfg._loading import read_manifest_file
from provcfg._logs import quiet_events
from provcfg._reload import DEFAULT_DEBOUNCE, DEFAULT_STEP, LiveRuntime, ReloadEvent, watch
from provcfg._suggest import listing
from provcfg._watchfs import FolderWatcher, ManifestTarget

if TYPE_CHECKING:
    from provcfg._metrics import Metrics
    from provcfg._monitoring._alerts import AlertEvaluator

__all__ = ["run"]


def run(
    file: str,
    *,
    out: Any = None,
    err: Any = None,
    metrics_addr: tuple[str, int] | None = None,
    json_lines: bool = False,
) -> int:
    """Watch ``file`` until SIGINT or SIGTERM, printing one line (or JSON object) per report.

    Returns:
        0 when stopped by a signal; 2 when the file's folder does not exist or the
        metrics address cannot be bound.
    """
    stdout: TextIO = out if out is not None else sys.stdout
    stderr: TextIO = err if err is not None else sys.stderr
    folder = os.path.dirname(os.path.abspath(file))
    if not os.path.isdir(folder):
        _say(
            stderr,
            f"{printable(file)}: the folder {printable(folder)} does not exist; "
            "give the manifest's path",
        )
        return 2
    report = _Report(file, stdout, json_lines)
    proxy = _LiveProxy()
    handle = None
    if metrics_addr is not None:
        from provcfg._monitoring import serve_metrics

        try:
            handle = serve_metrics(proxy, host=metrics_addr[0], port=metrics_addr[1])
        except ProvcfgError as exc:
            _say(stderr, f"provcfg watch: --metrics-addr: {exc}")
            return 2
        report.metrics(f"{handle.url}/metrics")
    try:
        with quiet_events("config_reload_failed"):
            return asyncio.run(_main(file, report, proxy))
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return 0
    finally:
        if handle is not None:
            handle.close()


class _LiveProxy:
    """The metrics source of ``--metrics-addr``: the watched LiveRuntime once there is one."""

    def __init__(self) -> None:
        self.live: LiveRuntime | None = None
        self._blank: tuple[Metrics, AlertEvaluator] | None = None

    def _empty(self) -> tuple[Metrics, AlertEvaluator]:
        if self._blank is None:
            from provcfg._metrics import Metrics
            from provcfg._monitoring._alerts import AlertEvaluator

            metrics = Metrics()
            self._blank = (metrics, AlertEvaluator(metrics))
        return self._blank

    @property
    def metrics(self) -> Metrics:
        live = self.live
        return live.metrics if live is not None else self._empty()[0]

    @property
    def generation(self) -> int:
        live = self.live
        return live.generation if live is not None else 0

    @property
    def alerts(self) -> AlertEvaluator:
        live = self.live
        return live.alerts if live is not None else self._empty()[1]


def _say(stream: TextIO, line: str) -> None:
    print(line, file=stream, flush=True)


class _Report:
    """Writes what happens to stdout: text lines, or one JSON object per line."""

    def __init__(self, file: str, out: TextIO, json_lines: bool) -> None:
        self.file = file
        self.out = out
        self.json_lines = json_lines

    def _json(self, **fields: Any) -> None:
        _say(self.out, json.dumps({"file": self.file, **fields}, ensure_ascii=False))

    def metrics(self, url: str) -> None:
        if self.json_lines:
            self._json(type="metrics", url=url)
            return
        _say(self.out, f"{printable(self.file)}: metrics on {url}")

    def live(self, generation: int, providers: list[str]) -> None:
        if self.json_lines:
            self._json(type="live", generation=generation, providers=providers)
            return
        names = listing(providers, 10, ordered=True)
        _say(
            self.out,
            f"{printable(self.file)}: generation {generation} live ({names}); "
            "watching for changes, Ctrl-C to stop",
        )

    def reload(self, event: ReloadEvent) -> None:
        if self.json_lines:
            latency = None if event.latency_s is None else round(event.latency_s * 1000, 1)
            build = None if event.build_s is None else round(event.build_s * 1000, 1)
            self._json(
                type="reload",
                ok=event.ok,
                generation=event.generation,
                changes=dict(event.changes),
                latency_ms=latency,
                build_ms=build,
                problems=list(event.problems),
                more_problems=event.omitted,
                error=event.error,
            )
            return
        if not event.ok:
            for line in event.problems or (f"{printable(self.file)}: {printable(event.error)}",):
                _say(self.out, line)
            if event.omitted:
                _say(self.out, more_problems(event.omitted))
        _say(self.out, event.summary())

    def waiting(self, exc: ProvcfgError) -> None:
        lines = _error_lines(self.file, exc)
        if self.json_lines:
            problems = lines if isinstance(exc, ManifestError) else []
            self._json(type="waiting", problems=problems, error="; ".join(lines))
            return
        # The same stream as a rejected reload's problems: stdout is the report.
        for line in lines:
            _say(self.out, line)
        _say(self.out, f"{printable(self.file)}: waiting for a valid save")


async def _main(file: str, report: _Report, proxy: _LiveProxy) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        while not stop.is_set():
            # Read before the attempt: a save landing during it then counts as a change.
            before = await asyncio.to_thread(_digest, file)
            try:
                async with watch(file) as live:
                    proxy.live = live
                    report.live(live.generation, list(live.runtime.manifest.providers))
                    await _follow(live, stop, report)
            except ProvcfgError as exc:
                report.waiting(exc)
                await _wait_for_change(file, before, stop)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return 0


async def _follow(live: LiveRuntime, stop: asyncio.Event, report: _Report) -> None:
    async def printer() -> None:
        async for event in live.events():
            report.reload(event)

    task = asyncio.create_task(printer())
    try:
        await stop.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _error_lines(file: str, exc: ProvcfgError) -> list[str]:
    if isinstance(exc, ManifestError):
        lines = [str(p) for p in exc.problems]
        return [*lines, more_problems(exc.omitted)] if exc.omitted else lines
    return [printable(f"{file}: {' '.join(str(exc).split())}")]


def _digest(file: str) -> str | None:
    """The sha256 of the file's content as a manifest read sees it; None when unreadable.

    Read like every manifest (at most the size cap; a FIFO or device is refused without
    blocking), so waiting for a change never hangs and never reads a huge file whole.
    """
    try:
        return hashlib.sha256(read_manifest_file(file).data).hexdigest()
    except ManifestReadError:
        return None
    except ManifestError:  # over the size cap: its size and mtime stand for its content
        try:
            info = os.stat(file)
        except OSError:
            return None
        return f"too-large:{info.st_size}:{info.st_mtime_ns}"


async def _wait_for_change(file: str, before: str | None, stop: asyncio.Event) -> None:
    """Return once ``file``'s sha256 differs from ``before``, or ``stop`` is set."""
    changed = asyncio.Event()
    target = ManifestTarget.of(file)

    def check(_paths: object = None) -> None:
        if _digest(file) != before:
            changed.set()

    watcher = FolderWatcher(
        folders=target.folders,
        relevant=target.concerns,
        on_changes=check,
        on_ready=check,  # a save between the failure and the watch start counts too
        debounce=DEFAULT_DEBOUNCE,
        step=DEFAULT_STEP,
    )
    await watcher.start()
    try:
        waiters = [asyncio.create_task(changed.wait()), asyncio.create_task(stop.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
    finally:
        await watcher.aclose()
