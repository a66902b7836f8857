"""Parts a Runtime shares with the generations before and after it.

A :class:`SharedPart` wraps a region, pool, resolver or the provider store with a
reference count, so a reload reuses what did not change and closing an old
generation closes only what nothing newer uses. The :class:`ProviderStore` is the
providers cache region plus single-flight creation; it closes an instance that
leaves the region (eviction, expiry, reload) only once its streams have finished.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from provcfg._providers.base import Provider
from provcfg._singleflight import SingleFlight

if TYPE_CHECKING:
    from dogpile.cache.region import CacheRegion

    from provcfg._runtime import Runtime

__all__ = ["REFS_LOCK", "ProviderStore", "SharedPart", "close_store"]

log = structlog.get_logger(__name__)


class SharedPart:
    """A part reused across generations; closed when the last runtime using it lets go."""

    __slots__ = ("closer", "digest", "obj", "refs")

    def __init__(self, obj: Any, digest: str, closer: Callable[[Any], Any]) -> None:
        self.obj = obj
        self.digest = digest
        self.closer = closer
        self.refs = 1


REFS_LOCK = threading.Lock()
"""Guards every SharedPart.refs (parts move between generations built in threads)."""


@dataclass
class ProviderStore:
    """The providers region plus single-flight creation; shared across generations.

    Instances are stored in the region under ``name:specdigest``. When the region
    lets go of one (LRU eviction, expiry replacement, delete), :meth:`discarded`
    drops it from every runtime's fast path and closes it once its in-flight
    streams have finished (:meth:`close_soon`).
    """

    region: CacheRegion
    ttl: float | None
    flights: SingleFlight[Provider] = field(default_factory=SingleFlight)
    runtimes: list[Runtime] = field(default_factory=list)
    users: dict[str, int] = field(default_factory=dict)
    # Re-entrant: a region.set under it may evict, and the discard callback takes it too.
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Closes in progress: asyncio tasks (on the loop that discarded the instance) and
    # futures of the closer thread. Owned here, not module-wide: one store per lineage.
    closing: set[Any] = field(default_factory=set)
    closer: concurrent.futures.ThreadPoolExecutor | None = None
    closed: bool = False

    def discarded(self, key: str, value: Any) -> None:
        for rt in list(self.runtimes):
            for name, provider in list(rt._live.items()):
                if provider is value:
                    rt._live.pop(name, None)
        self.close_soon(value)

    def close_soon(self, provider: Any) -> None:
        """Close ``provider`` once it is idle, from whatever context we are in.

        In a running loop: a task on that loop. Without one: at once when no stream
        is in flight, else in the store's closer thread (never blocking the caller,
        which may be a thread evicting an instance another loop is streaming from).
        """
        if getattr(provider, "aclose", None) is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            task = loop.create_task(_idle_then_close(provider))
            with self.lock:
                self.closing.add(task)
            task.add_done_callback(lambda t: self._task_done(t, provider))
        elif not getattr(provider, "inflight", 0):
            asyncio.run(provider.aclose())
        else:
            self._in_closer_thread(provider)

    def _task_done(self, task: asyncio.Task[Any], provider: Any) -> None:
        with self.lock:
            self.closing.discard(task)
        if task.cancelled():
            # Its loop shut down (asyncio.run cancels what is left) before the close ran.
            self._in_closer_thread(provider)

    def _in_closer_thread(self, provider: Any) -> None:
        with self.lock:
            if self.closer is None:
                self.closer = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="provcfg-close"
                )
            future = self.closer.submit(asyncio.run, _idle_then_close(provider))
            self.closing.add(future)
        future.add_done_callback(self._future_done)

    def _future_done(self, future: concurrent.futures.Future[Any]) -> None:
        with self.lock:
            self.closing.discard(future)

    async def drain(self) -> None:
        """Wait for the closes this loop can wait for: its own tasks and the closer thread's.

        Tasks of other loops are left to those loops (awaiting them here would fail);
        if such a loop shuts down first, the close moves to the closer thread.
        """
        current = asyncio.get_running_loop()
        while True:
            with self.lock:
                pending = [
                    item
                    for item in self.closing
                    if not isinstance(item, asyncio.Task) or item.get_loop() is current
                ]
            if not pending:
                return
            waits = [
                item if isinstance(item, asyncio.Task) else asyncio.wrap_future(item)
                for item in pending
            ]
            await asyncio.gather(*waits, return_exceptions=True)


async def _idle_then_close(provider: Any) -> None:
    wait_idle = getattr(provider, "wait_idle", None)
    if wait_idle is not None:
        await wait_idle()
    try:
        await provider.aclose()
    except Exception as exc:  # one failing plugin must not stop the others closing
        log.warning(
            "provider_close_failed", provider=getattr(provider, "name", "?"), error=repr(exc)
        )


async def close_store(store: ProviderStore) -> None:
    from provcfg._cache import close_region

    # Closing a memory region clears it, and on_discard closes every instance it held.
    # Marked closed first, under the lock a creation stores under: nothing created
    # later can slip into the cleared region unclosed.
    with store.lock:
        store.closed = True
        close_region(store.region)
    await store.drain()
    if store.closer is not None:
        await asyncio.to_thread(store.closer.shutdown, True)
