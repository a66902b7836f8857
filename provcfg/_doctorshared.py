"""``provcfg doctor``'s checks of the shared parts: cache regions (redis ``PING``, memcached
``version``, a file region's folder, the ``providers`` region's size) and pool limits.

A redis or memcached client missing (the extras) is a failure naming the extra; a server
is asked within the run's ``timeout`` (redis: also within its ``socket_timeout``). The
blocking memcached client runs in a daemon thread, so a server that never answers cannot
hold the process at exit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from provcfg._doctorreport import Check
from provcfg._manifest import (
    FileRegionSpec,
    Manifest,
    MemcachedRegionSpec,
    MemoryRegionSpec,
    PoolSpec,
    RedisRegionSpec,
    mask_url,
)

__all__ = ["file_check", "memcached_check", "pool_check", "redis_check", "size_check"]


async def _in_daemon_thread(work: Callable[[], Any], timeout: float) -> Any:
    """Run blocking ``work`` in a daemon thread, waiting at most ``timeout`` seconds."""
    result: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def target() -> None:
        try:
            result.set_result(work())
        except BaseException as exc:
            result.set_exception(exc)

    threading.Thread(target=target, name="provcfg-doctor", daemon=True).start()
    async with asyncio.timeout(timeout):
        return await asyncio.wrap_future(result)


async def redis_check(name: str, spec: RedisRegionSpec, timeout: float) -> Check:
    url = spec.url.get_secret_value()
    shown = mask_url(url)
    details = {"url": shown}
    try:
        import redis.asyncio as aioredis
        from redis.exceptions import AuthenticationError, RedisError
    except ImportError:
        return Check(
            "cache",
            name,
            "reachable",
            "fail",
            "the redis client is not installed",
            "pip install 'provcfg[redis]'",
            details,
        )
    budget = min(spec.socket_timeout, timeout)
    fix = f"start redis at {shown}, or fix cache.{name}.url"
    client = aioredis.Redis.from_url(url, socket_connect_timeout=budget, socket_timeout=budget)
    try:
        async with asyncio.timeout(budget):
            await client.ping()
    except TimeoutError:
        message = f"{shown} did not answer PING within {budget:g} s"
        return Check("cache", name, "reachable", "fail", message, fix, details)
    except AuthenticationError:
        message = f"{shown} refused the credentials"
        return Check(
            "cache",
            name,
            "reachable",
            "fail",
            message,
            f"fix the password in cache.{name}.url",
            details,
        )
    except (RedisError, OSError) as exc:
        message = f"{shown} did not answer PING: {exc}"
        return Check("cache", name, "reachable", "fail", message, fix, details)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(budget):
                await client.aclose()
    return Check("cache", name, "reachable", "ok", f"{shown} answered PING", None, details)


async def memcached_check(name: str, spec: MemcachedRegionSpec, timeout: float) -> Check:
    shown = mask_url(spec.url)
    details = {"url": shown}
    try:
        from pymemcache.client.base import Client
    except ImportError:
        return Check(
            "cache",
            name,
            "reachable",
            "fail",
            "the memcached client is not installed",
            "pip install 'provcfg[memcached]'",
            details,
        )
    address = spec.url.removeprefix("memcached://")
    host, _, port_text = address.rpartition(":")
    fix = f"start memcached at {shown}, or fix cache.{name}.url"
    if not host or not port_text.isdigit():
        return Check("cache", name, "reachable", "fail", f"{shown} has no host:port", fix, details)

    def ask() -> str:
        client = Client((host, int(port_text)), connect_timeout=timeout, timeout=timeout)
        try:
            return str(client.version(), "ascii", "replace")
        finally:
            client.close()

    try:
        version = await _in_daemon_thread(ask, timeout + 0.5)
    except TimeoutError:
        message = f"{shown} did not answer `version` within {timeout:g} s"
        return Check("cache", name, "reachable", "fail", message, fix, details)
    except Exception as exc:
        message = f"{shown} did not answer `version`: {type(exc).__name__}"
        return Check("cache", name, "reachable", "fail", message, fix, details)
    return Check(
        "cache", name, "reachable", "ok", f"{shown} answered version {version}", None, details
    )


def file_check(name: str, spec: FileRegionSpec) -> Check:
    path = os.path.abspath(os.path.expanduser(spec.path))
    folder = os.path.dirname(path)
    details = {"path": path}
    if not os.path.isdir(folder):
        return Check(
            "cache",
            name,
            "writable",
            "fail",
            f"the folder {folder} does not exist",
            f"create it (mkdir -p {folder}) or change cache.{name}.path",
            details,
        )
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".provcfg-doctor-"):
            pass
    except OSError as exc:
        return Check(
            "cache",
            name,
            "writable",
            "fail",
            f"cannot create files in {folder}: {exc.strerror}",
            f"make {folder} writable for this user, or change cache.{name}.path",
            details,
        )
    return Check("cache", name, "writable", "ok", f"{folder} is writable", None, details)


def size_check(manifest: Manifest) -> Check | None:
    region = manifest.cache.get("providers")
    if not isinstance(region, MemoryRegionSpec):
        return None
    count = len(manifest.providers)
    details = {"max_size": region.max_size, "providers": count}
    if region.max_size < count:
        return Check(
            "cache",
            "providers",
            "size",
            "warn",
            f"max_size {region.max_size} holds fewer than the {count} providers: instances "
            "will be closed and recreated in turn",
            f"set cache.providers.max_size to at least {count}",
            details,
        )
    return Check(
        "cache",
        "providers",
        "size",
        "ok",
        f"max_size {region.max_size} holds all {count} providers",
        None,
        details,
    )


def pool_check(name: str, pool: PoolSpec) -> Check:
    details = {
        "max_connections": pool.max_connections,
        "max_keepalive_connections": pool.max_keepalive_connections,
    }
    if pool.max_keepalive_connections > pool.max_connections:
        return Check(
            "pool",
            name,
            "limits",
            "warn",
            f"max_keepalive_connections {pool.max_keepalive_connections} exceeds "
            f"max_connections {pool.max_connections}: the extra idle connections can never exist",
            f"set pools.{name}.max_keepalive_connections to at most {pool.max_connections}",
            details,
        )
    return Check(
        "pool",
        name,
        "limits",
        "ok",
        f"{pool.max_keepalive_connections} keep-alive within {pool.max_connections} connections",
        None,
        details,
    )
