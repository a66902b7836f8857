"""The provider store: the provider instances and handles of one runtime lineage, and their lives.

One :class:`ProviderStore` is shared by the generations of a runtime while the
``providers`` cache region's spec is unchanged. It owns, behind its methods:

* **handles**, one per provider spec (``name:digest``), with the number of
  generations using each (:meth:`register` / :meth:`unregister`); a spec no
  generation uses any more is *retired* (:meth:`retire`): its handle closes once the
  streams on its instance have finished;
* **instances**, kept in the ``providers`` region (bounded LRU, optional ``ttl``) and
  created on demand, single-flight (:meth:`acquire`: fifty threads asking at once
  create one). When the region lets go of an instance (eviction, expiry, deletion)
  the store tells its handle and closes the instance once its streams have finished
  (:meth:`close_soon`), from whatever thread or loop it happens in.

Generations know the store; the store knows no generation. It never imports the runtime.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dogpile.cache.api import NO_VALUE

from provcfg._cache import build_region, close_region
from provcfg._errors import RuntimeClosedError
from provcfg._handle import ProviderHandle
from provcfg._logs import get_logger
from provcfg._providers.base import Provider
from provcfg._singleflight import SingleFlight

if TYPE_CHECKING:
    from dogpile.cache.region import CacheRegion

    from provcfg._manifest import MemoryRegionSpec
    from provcfg._metrics import Metrics

__all__ = ["PROVIDERS_REGION", "ProviderStore"]

log = get_logger(__name__)

PROVIDERS_REGION = "providers"


class ProviderStore:
    """Handles and instances shared across generations (see the module docstring)."""

    def __init__(self, spec: MemoryRegionSpec, metrics: Metrics) -> None:
        self._ttl: float | None = spec.ttl
        self.metrics = metrics
        self.region: CacheRegion = build_region(
            PROVIDERS_REGION,
            spec,
            namespace="instances",
            metrics=metrics,
            on_discard=self._discarded,
        )
        self._flights: SingleFlight[Provider] = SingleFlight()
        # Re-entrant: a region.set under it may evict, and the discard callback takes it too.
        self._lock = threading.RLock()
        self._handles: dict[str, ProviderHandle] = {}
        self._users: dict[str, int] = {}
        self._owner: dict[int, ProviderHandle] = {}  # id(instance in the region) -> its handle
        # Closes in progress: asyncio tasks (on the loop that discarded the instance) and
        # futures of the closer thread.
        self._closing: set[Any] = set()
        self._closer: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def ttl(self) -> float | None:
        """How long an instance serves before the region replaces it (None: until evicted)."""
        return self._ttl

    # ------------------------------------------------------------------ handles

    def register(
        self, name: str, kind: str, key: str, create: Callable[[], Provider]
    ) -> ProviderHandle:
        """A generation uses the spec ``key``: its handle (the existing one if it is live)."""
        with self._lock:
            handle = self._handles.get(key)
            if handle is None or handle.closed:
                handle = self._handles[key] = ProviderHandle(name, kind, key, create, self)
            self._users[key] = self._users.get(key, 0) + 1
            return handle

    def unregister(self, key: str) -> bool:
        """A generation stops using ``key``; True when no generation uses it now (retire it)."""
        with self._lock:
            left = self._users.get(key, 0) - 1
            if left > 0:
                self._users[key] = left
                return False
            self._users.pop(key, None)
            return True

    async def retire(self, key: str) -> None:
        """Close the handle of an unused spec and its instance, once its streams have ended.

        A generation built meanwhile may have registered ``key`` again (a reload back to
        that spec): then the handle and its instance stay.
        """
        handle = self._handles.get(key)
        if handle is None or self._users.get(key, 0) > 0:
            return
        await handle.wait_idle()
        with self._lock:
            if self._users.get(key, 0) > 0 or self._handles.get(key) is not handle:
                return
            del self._handles[key]
            handle.close()
            self.region.delete(key)

    # ------------------------------------------------------------------ instances

    def acquire(self, handle: ProviderHandle) -> Provider:
        """The instance for ``handle`` from the region, created (single-flight) on a miss.

        Raises:
            RuntimeClosedError: the store or the handle was closed meanwhile.
            Exception: whatever the kind's factory raised (shared by the concurrent callers,
                not remembered: the next call tries again).
        """
        key = handle.key

        def fetch_or_create() -> Provider:
            cached = self.region.get(key)
            if cached is not NO_VALUE:
                self.metrics.incr("provider_cache_hit", handle.name)
                return cached  # type: ignore[no-any-return]
            self.metrics.incr("provider_cache_miss", handle.name)
            with self.metrics.timed("provider_create_seconds", handle.name):
                instance = handle.create()
            with self._lock:
                if not self._closed and not handle.closed and self._users.get(key, 0) > 0:
                    self._owner[id(instance)] = handle
                    self.region.set(key, instance)
                    return instance
            # Closed while we created it: nobody would ever close this instance.
            self.close_soon(instance)
            raise RuntimeClosedError(
                f"provider {handle.name!r}: the runtime closed while it was being created"
            )

        return self._flights.run(key, fetch_or_create)

    def discard(self, key: str, instance: Provider) -> None:
        """Let go of ``instance`` now if it is the one stored under ``key``."""
        with self._lock:
            if self.region.get(key, ignore_expiration=True) is instance:
                self.region.delete(key)

    def _discarded(self, _stored_key: str, value: Any) -> None:
        # The region let go of an instance: evicted, replaced after its ttl, deleted, cleared.
        with self._lock:
            handle = self._owner.pop(id(value), None)
        if handle is not None:
            handle.dropped(value)
        self.close_soon(value)

    def close_soon(self, provider: Provider) -> None:
        """Close ``provider`` once it is idle, from whatever context we are in.

        In a running loop: a task on that loop. Without one: at once when no stream
        is in flight, else in the store's closer thread (never blocking the caller,
        which may be a thread evicting an instance another loop is streaming from).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            task = loop.create_task(_idle_then_close(provider))
            with self._lock:
                self._closing.add(task)
            task.add_done_callback(lambda t: self._task_done(t, provider))
        elif not provider.inflight:
            asyncio.run(_idle_then_close(provider))
        else:
            self._in_closer_thread(provider)

    def _task_done(self, task: asyncio.Task[Any], provider: Provider) -> None:
        with self._lock:
            self._closing.discard(task)
        if task.cancelled():
            # Its loop shut down (asyncio.run cancels what is left) before the close ran.
            self._in_closer_thread(provider)

    def _in_closer_thread(self, provider: Provider) -> None:
        with self._lock:
            if self._closer is None:
                self._closer = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="provcfg-close"
                )
            future = self._closer.submit(asyncio.run, _idle_then_close(provider))
            self._closing.add(future)
        future.add_done_callback(self._future_done)

    def _future_done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._closing.discard(future)

    @property
    def closer_started(self) -> bool:
        """Whether a close had to move to the store's closer thread (its loop had ended)."""
        return self._closer is not None

    async def drain(self) -> None:
        """Wait for the closes this loop can wait for: its own tasks and the closer thread's.

        Tasks of other loops are left to those loops (awaiting them here would fail);
        if such a loop shuts down first, the close moves to the closer thread.
        """
        current = asyncio.get_running_loop()
        while True:
            with self._lock:
                pending = [
                    item
                    for item in self._closing
                    if not isinstance(item, asyncio.Task) or item.get_loop() is current
                ]
            if not pending:
                return
            waits = [
                item if isinstance(item, asyncio.Task) else asyncio.wrap_future(item)
                for item in pending
            ]
            await asyncio.gather(*waits, return_exceptions=True)

    async def aclose(self) -> None:
        """Close every handle and instance (the last generation using the store let go)."""
        # Marked closed first, under the lock a creation stores under: nothing created
        # later can slip into the cleared region unclosed. Clearing the region discards,
        # and so closes, every instance it held.
        with self._lock:
            self._closed = True
            handles = list(self._handles.values())
            self._handles.clear()
            self._users.clear()
            for handle in handles:
                handle.close()
            close_region(self.region)
        await self.drain()
        if self._closer is not None:
            await asyncio.to_thread(self._closer.shutdown, True)


async def _idle_then_close(provider: Provider) -> None:
    await provider.wait_idle()
    try:
        await provider.aclose()
    except Exception as exc:  # one failing plugin must not stop the others closing
        log.warning("provider_close_failed", provider=provider.name, error=repr(exc))
