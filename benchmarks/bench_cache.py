"""Cache region costs, measured side by side in one run (ratios, not absolute budgets).

Run: ``.venv/bin/python benchmarks/bench_cache.py [REDIS_URL]``. Prints the median
nanoseconds per operation for:

- a plain dict lookup (the floor),
- ``BoundedMemoryBackend.get`` (the backend alone),
- a ``perf_counter`` pair plus ``Metrics.observe`` (what timing memory gets would add),
- ``region.get`` on a memory region (key mangler, dogpile expiry check, hit counting),
- ``region.get`` on plain dogpile ``dogpile.cache.memory`` (what dogpile itself costs),
- with a REDIS_URL: ``region.get`` on a redis region (one MGET round trip incl. marker)
  against a raw ``GET`` and a raw ``MGET`` of marker and key.
"""

from __future__ import annotations

import statistics
import sys
import time
import timeit
from collections.abc import Callable

from dogpile.cache import make_region
from pydantic import TypeAdapter

from provcfg._cache import BoundedMemoryBackend, build_region, close_region, generation_key
from provcfg._manifest import RegionSpec
from provcfg._metrics import Metrics

_SPEC: TypeAdapter[object] = TypeAdapter(RegionSpec)


def measure(ops: dict[str, Callable[[], object]], number: int, rounds: int = 9) -> dict[str, float]:
    """Median nanoseconds per call of each op; ops run interleaved, round by round,
    so a noisy neighbour slows all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(rounds):
        for name, fn in ops.items():
            samples[name].append(timeit.timeit(fn, number=number) / number * 1e9)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    """Print the table described in the module docstring."""
    metrics = Metrics()
    plain = {"provcfg:r:gen1:api": 1}
    backend = BoundedMemoryBackend({"max_size": 1024})
    backend.set("provcfg:r:gen1:api", 1)
    spec = _SPEC.validate_python({"backend": "memory", "max_size": 1024, "ttl": "1h"})
    region = build_region("r", spec, namespace="gen1", metrics=metrics)  # type: ignore[arg-type]
    region.set("api", 1)
    dog = make_region().configure("dogpile.cache.memory", expiration_time=3600)
    dog.set("api", 1)

    def timed() -> None:
        start = time.perf_counter()
        metrics.observe("x", time.perf_counter() - start, "r")

    rows = measure(
        {
            "dict lookup": lambda: plain.get("provcfg:r:gen1:api"),
            "BoundedMemoryBackend.get": lambda: backend.get("provcfg:r:gen1:api"),
            "perf_counter pair + observe": timed,
            "provcfg memory region.get": lambda: region.get("api"),
            "dogpile memory region.get": lambda: dog.get("api"),
        },
        number=20000,
    )
    close_region(region)
    if len(sys.argv) > 1:
        import redis

        url = sys.argv[1]
        rspec = _SPEC.validate_python({"backend": "redis", "url": url})
        rregion = build_region("rb", rspec, namespace="gen1", metrics=metrics)  # type: ignore[arg-type]
        rregion.set("api", 1)
        client = redis.Redis.from_url(url)
        key = rregion.key_mangler("api")
        marker = generation_key("rb")
        rows |= measure(
            {
                "raw redis GET": lambda: client.get(key),
                "raw redis MGET marker+key": lambda: client.mget([marker, key]),
                "provcfg redis region.get": lambda: rregion.get("api"),
            },
            number=1000,
        )
        client.close()
        close_region(rregion)
    floor = rows["dict lookup"]
    for name, value in rows.items():
        print(f"{name:32s} {value:10.0f} ns  ({value / floor:6.1f}x dict)")
    if "raw redis GET" in rows:
        ratio = rows["provcfg redis region.get"] / rows["raw redis GET"]
        print(f"redis region.get / raw GET: {ratio:.2f}x")


if __name__ == "__main__":
    main()
