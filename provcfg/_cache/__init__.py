"""Cache regions: manifest ``cache:`` specs -> configured dogpile.cache regions.

Public API (the runtime calls these)::

    region = build_region("responses", spec, namespace=digest, metrics=metrics)
    region.get_or_create("key", create)      # plain dogpile CacheRegion API
    close_region(region)                     # release sockets; safe to call twice

Backends: ``memory`` -> :class:`BoundedMemoryBackend` (LRU, ``max_size``,
``on_discard``), ``file`` -> dogpile's dbm backend, ``redis`` -> dogpile's
redis backend (extra ``redis``), ``memcached`` -> dogpile's pymemcache backend
(extra ``memcached``); the last three through the small subclasses in
``_backends`` that read several keys at once, close cleanly and set timeouts.
See docs/cache.md for keys, cross-process invalidation and what an outage does.

Global state: importing this package registers provcfg's backends in dogpile's
process-wide backend registry (``dogpile.cache.register_backend``), the one
place dogpile looks names up. Registration only records a module path; nothing
is imported or connected until a region is configured.
"""

from __future__ import annotations

from dogpile.cache import register_backend

from ._keys import MAX_KEY_LENGTH, key_prefix, make_key_mangler
from ._memory import BoundedMemoryBackend, DiscardCallback
from ._regions import Region, build_region, close_region
from ._remote import OnError, SharedBackendProxy

__all__ = [
    "MAX_KEY_LENGTH",
    "BoundedMemoryBackend",
    "DiscardCallback",
    "OnError",
    "Region",
    "SharedBackendProxy",
    "build_region",
    "close_region",
    "key_prefix",
    "make_key_mangler",
]

# dogpile ships no annotations for register_backend.
register_backend("provcfg.memory_lru", "provcfg._cache", "BoundedMemoryBackend")  # type: ignore[no-untyped-call]
register_backend("provcfg.file", "provcfg._cache._backends", "FileBackend")  # type: ignore[no-untyped-call]
register_backend("provcfg.redis", "provcfg._cache._backends", "RedisBackend")  # type: ignore[no-untyped-call]
register_backend("provcfg.pymemcache", "provcfg._cache._backends", "PyMemcacheBackend")  # type: ignore[no-untyped-call]
