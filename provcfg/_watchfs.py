"""Watching the manifest's folder (and the resolved CLIs' folders) without going deaf.

A watch on the file itself stops hearing after the first atomic save (the file it
watched was replaced), so :class:`FolderWatcher` watches *folders* with
``watchfiles.awatch`` (non-recursive) and a filter decides which changes matter:

* the manifest's own name in its folder: in-place writes, truncate-then-write,
  temp-file-and-rename saves (vim, JetBrains safe write, VS Code, ``os.replace``),
  delete-then-recreate;
* names starting with ``..`` in that folder: the Kubernetes ConfigMap layout, where
  ``providers.yaml -> ..data/providers.yaml`` and an update atomically renames the
  ``..data`` symlink to a new ``..2026_xx`` folder, so no event ever names the file;
* every hop of a symlink chain (a link into a subfolder or another folder, which may
  itself be a ConfigMap volume): each hop's folder is watched too, and the chain is
  followed again after every change, so a re-pointed link is followed;
* anything in the folders of resolved CLI binaries (replaced or removed on disk).

The set of folders can change (a symlink re-pointed, a CLI resolved for the first
time): :meth:`FolderWatcher.refresh` restarts the watch when it does, and the
"ready" callback runs after every (re)start, once the new watch is listening, so
the caller can re-read the file and lose nothing that happened in the gap.
watchfiles is imported lazily: it costs ~55 ms, which ``provcfg validate`` must not pay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from provcfg._logs import get_logger

__all__ = ["FolderWatcher", "ManifestTarget"]

log = get_logger(__name__)

# A folder that cannot be watched (deleted, permission) is retried this often.
_RETRY_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class ManifestTarget:
    """Where a manifest lives, which folders to watch, and which changed paths concern it.

    Every hop of the symlink chain counts: ``providers.yaml -> ../shared/providers.yaml
    -> ..data/providers.yaml`` watches the manifest's folder and ``../shared``, and a
    change to any hop, or to a ``..``-name (a ConfigMap's ``..data`` swap) in a watched
    folder, concerns the manifest. Build a new one after each change: a re-pointed
    symlink leads elsewhere.
    """

    path: str
    links: frozenset[str]
    """The manifest's absolute path, every symlink hop after it, and the resolved file."""
    watched: frozenset[str]
    """The folders to watch: each hop's folder, cut before any ``..x`` component."""

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> ManifestTarget:
        """Describe ``path`` as it is on disk now (the symlink chain followed once)."""
        absolute = os.path.abspath(os.fspath(path))
        hops = _symlink_chain(absolute)
        watched = frozenset(_watchable(os.path.dirname(hop)) for hop in hops)
        return cls(absolute, frozenset(hops), watched)

    def folders(self) -> frozenset[str]:
        """The folders to watch for this manifest."""
        return self.watched

    def concerns(self, changed: str) -> bool:
        """Whether a change at ``changed`` may have changed the manifest's content."""
        if changed in self.links:
            return True
        parent, base = os.path.split(changed)
        return base.startswith("..") and parent in self.watched


def _symlink_chain(path: str) -> list[str]:
    """``path``, each symlink target it leads through, and its fully resolved form."""
    hops = [path]
    current = path
    for _ in range(40):  # the kernel's own limit on symlink hops
        try:
            target = os.readlink(current)
        except OSError:  # not a link (or gone): the chain ends here
            break
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
        hops.append(current)
    real = os.path.realpath(path)
    if real not in hops:
        hops.append(real)
    return hops


def _watchable(folder: str) -> str:
    """``folder`` cut before its first ``..x`` component (a ConfigMap's ``..data`` or
    ``..2026_xx``): those are swapped whole, so their parent is the folder that hears it."""
    parts = folder.split(os.sep)
    for index, part in enumerate(parts):
        if part.startswith("..") and part != "..":
            return os.sep.join(parts[:index]) or os.sep
    return folder


class _StopSignal:
    """The ``stop_event`` handed to watchfiles; its first poll says the watch is listening.

    watchfiles creates its inotify watches before it starts polling this object from
    its worker thread, so the first ``is_set()`` call proves events are being heard.
    It polls once per ``step``, as it checks for changes, so ``checked_at`` (the
    ``time.perf_counter()`` of the last poll) is when the watch last checked.
    """

    __slots__ = ("_loop", "_on_ready", "_polled", "_stopped", "checked_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_ready: Callable[[], None]) -> None:
        self._loop = loop
        self._on_ready = on_ready
        self._polled = False
        self._stopped = False
        self.checked_at: float | None = None

    def is_set(self) -> bool:
        self.checked_at = time.perf_counter()
        if not self._polled:
            self._polled = True
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._on_ready)
        return self._stopped

    def set(self) -> None:
        self._stopped = True


class FolderWatcher:
    """Runs ``watchfiles.awatch`` over a changing set of folders until closed.

    ``folders()`` gives the wanted set; ``relevant(path)`` filters changes;
    ``on_changes(paths)`` receives each debounced batch; ``on_ready()`` runs after
    every (re)start once the watch is listening; ``on_tick()`` runs when nothing
    changed for ``tick`` seconds (a chance to :meth:`refresh`). ``debounce`` is the
    longest a burst is collected, ``step`` the quiet time that ends a batch.
    """

    def __init__(
        self,
        *,
        folders: Callable[[], frozenset[str]],
        relevant: Callable[[str], bool],
        on_changes: Callable[[list[str]], None],
        on_ready: Callable[[], None],
        on_tick: Callable[[], None] | None = None,
        debounce: float,
        step: float,
        tick: float = 1.0,
    ) -> None:
        self._folders = folders
        self._relevant = relevant
        self._on_changes = on_changes
        self._on_ready = on_ready
        self._on_tick = on_tick
        self._debounce_ms = max(1, round(debounce * 1000))
        self._step_ms = max(1, round(step * 1000))
        self._tick_ms = max(self._step_ms, round(tick * 1000))
        self._watching: frozenset[str] = frozenset()
        self._stop: _StopSignal | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_ready: asyncio.Event | None = None
        self._closed = False

    @property
    def watching(self) -> frozenset[str]:
        """The folders the current watch covers."""
        return self._watching

    @property
    def checked_at(self) -> float | None:
        """``time.perf_counter()`` when the watch last checked for changes (it checks
        every ``step``; a change is reported one step after the first check that saw
        it); None before its first check, while it restarts and once closed."""
        return None if self._stop is None or self._closed else self._stop.checked_at

    async def start(self, timeout: float = 10.0) -> None:
        """Start watching and return once the watch is listening.

        Raises:
            TimeoutError: the watch did not start within ``timeout`` seconds.
        """
        self._first_ready = asyncio.Event()
        self._task = asyncio.create_task(self._supervise(), name="provcfg-watch")
        async with asyncio.timeout(timeout):
            await self._first_ready.wait()

    def refresh(self) -> None:
        """Restart the watch if the wanted folders changed (cheap when they did not)."""
        if self._stop is not None and self._wanted() != self._watching:
            self._stop.set()

    async def aclose(self) -> None:
        """Stop watching and wait for watchfiles' worker thread to finish."""
        self._closed = True
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            # watchfiles notices the stop signal within one step; never cancel its thread.
            await self._task

    def _wanted(self) -> frozenset[str]:
        return frozenset(f for f in self._folders() if os.path.isdir(f))

    def _ready(self) -> None:
        if self._first_ready is not None:
            self._first_ready.set()
        if not self._closed:
            self._on_ready()

    def _filter(self, _change: object, path: str) -> bool:
        return self._relevant(path)

    async def _supervise(self) -> None:
        from watchfiles import awatch

        loop = asyncio.get_running_loop()
        while not self._closed:
            folders = self._wanted()
            self._watching = folders
            stop = self._stop = _StopSignal(loop, self._ready)
            if not folders:
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            try:
                batches = awatch(
                    *sorted(folders),
                    watch_filter=self._filter,
                    debounce=self._debounce_ms,
                    step=self._step_ms,
                    stop_event=stop,
                    rust_timeout=self._tick_ms,
                    yield_on_timeout=True,
                    recursive=False,
                )
                async with contextlib.aclosing(batches):
                    async for batch in batches:
                        if batch:
                            self._on_changes([path for _, path in batch])
                        elif self._on_tick is not None:
                            self._on_tick()
            except Exception as exc:  # a folder vanished, or watchfiles failed: never go deaf
                log.warning(
                    "watch_failed", folders=sorted(folders), error=f"{type(exc).__name__}: {exc}"
                )
                await asyncio.sleep(_RETRY_SECONDS)
