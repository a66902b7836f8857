"""The dogpile ProxyBackend in front of every shared (file, redis, memcached) backend.

It does three things, all at the backend boundary so the region code above
sees one behaviour whatever the server:

1. **Generation marker.** Each shared region has one marker key holding
   ``{built_at_ns}:{namespace}`` of the newest configuration that built it.
   Every read fetches the marker *with* the data keys in the same request
   (``MGET`` / ``get_multi`` / one dbm open), so checking it costs no extra
   round trip. If the marker names a newer configuration than ours, this
   process's entries are stale: from then on its reads are misses and its
   writes are skipped until it builds the region again. A missing or older
   marker is (re)published with one extra write. So a configuration change in
   one process invalidates the old generation for every process on the server.
2. **Errors.** A failing server degrades to a miss (writes are dropped), counts
   ``cache_error``, logs one warning when the outage starts and one info line
   when it ends, and backs off (0.5 s doubling to 30 s) before touching the
   server again, so an outage costs provider calls nothing but the cache.
   ``on_error="raise"`` raises :class:`provcfg._errors.CacheBackendError` instead.
3. **Timing.** Successful reads are observed as ``cache_get_seconds``.

No message or log line holds the server password: the server is named by
``host:port`` only and client error texts are scrubbed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from dogpile.cache.api import NO_VALUE
from dogpile.cache.proxy import ProxyBackend

from provcfg._errors import CacheBackendError
from provcfg._logs import get_logger
from provcfg._metrics import Metrics

__all__ = ["OnError", "SharedBackendProxy"]

log = get_logger(__name__)

OnError = Literal["miss", "raise"]

_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0


class SharedBackendProxy(ProxyBackend):
    """Generation check, error handling and timing for one shared region's backend.

    ``serialized`` says which half of dogpile's backend API the region uses:
    the ``*_serialized`` methods (redis, file) or the object methods (memcached).
    """

    def __init__(
        self,
        *,
        region: str,
        namespace: str,
        marker_key: str,
        metrics: Metrics,
        server: str,
        errors: tuple[type[BaseException], ...],
        serialized: bool,
        on_error: OnError = "miss",
        secret: str | None = None,
        fix: str = "check that the server is running and reachable",
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.region = region
        self.server = server
        self._namespace = namespace.encode()
        self._built_at = time.time_ns()
        self._marker_key = marker_key
        self._marker = b"%d:%s" % (self._built_at, self._namespace)
        self._metrics = metrics
        self._errors = errors
        self._serialized = serialized
        self._raise = on_error == "raise"
        self._secret = secret
        self._fix = fix
        self._disabled = False  # stale generation or closed: every read a miss, writes dropped
        self._down_until = 0.0
        self._backoff = 0.0
        self._degraded = False
        self._published = False

    # ------------------------------------------------------------------ state

    @property
    def stale(self) -> bool:
        """True once a newer configuration published the marker, or after close."""
        return self._disabled

    def close(self) -> None:
        """Stop using the server: later reads miss and writes are dropped."""
        self._disabled = True

    def publish(self) -> None:
        """Write this generation's marker (done on the region's first read or write)."""
        if self._skip():
            return
        try:
            self._write_marker()
        except self._errors as exc:
            self._failed("publish", exc)
        else:
            self._recovered()

    def _write_marker(self) -> None:
        if self._serialized:
            self.proxied.set_serialized(self._marker_key, self._marker)
        else:
            self.proxied.set(self._marker_key, self._marker)

    def _skip(self) -> bool:
        if self._disabled:
            return True
        return bool(self._down_until) and not self._raise and time.monotonic() < self._down_until

    def _fresh(self, marker: Any) -> bool:
        if marker == self._marker:
            return True
        if isinstance(marker, str):
            marker = marker.encode()
        if isinstance(marker, bytes):
            stamp, _, namespace = marker.partition(b":")
            if namespace == self._namespace:
                return True  # same configuration, built by another process
            try:
                theirs = (int(stamp), namespace)
            except ValueError:
                theirs = (0, b"")
            if theirs > (self._built_at, self._namespace):
                self._disabled = True
                log.warning(
                    "cache_generation_superseded",
                    region=self.region,
                    server=self.server,
                    detail="another process built this region from a newer configuration; "
                    "this process treats its entries as misses until it reloads",
                )
                return False
        # Missing (flushed, expired, evicted) or older: ours is the newest known.
        self._write_marker()
        return True

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._metrics.incr("cache_error", self.region)
        reason = self._scrub(f"{type(exc).__name__}: {exc}")
        if self._raise:
            raise CacheBackendError(
                self.region, self.server, operation, reason, self._fix
            ) from None
        self._backoff = min(max(self._backoff * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
        self._down_until = time.monotonic() + self._backoff
        if not self._degraded:
            self._degraded = True
            log.warning(
                "cache_backend_unavailable",
                region=self.region,
                server=self.server,
                operation=operation,
                error=reason,
                effect="reads are misses and writes are dropped until the server answers",
                fix=self._fix,
            )

    def _recovered(self) -> None:
        if self._degraded:
            self._degraded = False
            log.info("cache_backend_recovered", region=self.region, server=self.server)
        self._down_until = 0.0
        self._backoff = 0.0

    def _scrub(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "**********")
        return text[:300]

    # ------------------------------------------------------------------ reads

    def _publish_once(self) -> None:
        # Published on first use, not when the region is built: loading a manifest
        # must not wait on a server (a lazy runtime starts nothing, and a dropped
        # SYN would stall load() for the whole connect timeout).
        self._published = True
        self.publish()

    def _read(self, fetch: Callable[[list[str]], Sequence[Any]], keys: Sequence[str]) -> list[Any]:
        if not self._published:
            self._publish_once()
        if self._skip():
            return [NO_VALUE] * len(keys)
        start = time.perf_counter()
        try:
            values = fetch([self._marker_key, *keys])
            fresh = self._fresh(values[0])
        except self._errors as exc:
            self._failed("get", exc)
            return [NO_VALUE] * len(keys)
        self._metrics.observe("cache_get_seconds", time.perf_counter() - start, self.region)
        if self._down_until:
            self._recovered()
        if not fresh:
            return [NO_VALUE] * len(keys)
        return list(values[1:])

    def get(self, key: str) -> Any:
        """Value of ``key`` or ``NO_VALUE`` (also when stale or the server fails)."""
        return self._read(self.proxied.get_multi, (key,))[0]

    def get_multi(self, keys: Iterable[str]) -> list[Any]:
        """Values of ``keys`` in order; ``NO_VALUE`` where absent, stale or failing."""
        return self._read(self.proxied.get_multi, list(keys))

    def get_serialized(self, key: str) -> Any:
        """Stored bytes of ``key`` or ``NO_VALUE``."""
        return self._read(self.proxied.get_serialized_multi, (key,))[0]

    def get_serialized_multi(self, keys: Iterable[str]) -> list[Any]:
        """Stored bytes of ``keys`` in order; ``NO_VALUE`` where absent, stale or failing."""
        return self._read(self.proxied.get_serialized_multi, list(keys))

    # ------------------------------------------------------------------ writes

    def _write(self, operation: str, call: Callable[[Any], None], argument: Any) -> None:
        if not self._published:
            self._publish_once()
        if self._skip():
            return
        try:
            call(argument)
        except self._errors as exc:
            self._failed(operation, exc)
        else:
            if self._down_until:
                self._recovered()

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (dropped when stale or the server fails)."""
        self._write("set", lambda item: self.proxied.set(*item), (key, value))

    def set_multi(self, mapping: Mapping[str, Any]) -> None:
        """Store every item (dropped when stale or the server fails)."""
        self._write("set", self.proxied.set_multi, mapping)

    def set_serialized(self, key: str, value: bytes) -> None:
        """Store bytes (dropped when stale or the server fails)."""
        self._write("set", lambda item: self.proxied.set_serialized(*item), (key, value))

    def set_serialized_multi(self, mapping: Mapping[str, bytes]) -> None:
        """Store every item of bytes (dropped when stale or the server fails)."""
        self._write("set", self.proxied.set_serialized_multi, mapping)

    def delete(self, key: str) -> None:
        """Remove ``key`` (skipped when stale or the server fails)."""
        self._write("delete", self.proxied.delete, key)

    def delete_multi(self, keys: Iterable[str]) -> None:
        """Remove ``keys`` (skipped when stale or the server fails)."""
        self._write("delete", self.proxied.delete_multi, list(keys))
