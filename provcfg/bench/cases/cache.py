"""Cache regions: ``region.get`` on provcfg's memory region vs dogpile's own, and on redis.

Memory: a plain dict (floor), provcfg's bounded backend alone, a ``perf_counter``
pair plus ``Metrics.observe`` (what timing a get would add), dogpile's own
``dogpile.cache.memory`` region (the reference) and provcfg's memory region. Redis
(full suite, when ``redis-server`` and the redis extra are installed): a throwaway
server on a free loopback port; provcfg's region.get
vs a raw ``GET``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from provcfg.bench._case import Case, CaseContext, Contender, statement_contender


def _region(spec: dict[str, Any], name: str, metrics: Any) -> Any:
    from pydantic import TypeAdapter

    from provcfg._cache import build_region
    from provcfg._manifest import RegionSpec

    parsed = TypeAdapter(RegionSpec).validate_python(spec)
    return build_region(name, parsed, namespace="gen1", metrics=metrics)


@asynccontextmanager
async def _memory(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    from dogpile.cache import make_region

    from provcfg._cache import BoundedMemoryBackend, close_region
    from provcfg._metrics import Metrics

    metrics = Metrics()
    backend = BoundedMemoryBackend({"max_size": 1024})
    backend.set("provcfg:r:gen1:api", 1)
    region = _region({"backend": "memory", "max_size": 1024, "ttl": "1h"}, "r", metrics)
    region.set("api", 1)
    dog = make_region().configure("dogpile.cache.memory", expiration_time=3600)
    dog.set("api", 1)
    names = {
        "plain": {"provcfg:r:gen1:api": 1},
        "backend": backend,
        "region": region,
        "dog": dog,
        "metrics": metrics,
        "time": time,
    }
    try:
        yield [
            statement_contender(
                "dogpile-memory",
                "reference",
                "dog.get('api')",
                names,
                ctx,
                label="dogpile.cache.memory region.get",
            ),
            statement_contender(
                "provcfg-memory",
                "subject",
                "region.get('api')",
                names,
                ctx,
                label="provcfg memory region.get (bounded LRU, hit counting)",
            ),
            statement_contender("dict", "floor", "plain.get('provcfg:r:gen1:api')", names, ctx),
            statement_contender(
                "backend.get",
                "other",
                "backend.get('provcfg:r:gen1:api')",
                names,
                ctx,
                label="BoundedMemoryBackend.get alone",
            ),
            statement_contender(
                "timing-hook",
                "other",
                "s = time.perf_counter()\nmetrics.observe('x', time.perf_counter() - s, 'r')",
                names,
                ctx,
                label="perf_counter pair + Metrics.observe",
            ),
        ]
    finally:
        close_region(region)


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free 127.0.0.1 port; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def _redis_missing(ctx: CaseContext) -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (scripts/system-deps.sh installs it)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis extra is not installed: pip install 'provcfg[redis]'"
    return None


@asynccontextmanager
async def _redis(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import redis

    from provcfg._cache import close_region
    from provcfg._metrics import Metrics

    with redis_server() as url:
        region = _region({"backend": "redis", "url": url}, "rb", Metrics())
        region.set("api", 1)
        client = redis.Redis.from_url(url)
        names = {"client": client, "region": region, "key": region.key_mangler("api")}
        try:
            yield [
                statement_contender("raw-GET", "reference", "client.get(key)", names, ctx),
                statement_contender(
                    "provcfg-redis",
                    "subject",
                    "region.get('api')",
                    names,
                    ctx,
                    label="provcfg redis region.get",
                ),
            ]
        finally:
            client.close()
            close_region(region)


CASES = [
    Case(
        name="cache.memory-get",
        title="memory region.get: provcfg vs dogpile's own memory region",
        build=_memory,
        clock="cpu",
        sample_seconds=0.001,
        repeats=5,
        rounds={"quick": (8, 40), "full": (30, 200)},
        suites=("full",),
    ),
    Case(
        name="cache.redis-get",
        title="redis region.get: provcfg vs a raw GET (a throwaway loopback redis-server)",
        build=_redis,
        sample_seconds=0.002,
        repeats=3,
        rounds={"quick": (8, 30), "full": (20, 100)},
        suites=("full",),
        requires=_redis_missing,
        threshold=0.25,
    ),
]
