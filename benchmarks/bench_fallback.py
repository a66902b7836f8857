"""What a fallback list and a circuit breaker cost per request and per chunk.

Run: ``.venv/bin/python benchmarks/bench_fallback.py``. A bench-only provider kind
(``echo``, in this file) streams N text chunks and a result from memory, through the
real runtime, handles, metering and request records, so that the routing is the only
difference between the providers compared:

* ``plain``: no fallbacks, no breaker (the handle's direct path);
* ``routed``: ``fallbacks: [spare]`` (a :class:`~provcfg._resilience.RoutedStream`);
* ``guarded``: ``breaker: {...}`` (a route of one, the breaker consulted per request).

Per request: streams of one text chunk; per chunk: streams of 1,000 chunks. Each
figure is the median of interleaved rounds; compare within one run (shared machine).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

import provcfg
from provcfg._logs import configure as configure_logs
from provcfg._manifest import BreakerSpec
from provcfg.plugin import BaseProvider, Chunk, KindRegistry, ProviderKind, Timings, Usage

ROUNDS = 15


class EchoSpec(BaseModel):
    """The bench kind's spec: how many chunks, and the routing fields a kind may declare."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["echo"] = "echo"
    chunks: int = 1
    fallbacks: tuple[str, ...] = ()
    breaker: BreakerSpec | None = None


class EchoProvider(BaseProvider):
    """Streams ``chunks`` text chunks from memory, then the result."""

    kind = "echo"

    async def stream(self, prompt: str, **_: Any) -> AsyncIterator[Chunk]:  # type: ignore[override]
        """The chunks, then the result."""
        text = Chunk("text", "x")
        for _i in range(self.spec.chunks):  # type: ignore[attr-defined]
            yield text
        yield Chunk("result", data={"usage": Usage(), "timings": Timings()})


MANIFEST = """\
version: 1
providers:
  plain: {kind: echo}
  routed: {kind: echo, fallbacks: [spare]}
  guarded: {kind: echo, breaker: {failures: 5, window: 60s, cooldown: 30s}}
  plain_long: {kind: echo, chunks: 1000}
  routed_long: {kind: echo, chunks: 1000, fallbacks: [spare]}
  spare: {kind: echo}
"""


async def per_request_ns(handle: Any, count: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(count):
        async for _chunk in handle.stream("p"):
            pass
    return (time.perf_counter_ns() - start) / count


async def main() -> int:
    configure_logs("error")
    registry = KindRegistry.builtin().with_kind(ProviderKind("echo", EchoSpec, EchoProvider))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "providers.yaml"
        path.write_text(MANIFEST)
        async with provcfg.load(path, registry=registry) as rt:
            names = ("plain", "routed", "guarded", "plain_long", "routed_long")
            handles = {name: rt.provider(name) for name in names}
            samples: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(ROUNDS):  # interleaved: each round measures every provider
                for name in names:
                    count = 10 if name.endswith("_long") else 2000
                    samples[name].append(await per_request_ns(handles[name], count))
    med = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{'per request (1 chunk + result)':<44} ns/request   vs plain")
    for name in ("plain", "routed", "guarded"):
        extra = med[name] - med["plain"]
        print(f"  {name:<42} {med[name]:>9.0f}   {extra:+8.0f} ns")
    print(f"{'per chunk (1,000 chunks + result)':<44} ns/chunk     vs plain")
    for name in ("plain_long", "routed_long"):
        per_chunk = med[name] / 1001
        extra = per_chunk - med["plain_long"] / 1001
        print(f"  {name:<42} {per_chunk:>9.1f}   {extra:+8.1f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
