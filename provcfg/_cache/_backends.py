"""Small subclasses of dogpile's file and pymemcache backends that provcfg needs.

- :class:`FileBackend` reads several keys with one open of the dbm file
  (dogpile's opens it once per key): provcfg reads through ``get_multi``.
- :class:`RedisBackend` writes expiring keys with ``SET key value EX n``
  (dogpile calls ``SETEX``, which redis-py 6+ deprecates with a warning on
  every write) and closes its connection pool.
- :class:`PyMemcacheBackend` passes connect and socket timeouts to pymemcache
  (dogpile does not) and remembers every per-thread client it creates, so
  :func:`provcfg._cache.close_region` can close them all and leak no socket.

Neither module imports its client library at import time: dogpile's backend
modules import ``pymemcache`` only when a backend is constructed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from dogpile.cache.api import NO_VALUE
from dogpile.cache.backends.file import DBMBackend
from dogpile.cache.backends.memcached import PyMemcacheBackend as _DogpilePyMemcache
from dogpile.cache.backends.redis import RedisBackend as _DogpileRedis

__all__ = ["FileBackend", "PyMemcacheBackend", "RedisBackend"]


class FileBackend(DBMBackend):
    """dogpile's dbm backend, reading many keys under one lock and one open."""

    def get_serialized_multi(self, keys: Iterable[str]) -> list[Any]:
        """Raw stored bytes for ``keys`` in order, ``NO_VALUE`` where absent."""
        with self._dbm_file(False) as dbm_obj:
            values: list[Any] = []
            for key in keys:
                try:
                    values.append(dbm_obj[key])
                except KeyError:
                    values.append(NO_VALUE)
            return values

    def close(self) -> None:
        """Nothing stays open between operations; present so every backend closes alike."""


class RedisBackend(_DogpileRedis):
    """dogpile's redis backend, with non-deprecated expiring writes and ``close()``."""

    def set_serialized(self, key: str, value: bytes) -> None:
        """Store ``value``, expiring after ``redis_expiration_time`` seconds when set."""
        self.writer_client.set(key, value, ex=self.redis_expiration_time or None)

    def set_serialized_multi(self, mapping: Mapping[str, bytes]) -> None:
        """Store every item in one round trip (a transaction-free pipeline)."""
        if not mapping:
            return
        if not self.redis_expiration_time:
            self.writer_client.mset(mapping)
            return
        pipe = self.writer_client.pipeline(transaction=False)
        for key, value in mapping.items():
            pipe.set(key, value, ex=self.redis_expiration_time)
        pipe.execute()

    def close(self) -> None:
        """Close the client and disconnect every pooled connection."""
        self.writer_client.close()
        self.writer_client.connection_pool.disconnect()


class PyMemcacheBackend(_DogpilePyMemcache):
    """dogpile's pymemcache backend with timeouts and closable per-thread clients.

    Extra arguments: ``connect_timeout`` and ``timeout`` (seconds, default 5).
    """

    def __init__(self, arguments: Mapping[str, Any]) -> None:
        super().__init__(arguments)  # type: ignore[no-untyped-call]
        self.connect_timeout: float = float(arguments.get("connect_timeout", 5.0))
        self.timeout: float = float(arguments.get("timeout", 5.0))
        self._created: list[Any] = []
        self._created_lock = threading.Lock()

    def _create_client(self) -> Any:
        import pymemcache.client.hash

        client = pymemcache.client.hash.HashClient(
            self.url,
            serde=self.serde,
            default_noreply=self.default_noreply,
            tls_context=self.tls_context,
            retry_attempts=self.hashclient_retry_attempts,
            retry_timeout=self.hashclient_retry_timeout,
            dead_timeout=self.dead_timeout,
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
        )
        with self._created_lock:
            self._created.append(client)
        return client

    def close(self) -> None:
        """Close the client of every thread that used this backend."""
        with self._created_lock:
            clients, self._created = self._created, []
        for client in clients:
            client.close()
