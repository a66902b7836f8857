"""Region specs -> configured dogpile regions, and their orderly close.

:func:`build_region` makes a region (:class:`Region`, a ``CacheRegion`` that
counts hits and misses) and then configures it, the two steps dogpile keeps
apart, for one :data:`provcfg._manifest.RegionSpec`. :func:`close_region`
releases what the backend holds open.
"""

from __future__ import annotations

import dbm
import math
import os
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from dogpile.cache.api import NO_VALUE
from dogpile.cache.region import CacheRegion

from provcfg._errors import BackendUnavailableError, CacheBackendError
from provcfg._logs import get_logger
from provcfg._manifest import (
    FileRegionSpec,
    MemcachedRegionSpec,
    MemoryRegionSpec,
    RedisRegionSpec,
)
from provcfg._metrics import Metrics

from ._backends import FileBackend, PyMemcacheBackend, RedisBackend
from ._keys import make_key_mangler
from ._memory import BoundedMemoryBackend, DiscardCallback
from ._remote import OnError, SharedBackendProxy

__all__ = ["Region", "build_region", "close_region"]

log = get_logger(__name__)

AnyRegionSpec = MemoryRegionSpec | FileRegionSpec | RedisRegionSpec | MemcachedRegionSpec

# memcached reads an expiry above 30 days as a unix time stamp.
_MEMCACHED_RELATIVE_LIMIT = 30 * 86400
# ttl 0 means "expire at once". dogpile reads 0 as "never" and a tiny positive time
# still serves within the clock's resolution; a negative time has every entry already
# expired (-1 itself is dogpile's "never" in get_or_create, so not that one).
_IMMEDIATE = -0.001


class Region(CacheRegion):
    """A dogpile ``CacheRegion`` that counts ``cache_hit`` / ``cache_miss`` per region.

    Counting happens here, not in the backend proxy, because only the region
    knows the truth: an entry past its ttl is a miss although the backend had
    it, and ``get_or_create`` reads the backend twice on a miss (before and
    after taking the dogpile lock). A ``get_or_create`` counts one miss when
    its creator ran and one hit when it did not.
    """

    def __init__(self, name: str, *, metrics: Metrics, key_mangler: Callable[[str], str]) -> None:
        super().__init__(name=name, key_mangler=key_mangler)
        self.name: str = name
        self.metrics = metrics
        self.proxy: SharedBackendProxy | None = None

    def get(
        self, key: str, expiration_time: float | None = None, ignore_expiration: bool = False
    ) -> Any:
        """dogpile's ``get``, counted."""
        value = super().get(key, expiration_time, ignore_expiration)
        self.metrics.incr("cache_miss" if value is NO_VALUE else "cache_hit", self.name)
        return value

    def get_multi(
        self,
        keys: Sequence[str],
        expiration_time: float | None = None,
        ignore_expiration: bool = False,
    ) -> list[Any]:
        """dogpile's ``get_multi``, counted per key."""
        values: list[Any] = super().get_multi(  # type: ignore[no-untyped-call]
            keys, expiration_time, ignore_expiration
        )
        misses = sum(1 for value in values if value is NO_VALUE)
        if misses:
            self.metrics.incr("cache_miss", self.name, misses)
        if len(values) - misses:
            self.metrics.incr("cache_hit", self.name, len(values) - misses)
        return values

    def get_or_create(
        self,
        key: str,
        creator: Callable[..., Any],
        expiration_time: float | None = None,
        should_cache_fn: Callable[[Any], bool] | None = None,
        creator_args: tuple[Any, Any] | None = None,
    ) -> Any:
        """dogpile's ``get_or_create``: one miss if ``creator`` ran, else one hit."""
        created = False

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal created
            created = True
            return creator(*args, **kwargs)

        try:
            return super().get_or_create(
                key, counted, expiration_time, should_cache_fn, creator_args
            )
        finally:
            self.metrics.incr("cache_miss" if created else "cache_hit", self.name)


