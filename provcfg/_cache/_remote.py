"""The dogpile ProxyBackend in front of every shared (file, redis, memcached) backend.

It does three things, at the backend boundary, so the region code above sees one
behaviour whatever the server:

1. **Errors.** A server that cannot be reached (refused, reset, timed out) degrades
   to a miss (writes are dropped), counts ``cache_error``, logs one warning when the
   outage starts and one info line when it ends, and backs off (0.5 s doubling to
   30 s) before touching the server again, so an outage costs provider calls nothing
   but the cache. A server that *answered* with an error (redis refusing a command,
   memcached rejecting a value) is not an outage: it is logged as
   ``cache_backend_rejected`` with the server's own words, counted, and the next call
   tries again at once. ``on_error="raise"`` raises
   :class:`provcfg._errors.CacheBackendError` for both instead.
2. **Timing.** Successful reads are observed as ``cache_get_seconds``.
3. **Closing.** A closed region's proxy answers every read with a miss and drops writes.

Which configuration an entry belongs to is not decided here: every key carries the
region's namespace, a digest of what the region's entries depend on (its spec and
its ``invalidate_on``; see :mod:`provcfg._build`). Processes with the same inputs
share entries, processes with different ones never see each other's, and neither
disturbs the other, whichever built last.

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
from provcfg._secrets import scrub, secret_forms

__all__ = ["OnError", "SharedBackendProxy"]

log = get_logger(__name__)

OnError = Literal["miss", "raise"]

_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0


class SharedBackendProxy(ProxyBackend):
    """Error handling and timing for one shared region's backend.

    ``errors`` are the exceptions a failing server or file raises; ``replies`` the
    subset that means the server answered with an error (not an outage).
    """

    def __init__(
        self,
        *,
        region: str,
        metrics: Metrics,
        server: str,
        errors: tuple[type[BaseException], ...],
        replies: tuple[type[BaseException], ...] = (),
        on_error: OnError = "miss",
        secret: str | None = None,
        fix: str = "check that the server is running and reachable",
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.region = region
        self.server = server
        self._metrics = metrics
        self._errors = errors
        self._replies = replies
        self._raise = on_error == "raise"
        self._secret = secret
        self._fix = fix
        self._disabled = False  # closed: every read a miss, writes dropped
        self._down_until = 0.0
        self._backoff = 0.0
        self._degraded = False

    # ------------------------------------------------------------------ state

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._disabled

    def close(self) -> None:
        """Stop using the server: later reads miss and writes are dropped."""
        self._disabled = True

    def _skip(self) -> bool:
        if self._disabled:
            return True
        return bool(self._down_until) and not self._raise and time.monotonic() < self._down_until

    def _failed(self, operation: str, exc: BaseException) -> None:
        self._metrics.incr("cache_error", self.region)
        reason = self._scrub(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, self._replies):
            # The server is up and said no: no outage, no back-off; say what it said.
            if self._raise:
                fix = "the server rejected the command; see its message"
                raise CacheBackendError(self.region, self.server, operation, reason, fix) from None
            log.warning(
                "cache_backend_rejected",
                region=self.region,
                server=self.server,
                operation=operation,
                error=reason,
                effect="this operation was skipped; the server is reachable",
            )
            return
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
            text = scrub(text, secret_forms(self._secret))
        return text[:300]

    # ------------------------------------------------------------------ reads

    def _read(self, fetch: Callable[[list[str]], Sequence[Any]], keys: Sequence[str]) -> list[Any]:
        if self._skip():
            return [NO_VALUE] * len(keys)
        start = time.perf_counter()
        try:
            values = list(fetch(list(keys)))
        except self._errors as exc:
            self._failed("get", exc)
            return [NO_VALUE] * len(keys)
        self._metrics.observe("cache_get_seconds", time.perf_counter() - start, self.region)
        if self._down_until:
            self._recovered()
        return values

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
