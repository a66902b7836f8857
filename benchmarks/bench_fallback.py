"""What a fallback list and a circuit breaker cost per request and per chunk.

Run: ``.venv/bin/python benchmarks/bench_fallback.py``. A bench-only provider kind
(``echo``, in this file) streams N text chunks and a result from memory, through the
real runtime, handles, metering and request records, so that the routing is the only
difference between the providers compared:

* ``plain``: no fallbacks, no breaker (the handle's direct path);
* ``routed``: ``fallbacks: [spare]`` (a :class:`~provcfg._resilience.RoutedStream`);
* ``guarded``: ``breaker: {...}`` (a route of one, the breaker consulted per request).

Per request: streams of one text chunk; per chunk: streams of 1,000 chunks. Times are
this thread's CPU time (``time.thread_time_ns``), so time spent descheduled on a busy
machine does not count; each figure is the median of 41 interleaved rounds, and the
differences are paired per round. Compare within one run.
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

ROUNDS = 41


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
    """CPU time of this thread per request: time spent descheduled on a busy machine
    does not count (everything here runs in this thread, without I/O)."""
    start = time.thread_time_ns()
    for _ in range(count):
        async for _chunk in handle.stream("p"):
            pass
    return (time.thread_time_ns() - start) / count


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
                    count = 4 if name.endswith("_long") else 400
                    samples[name].append(await per_request_ns(handles[name], count))

    # Paired differences (same round, back to back) cancel most of the machine's drift.
    def delta(name: str, base: str, per: int = 1) -> tuple[float, float, float]:
        diffs = sorted((a - b) / per for a, b in zip(samples[name], samples[base], strict=True))
        q = len(diffs) // 4
        return statistics.median(diffs), diffs[q], diffs[-q - 1]

    med = {name: statistics.median(values) for name, values in samples.items()}
    print(f"{ROUNDS} interleaved rounds; medians, and the middle half of the paired differences")
    print(f"{'per request (1 chunk + result)':<36} {'ns/request':>11} {'vs plain (IQR)':>28}")
    print(f"  {'plain':<34} {med['plain']:>11.0f}")
    for name in ("routed", "guarded"):
        d, lo, hi = delta(name, "plain")
        print(f"  {name:<34} {med[name]:>11.0f} {d:>+12.0f} ({lo:+.0f} .. {hi:+.0f})")
    print(f"{'per chunk (1,000 chunks + result)':<36} {'ns/chunk':>11} {'vs plain (IQR)':>28}")
    print(f"  {'plain_long':<34} {med['plain_long'] / 1001:>11.1f}")
    d, lo, hi = delta("routed_long", "plain_long", 1001)
    line = f"  {'routed_long':<34} {med['routed_long'] / 1001:>11.1f} {d:>+12.1f}"
    print(f"{line} ({lo:+.1f} .. {hi:+.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