def _require(module: str, backend: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise BackendUnavailableError(backend, extra, module) from None


def _server_of(url: str, default_port: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path or "(unix socket)"
    host = parts.hostname or "localhost"
    port = parts.port or default_port  # .port raises ValueError for a bad port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _remote_expiry(ttl: float | None) -> int:
    # The server drops keys a little after dogpile stops serving them, never before.
    return 0 if ttl is None else math.ceil(ttl) + 1


def build_region(
    name: str,
    spec: AnyRegionSpec,
    *,
    namespace: str,
    metrics: Metrics,
    on_discard: DiscardCallback | None = None,
    on_error: OnError = "miss",
) -> Region:
    """Build and configure the dogpile region ``name`` described by ``spec``.

    ``namespace`` is a digest of what the region's entries depend on (1-64 characters
    of letters, digits, ``_.-``); every key is prefixed ``provcfg:{name}:{namespace}:``,
    so processes and generations with the same namespace share entries and others
    never see them. ``on_discard(key, value)`` is called for every value
    that leaves a memory region (ignored by the other backends). ``on_error``
    chooses what a failing server does to a get or set: ``"miss"`` (default;
    counted as ``cache_error`` and logged once per outage) or ``"raise"``
    (:class:`CacheBackendError`).

    Returns:
        The configured :class:`Region` (a ``dogpile.cache.region.CacheRegion``).

    Raises:
        BackendUnavailableError: the backend's optional package is not installed;
            the message names the extra (``pip install 'provcfg[redis]'``).
        CacheBackendError: the URL is malformed or the dbm file cannot be created;
            the message names the region and the fix, never a password.
        ValueError: ``name`` or ``namespace`` is not a valid key part.
    """
    region = Region(name, metrics=metrics, key_mangler=make_key_mangler(name, namespace))
    ttl = spec.ttl
    expiration = None if ttl is None else (ttl or _IMMEDIATE)
    if isinstance(spec, MemoryRegionSpec):
        region.configure(
            "provcfg.memory_lru",
            expiration_time=expiration,
            arguments={"max_size": spec.max_size, "on_discard": on_discard},
        )
        backend = region.actual_backend
        metrics.gauge(f"cache_entries.{name}", backend.__len__)
        metrics.gauge(f"cache_evictions.{name}", lambda: backend.evictions)
        log.debug("cache_region_built", region=name, backend="memory", max_size=spec.max_size)
        return region

    secret: str | None = None
    if isinstance(spec, FileRegionSpec):
        path = os.path.abspath(os.path.expanduser(spec.path))
        server = path
        backend_name = "provcfg.file"
        errors: tuple[type[BaseException], ...] = (OSError, *dbm.error)
        replies: tuple[type[BaseException], ...] = ()
        arguments: dict[str, Any] = {"filename": path}
        fix = f"make sure the folder of cache.{name}.path exists and is writable"
    elif isinstance(spec, RedisRegionSpec):
        _require("redis", "redis", "redis")
        import redis

        url = spec.url.get_secret_value()
        secret = urlsplit(url).password
        server = _parse_server(name, "redis", url, 6379, ("redis", "rediss", "unix"))
        backend_name = "provcfg.redis"
        errors = (redis.exceptions.RedisError, OSError)
        replies = (redis.exceptions.ResponseError,)
        timeout = spec.socket_timeout or None
        arguments = {
            "url": url,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "redis_expiration_time": _remote_expiry(ttl),
        }
        fix = f"check that redis is running at {server} and that cache.{name}.url is right"
    else:
        _require("pymemcache", "memcached", "memcached")
        import pymemcache.exceptions

        url = spec.url if "://" in spec.url else f"memcached://{spec.url}"
        server = _parse_server(name, "memcached", url, 11211, ("memcached",))
        backend_name = "provcfg.pymemcache"
        errors = (pymemcache.exceptions.MemcacheError, OSError)
        replies = (
            pymemcache.exceptions.MemcacheClientError,
            pymemcache.exceptions.MemcacheServerError,
        )
        timeout = float(getattr(spec, "socket_timeout", 5.0))
        arguments = {"url": server, "connect_timeout": timeout, "timeout": timeout}
        expiry = _remote_expiry(ttl)
        if 0 < expiry <= _MEMCACHED_RELATIVE_LIMIT:
            arguments["memcached_expire_time"] = expiry
        fix = f"check that memcached is running at {server} and that cache.{name}.url is right"

    proxy = SharedBackendProxy(
        region=name,
        metrics=metrics,
        server=server,
        errors=errors,
        replies=replies,
        on_error=on_error,
        secret=secret,
        fix=fix,
    )
    configure_errors: tuple[type[BaseException], ...] = (*errors, ValueError, TypeError)
    try:
        region.configure(
            backend_name, expiration_time=expiration, arguments=arguments, wrap=[proxy]
        )
    except configure_errors as exc:
        # Construction touches only the dbm file or parses the URL; no text of
        # the original error is kept because a URL parser may quote the password.
        raise CacheBackendError(name, server, "configure", type(exc).__name__, fix) from None
    region.proxy = proxy
    log.debug("cache_region_built", region=name, backend=spec.backend, server=server)
    return region


def _parse_server(
    region: str, backend: str, url: str, default_port: int, schemes: tuple[str, ...]
) -> str:
    problem = None
    try:
        scheme = urlsplit(url).scheme
        server = _server_of(url, default_port)
    except ValueError:
        problem = "the port is not a number"
    else:
        if scheme not in schemes:
            problem = f"the scheme {scheme!r} is not one of {', '.join(schemes)}"
    if problem is not None:
        form = "redis://[:password@]host:port/db" if backend == "redis" else "memcached://host:port"
        raise CacheBackendError(
            region,
            "(url hidden)",
            "configure",
            f"invalid {backend} URL: {problem}",
            f"write cache.{region}.url as {form}",
        )
    return server


def close_region(region: CacheRegion) -> None:
    """Release everything the region's backend holds open; safe to call twice.

    Memory regions are cleared (``on_discard`` sees every value); redis
    regions disconnect their connection pool; memcached regions close the
    client of every thread; file regions hold nothing open between operations.
    A closed shared region answers every read with a miss and drops writes.
    """
    if not region.is_configured:
        return
    backend = region.actual_backend
    if isinstance(region, Region):
        if region.proxy is not None:
            region.proxy.close()
        region.metrics.remove_gauge(f"cache_entries.{region.name}")
        region.metrics.remove_gauge(f"cache_evictions.{region.name}")
    if isinstance(backend, BoundedMemoryBackend):
        backend.clear()
        return
    if isinstance(backend, FileBackend | RedisBackend | PyMemcacheBackend):
        backend.close()
