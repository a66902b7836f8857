"""Hot reload: watch ``providers.yaml``, validate, build, swap, and drain the old runtime.

::

    async with provcfg.watch("providers.yaml") as live:
        live.runtime                  # the current Runtime: a plain attribute, swapped whole
        live.generation, live.last_error
        event = await live.reload_event()      # or: async for event in live.events()
        await live.reload()                    # re-check now (what a file change triggers)

One reload, the same path every time (Caddy and Envoy do it this way):

1. a debounced batch from the folder watcher (:mod:`provcfg._watchfs`) marks the
   file dirty and the reloader task re-reads it; attempts (the reloader's and
   :meth:`LiveRuntime.reload`'s) hold one lock, so at most one runs at a time and
   each reads the file as it is when it starts: the latest content wins;
2. read the bytes and hash them (sha256): content identical to what is live, or to
   what was just rejected, does nothing;
3. in a worker thread: parse and validate, then ``Runtime.build(manifest, previous=
   current)``, which reuses every region, pool and provider whose spec is unchanged;
4. swap ``live.runtime`` (one attribute store: a reader sees the old or the new
   runtime, never a mix), publish a :class:`ReloadEvent`, and close the old runtime
   in the background: it waits for the streams still running on it, never a fixed
   grace period. A replaced runtime whose stream never ends delays only its own
   closing; ``aclose()`` waits for such runtimes at most ``drain_timeout`` seconds,
   then leaves them to finish in the background and logs ``runtime_drain_abandoned``.

Any failure (syntax, schema, a missing variable, an empty or missing file mid-save, an
eager provider whose CLI is missing) keeps the last good runtime live, sets
``last_error``, logs one event with file:line problems and no secret, and counts it;
the next good save recovers. Metrics (shared by every generation): counters
``reload_success`` / ``reload_failure`` / ``reload_unchanged`` (a change event whose
content was identical, or already rejected), the series ``reload_seconds`` (save to live),
and the values ``config_last_reload_successful``, ``config_last_reload_success_timestamp``,
``config_generation`` and ``config_last_reload_error``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Final

from provcfg._errors import ManifestError, ProvcfgError
from provcfg._logs import get_logger
from provcfg._reloadevents import EventHub, ReloadEvent, error_text, problem_lines, scrub
from provcfg._reloadstep import MISSING, Attempt, read_and_build
from provcfg._watchfs import FolderWatcher, ManifestTarget

if TYPE_CHECKING:
    from provcfg._clipath import CLIResolver
    from provcfg._kinds import KindRegistry
    from provcfg._metrics import Metrics
    from provcfg._monitoring._alerts import AlertEvaluator
    from provcfg._resilience import Breakers
    from provcfg._runtime import Runtime

__all__ = ["LiveRuntime", "ReloadEvent", "watch"]

log = get_logger(__name__)

DEFAULT_DEBOUNCE: Final = 0.2
"""Longest a burst of changes is collected before reloading (watchfiles' default: 1.6 s)."""
DEFAULT_STEP: Final = 0.03
"""Quiet time that ends a batch: a single save is noticed within about two steps."""
DEFAULT_DRAIN_TIMEOUT: Final = 30.0
"""Longest ``aclose()`` waits for replaced runtimes whose streams are still running."""
# A save-time (mtime) further in the past than this was preserved by the writer (cp -p,
# an archive): measure from when the change was noticed instead.
_PLAUSIBLE_SAVE_AGE: Final = 30.0


class LiveRuntime:
    """A Runtime kept current with its manifest file; make one with :func:`watch`.

    ``runtime`` is the current :class:`~provcfg._runtime.Runtime` (read it each time you
    need it; a stream already started keeps its own snapshot). ``last_error`` is the
    failure of the latest attempt, or None once a good save is live.
    """

    runtime: Runtime
    last_error: ProvcfgError | None

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None = None,
        registry: KindRegistry | None = None,
        debounce: float = DEFAULT_DEBOUNCE,
        step: float = DEFAULT_STEP,
        drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT,
    ) -> None:
        """Internal: use :func:`watch`."""
        self.path = Path(path)
        self.file = os.fspath(path)
        self.last_error = None
        self._environ = environ
        self._registry = registry
        self._debounce = debounce
        self._step = step
        self._drain_timeout = drain_timeout
        self._target = ManifestTarget.of(path)
        self._cli_dirs: frozenset[str] = frozenset()
        self._good_digest: str | None = None
        self._rejected_digest: str | None = None
        self._dirty = asyncio.Event()
        self._noticed_at = time.time()
        self._closing = False
        self._started = False
        self._watcher: FolderWatcher | None = None
        self._reloader: asyncio.Task[None] | None = None
        # One attempt at a time (the reloader's or reload()'s): the latest content wins.
        self._attempt_lock = asyncio.Lock()
        self._close_task: asyncio.Task[None] | None = None
        self._retiring: dict[asyncio.Task[None], int] = {}  # closing task -> generation
        self._hub = EventHub()

    @property
    def metrics(self) -> Metrics:
        """The metrics shared by every generation (counters survive reloads)."""
        return self.runtime.metrics

    @property
    def alerts(self) -> AlertEvaluator:
        """The alert evaluator (``live.alerts.subscribe(callback)``), shared across reloads."""
        return self.runtime.alerts

    @property
    def breakers(self) -> Breakers:
        """The circuit breakers (``live.breakers.subscribe(callback)``), shared across reloads."""
        return self.runtime.breakers

    @property
    def generation(self) -> int:
        """The live runtime's generation (1 for the first load, +1 per good reload)."""
        return self.runtime.generation

    @property
    def watched_folders(self) -> frozenset[str]:
        """The folders watched now: the manifest's, plus those of the resolved CLIs."""
        return self._watcher.watching if self._watcher is not None else frozenset()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> LiveRuntime:
        """Load generation 1 and start watching.

        Raises:
            ManifestError: the file is missing, empty or invalid at start.
            ProvcfgError: the first runtime could not be built.
        """
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Load generation 1, start the watcher and the reloader (``async with`` does this).

        Raises:
            ManifestError: the file is missing, empty or invalid at start.
            ProvcfgError: the first runtime could not be built.
        """
        if self._started:
            return
        if self._registry is None:
            from provcfg._kinds import KindRegistry

            self._registry = await asyncio.to_thread(KindRegistry.discover)
        attempt = await self._in_worker(None)
        if attempt.error is not None:
            raise attempt.error
        assert attempt.runtime is not None
        self.runtime = attempt.runtime
        self._good_digest = attempt.digest
        self._started = True
        self._record_success(time.time())
        self._reloader = asyncio.create_task(self._reload_loop(), name="provcfg-reload")
        self._watcher = FolderWatcher(
            folders=self._folders,
            relevant=self._relevant,
            on_changes=self._on_changes,
            # Re-hash once the watch listens, so an edit made while starting is not lost.
            on_ready=self._poke,
            on_tick=self._on_tick,
            debounce=self._debounce,
            step=self._step,
        )
        try:
            await self._watcher.start()
        except BaseException:
            await self.aclose()
            raise
        log.info("watch_started", file=self.file, generation=self.generation)

    async def aclose(self) -> None:
        """Stop watching, close the current runtime and wait for the replaced ones.

        Idempotent and safe to cancel: the closing runs in its own task, so cancelling
        the caller (a timeout around ``aclose()``) does not stop it half-way, and a later
        ``aclose()`` waits for the same closing. An attempt building in a worker thread
        is finished and its runtime closed, never swapped in. Runtimes still streaming
        are waited for at most ``drain_timeout`` seconds (see :func:`watch`).
        """
        self._closing = True
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(
                self._close(), name="provcfg-watch-close"
            )
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        if self._watcher is not None:
            await self._watcher.aclose()
        if self._reloader is not None:
            self._dirty.set()
            await self._reloader
        if self._started:
            self._retire_soon(self.runtime)
        await self._drain_bounded()
        self._hub.close()

    async def drain(self) -> None:
        """Wait until every replaced runtime has finished closing (its streams done)."""
        while self._retiring:
            await asyncio.gather(*list(self._retiring), return_exceptions=True)

    async def _drain_bounded(self) -> None:
        if not self._retiring:
            return
        _done, pending = await asyncio.wait(list(self._retiring), timeout=self._drain_timeout)
        if pending:
            # A stream that never ends (a consumer holding an unfinished generator) must
            # not hold aclose() forever; its runtime still closes when that stream ends.
            log.warning(
                "runtime_drain_abandoned",
                file=self.file,
                generations=sorted(self._retiring[task] for task in pending),
                waited_s=self._drain_timeout,
            )

    # ------------------------------------------------------------------ events

    async def reload_event(self, timeout: float | None = None) -> ReloadEvent:
        """Wait for the next reload attempt's outcome (good or bad).

        Raises:
            TimeoutError: nothing happened within ``timeout`` seconds.
            RuntimeClosedError: the watch was closed.
        """
        return await self._hub.next(timeout)

    async def events(self) -> AsyncIterator[ReloadEvent]:
        """Every reload outcome from the first iteration on, until the watch closes.

        A reader that falls more than 256 events behind loses the oldest ones.
        """
        async for event in self._hub.subscribe():
            yield event

    async def wait_for_generation(self, generation: int, timeout: float = 10.0) -> Runtime:
        """Wait until ``generation`` (or a newer one) is live and return that runtime.

        Raises:
            TimeoutError: not reached within ``timeout`` seconds (the message holds the
                last error, if any).
            RuntimeClosedError: the watch was closed.
        """
        try:
            async with asyncio.timeout(timeout):
                while self.generation < generation:
                    await self.reload_event()
        except TimeoutError:
            last = f"; last error: {self.last_error}" if self.last_error else ""
            raise TimeoutError(
                f"generation {generation} not live after {timeout:g}s "
                f"(live: {self.generation}){last}"
            ) from None
        return self.runtime

    # ------------------------------------------------------------------ watching

    def _folders(self) -> frozenset[str]:
        # Follow the symlink chain again: a re-pointed link leads to another folder.
        self._target = ManifestTarget.of(self.path)
        resolver = self._resolver()
        if resolver is not None:
            self._cli_dirs = frozenset(os.fspath(d) for d in resolver.watched_dirs())
        return self._target.folders() | self._cli_dirs

    def _resolver(self) -> CLIResolver | None:
        # The CLI resolver is shared by every generation of the lineage.
        runtime = getattr(self, "runtime", None)
        return runtime.cli_resolver if runtime is not None else None

    def _relevant(self, path: str) -> bool:
        return self._target.concerns(path) or os.path.dirname(path) in self._cli_dirs

    def _on_changes(self, paths: list[str]) -> None:
        resolver = self._resolver()
        for path in paths:
            if self._target.concerns(path):
                self._poke()
            if resolver is not None and os.path.dirname(path) in self._cli_dirs:
                # The resolved binary was replaced or removed: detect it again on next use.
                resolver.invalidate(path)

    def _on_tick(self) -> None:
        # Lazy providers resolve their CLI on first use: pick up new folders to watch.
        if self._watcher is not None:
            self._watcher.refresh()

    def _poke(self) -> None:
        if not self._dirty.is_set():
            self._noticed_at = time.time()
            self._dirty.set()

    # ------------------------------------------------------------------ reloading

    async def reload(self) -> ReloadEvent | None:
        """Re-read the file now and reload it if its content changed (what a save triggers).

        For file systems whose changes are not reported (some network and container
        mounts) or a SIGHUP handler. It waits for an attempt already running, so the
        content it reads is at least as new as the file was when it was called.

        Returns:
            The outcome's :class:`ReloadEvent`, or None when the content is already live
            or was already rejected (nothing to do), or the watch is closing.

        Raises:
            RuntimeError: the watch was not started.
        """
        if not self._started:
            raise RuntimeError("reload() needs a started watch: use `async with watch(...)`")
        return await self._attempt(time.time())

    async def _reload_loop(self) -> None:
        while True:
            await self._dirty.wait()
            if self._closing:
                return
            self._dirty.clear()
            try:
                await self._attempt(self._noticed_at)
            except Exception as exc:  # a bug here must not silence every later save
                log.error("reload_crashed", file=self.file, error=_describe(exc))
            if self._watcher is not None:
                self._watcher.refresh()

    async def _attempt(self, noticed_at: float) -> ReloadEvent | None:
        async with self._attempt_lock:
            if self._closing:
                return None
            attempt = await self._in_worker(self.runtime)
            if self._closing:  # aclose() began while this was building: never swap it in
                if attempt.runtime is not None:
                    await attempt.runtime.aclose()
                return None
            return self._apply(attempt, noticed_at)

    async def _in_worker(self, previous: Runtime | None) -> Attempt:
        """One attempt in a worker thread; if we are cancelled, what it builds is closed.

        Never raises but CancelledError: a failure of any type is a failed attempt.
        """
        loop = asyncio.get_running_loop()
        try:
            work = loop.run_in_executor(None, self._read_and_build, previous)
        except RuntimeError as exc:  # the executor is shut down: the interpreter is exiting
            return Attempt(MISSING, error=ProvcfgError(f"reload failed: {_describe(exc)}"))
        try:
            # Shielded: cancelling us must not orphan the runtime the thread is building.
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(_close_abandoned)
            raise
        except Exception as exc:  # read_and_build returns its errors; this is the last net
            return Attempt(MISSING, error=ProvcfgError(f"reload failed: {_describe(exc)}"))

    def _read_and_build(self, previous: Runtime | None) -> Attempt:
        return read_and_build(
            self.file,
            previous,
            skip=(self._good_digest, self._rejected_digest),
            environ=self._environ,
            registry=self._registry,
        )

    def _apply(self, attempt: Attempt, noticed_at: float) -> ReloadEvent | None:
        """Swap in a good attempt or record a bad one (on the event loop, no await)."""
        if attempt.skipped:
            self.runtime.metrics.incr("reload_unchanged")
            if attempt.digest == self._good_digest and self.last_error is not None:
                # The live content is back (recreated after a delete): nothing to rebuild.
                self._record_success(time.time())
                back = self._event(True, changes={}, latency=None, digest=attempt.digest)
                self._hub.publish(back)
                return back
            return None
        if attempt.error is not None:
            return self._record_failure(attempt)
        assert attempt.runtime is not None
        new, old = attempt.runtime, self.runtime
        self.runtime = new
        now = time.time()
        self._good_digest = attempt.digest
        self._rejected_digest = None
        latency = _latency(now, attempt.saved_at, noticed_at)
        self._record_success(now, latency)
        event = self._event(
            True,
            changes=dict(new.changes),
            latency=latency,
            digest=attempt.digest,
            # now - max(saved_at, noticed_at): a save made after the notice but before the
            # read is built by this attempt, and its own latency starts at the save.
            build=min(latency, max(0.0, now - noticed_at)),
        )
        log.info(
            "config_reloaded",
            file=self.file,
            generation=new.generation,
            changes=dict(new.changes),
            latency_ms=round(latency * 1000, 1),
            build_ms=round((event.build_s or 0.0) * 1000, 1),
        )
        self._hub.publish(event)
        self._retire_soon(old)
        return event

    def _retire_soon(self, old: Runtime) -> None:
        """Close ``old`` in its own task: it waits for its streams, and nothing waits on it."""
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._retiring[task] = old.generation
        task.add_done_callback(self._forget_retired)

    def _forget_retired(self, task: asyncio.Task[None]) -> None:
        self._retiring.pop(task, None)

    async def _retire(self, old: Runtime) -> None:
        try:
            await old.aclose()
        except Exception as exc:  # closing must never take the watch down
            log.warning("runtime_close_failed", generation=old.generation, error=_describe(exc))

    def _record_success(self, now: float, latency: float | None = None) -> None:
        self.last_error = None
        metrics = self.runtime.metrics
        if latency is not None:
            metrics.incr("reload_success")
            metrics.observe("reload_seconds", latency)
        metrics.set("config_generation", self.runtime.generation)
        metrics.set("config_last_reload_successful", 1)
        metrics.set("config_last_reload_success_timestamp", now)
        metrics.set("config_last_reload_error", "")
        metrics.set("config_reload_failing_since", None)
        if self.runtime.monitoring is not None:
            self.runtime.monitoring.trace_reload(
                ok=True, generation=self.runtime.generation, seconds=latency
            )

    def _record_failure(self, attempt: Attempt) -> ReloadEvent:
        assert attempt.error is not None
        error = attempt.error
        # Content-caused failures are not retried for identical content; a build failure
        # (a CLI not installed yet) may pass on the next save of the same text.
        if isinstance(error, ManifestError):
            self._rejected_digest = attempt.digest
        self.last_error = error
        manifest = self.runtime.manifest
        problems = tuple(scrub(line, manifest, self._environ) for line in problem_lines(error))
        text = scrub(error_text(error), manifest, self._environ)
        metrics = self.runtime.metrics
        metrics.incr("reload_failure")
        metrics.set("config_last_reload_successful", 0)
        metrics.set("config_last_reload_error", text)
        if metrics.value("config_reload_failing_since") is None:
            metrics.set("config_reload_failing_since", time.time())
        if self.runtime.monitoring is not None:
            self.runtime.monitoring.trace_reload(ok=False, generation=self.generation, seconds=None)
        log.warning(
            "config_reload_failed",
            file=self.file,
            generation=self.generation,
            error=text,
            problems=list(problems),
        )
        event = self._event(
            False,
            changes={},
            latency=None,
            digest=attempt.digest,
            problems=problems,
            error=text,
            omitted=error.omitted if isinstance(error, ManifestError) else 0,
        )
        self._hub.publish(event)
        return event

    def _event(
        self,
        ok: bool,
        *,
        changes: dict[str, str],
        latency: float | None,
        digest: str,
        problems: tuple[str, ...] = (),
        error: str = "",
        omitted: int = 0,
        build: float | None = None,
    ) -> ReloadEvent:
        return ReloadEvent(
            generation=self.generation,
            ok=ok,
            changes=MappingProxyType(changes),
            latency_s=latency,
            problems=problems,
            error=error,
            timestamp=time.time(),
            digest=digest,
            omitted=omitted,
            build_s=build,
        )


def watch(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    registry: KindRegistry | None = None,
    debounce: float = DEFAULT_DEBOUNCE,
    step: float = DEFAULT_STEP,
    drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT,
) -> LiveRuntime:
    """Keep a Runtime live for the manifest at ``path``, reloading it on every good save.

    Use it as ``async with provcfg.watch(path) as live:``; entering loads generation 1
    and starts watching ``path``'s folder; leaving stops watching, closes the current
    runtime and waits for the replaced ones. ``environ`` and ``registry`` are passed to
    the loader (defaults: ``os.environ`` at each reload, the discovered kinds).
    ``debounce`` (seconds) caps how long a burst of changes is collected; ``step``
    (seconds) is the quiet time that ends a batch. ``drain_timeout`` (seconds, None for
    no limit) caps how long leaving waits for replaced runtimes whose streams are still
    running; they keep closing in the background when their streams end.

    Returns:
        An unstarted :class:`LiveRuntime` (an async context manager).

    Raises (on entering):
        ManifestError: the file is missing, empty or invalid at start.
        ProvcfgError: the first runtime could not be built.
    """
    return LiveRuntime(
        path,
        environ=environ,
        registry=registry,
        debounce=debounce,
        step=step,
        drain_timeout=drain_timeout,
    )


def _latency(now: float, saved_at: float | None, noticed_at: float) -> float:
    if saved_at is not None and 0.0 <= now - saved_at <= _PLAUSIBLE_SAVE_AGE:
        return now - saved_at
    return max(0.0, now - noticed_at)


def _close_abandoned(work: asyncio.Future[Attempt]) -> None:
    """Close the runtime an attempt built after its caller was cancelled (never leak it)."""
    if work.cancelled() or work.exception() is not None:
        return
    runtime = work.result().runtime
    if runtime is not None:
        # A thread of its own: the loop may be shutting down (asyncio.run cancelling tasks).
        threading.Thread(
            target=asyncio.run, args=(runtime.aclose(),), name="provcfg-close-abandoned"
        ).start()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
