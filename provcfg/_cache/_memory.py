"""A bounded, thread-safe in-process dogpile backend with LRU eviction.

dogpile's own ``dogpile.cache.memory`` backend is a plain dict with no size
limit. This one holds at most ``max_size`` entries, evicts the least recently
used one, and tells its owner about every value that leaves through
``on_discard(key, value)``, so a runtime that caches live provider instances
can close the one that leaves.

Reads take no lock: each ``OrderedDict`` operation is a single C call, atomic
under the GIL, and the one race (a writer removes the key between the read and
the ``move_to_end``) is handled as a miss. Writers serialize on one lock. On a
free-threaded interpreter the reader takes the lock too.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from dogpile.cache.api import NO_VALUE, CacheBackend, CachedValue

from provcfg._logs import get_logger

__all__ = ["BoundedMemoryBackend", "DiscardCallback"]

log = get_logger(__name__)

DiscardCallback = Callable[[str, Any], None]
"""``on_discard(key, value)``: ``key`` as the backend stores it (mangled), ``value`` unwrapped."""


def _payload(value: Any) -> Any:
    # Regions store CachedValue(payload, metadata); owners care about the payload.
    return value.payload if isinstance(value, CachedValue) else value


class BoundedMemoryBackend(CacheBackend):
    """In-process LRU backend, registered with dogpile as ``provcfg.memory_lru``.

    Arguments (the ``arguments`` dict of ``CacheRegion.configure``):

    - ``max_size`` (int >= 1, default 1024): entries kept before the least
      recently used one is evicted.
    - ``on_discard`` (callable or None): called as ``on_discard(key, value)``
      after a value leaves the backend: evicted, replaced by a *different*
      object, deleted, or cleared. It runs outside the lock; an exception it
      raises is logged and swallowed so a cache write never fails because of it.

    Raises:
        ValueError: ``max_size`` is not an int >= 1, or ``on_discard`` is not callable.
    """

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        max_size = arguments.get("max_size", 1024)
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"max_size must be an int >= 1, got {max_size!r}")
        on_discard = arguments.get("on_discard")
        if on_discard is not None and not callable(on_discard):
            raise ValueError("on_discard must be callable or None")
        self.max_size: int = max_size
        self.evictions = 0
        """Entries evicted for space since the backend was made (read by the exporter)."""
        self._on_discard: DiscardCallback | None = on_discard
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
        if is_gil_enabled is not None and not is_gil_enabled():
            self.get = self._locked_get  # type: ignore[method-assign]

    def __len__(self) -> int:
        """Number of entries held now."""
        return len(self._data)

    def keys(self) -> list[str]:
        """Keys from least to most recently used (a copy)."""
        with self._lock:
            return list(self._data)

    def get(self, key: str) -> Any:
        """Return the stored value and mark it most recently used, or ``NO_VALUE``."""
        data = self._data
        try:
            value = data[key]
            data.move_to_end(key)
        except KeyError:
            return NO_VALUE
        return value

    def _locked_get(self, key: str) -> Any:
        with self._lock:
            data = self._data
            if key not in data:
                return NO_VALUE
            data.move_to_end(key)
            return data[key]

    def get_multi(self, keys: Iterable[str]) -> list[Any]:
        """Values for ``keys`` in order, ``NO_VALUE`` where absent."""
        get = self.get
        return [get(key) for key in keys]

    def set(self, key: str, value: Any) -> None:
        """Store ``value``; evict least recently used entries beyond ``max_size``."""
        with self._lock:
            discarded = self._put(key, value, [])
            self._trim(discarded)
        if discarded:
            self._discard(discarded)

    def set_multi(self, mapping: Mapping[str, Any]) -> None:
        """Store every item of ``mapping``, then evict beyond ``max_size``."""
        discarded: list[tuple[str, Any]] = []
        with self._lock:
            for key, value in mapping.items():
                self._put(key, value, discarded)
            self._trim(discarded)
        if discarded:
            self._discard(discarded)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present (``on_discard`` sees its value)."""
        with self._lock:
            value = self._data.pop(key, NO_VALUE)
        if value is not NO_VALUE:
            self._discard([(key, value)])

    def delete_multi(self, keys: Iterable[str]) -> None:
        """Remove every key of ``keys`` that is present."""
        discarded: list[tuple[str, Any]] = []
        with self._lock:
            for key in keys:
                value = self._data.pop(key, NO_VALUE)
                if value is not NO_VALUE:
                    discarded.append((key, value))
        if discarded:
            self._discard(discarded)

    def clear(self) -> None:
        """Remove every entry, oldest first (``on_discard`` sees each value)."""
        with self._lock:
            discarded = list(self._data.items())
            self._data.clear()
        if discarded:
            self._discard(discarded)

    def _put(self, key: str, value: Any, discarded: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        data = self._data
        old = data.get(key, NO_VALUE)
        if old is NO_VALUE:
            # Evict before inserting: lock-free readers (get, len) never see max_size + 1.
            while len(data) >= self.max_size:
                discarded.append(data.popitem(last=False))
        data[key] = value
        data.move_to_end(key)
        # A region re-setting the same object wraps it in a new CachedValue: not a discard.
        if old is not NO_VALUE and _payload(old) is not _payload(value):
            discarded.append((key, old))
        return discarded

    def _trim(self, discarded: list[tuple[str, Any]]) -> None:
        data = self._data
        while len(data) > self.max_size:
            discarded.append(data.popitem(last=False))
            self.evictions += 1

    def _discard(self, discarded: list[tuple[str, Any]]) -> None:
        on_discard = self._on_discard
        if on_discard is None:
            return
        for key, value in discarded:
            try:
                on_discard(key, _payload(value))
            except Exception as exc:  # the owner's close failing must not fail a cache write
                log.warning("cache_discard_failed", key=key, error=type(exc).__name__)
