"""Single-flight: concurrent callers asking for the same key share one computation.

Used for provider creation. The first caller for a key runs the function; every
caller that arrives while it runs (from any thread) waits for that run and gets
the same result or the same exception. A failure is not cached: once the run is
over, the next caller starts a new one. Waiters never re-run a failed creation
one after another.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Deduplicate concurrent calls per key across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, concurrent.futures.Future[T]] = {}

    def run(self, key: Hashable, fn: Callable[[], T]) -> T:
        """Return ``fn()``, sharing one call among concurrent callers of ``key``.

        Raises:
            BaseException: whatever ``fn`` raised, to every caller of that run.
        """
        with self._lock:
            future = self._running.get(key)
            owner = future is None
            if future is None:
                future = self._running[key] = concurrent.futures.Future()
        if not owner:
            return future.result()
        try:
            value = fn()
        except BaseException as exc:
            with self._lock:
                del self._running[key]
            future.set_exception(exc)
            raise
        with self._lock:
            del self._running[key]
        future.set_result(value)
        return value
