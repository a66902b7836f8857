"""Monitoring overhead, side by side in one run: per request and per chunk, on vs disabled.

Per request: ``Metrics.record_request`` with alert rules configured (histograms, totals
and the timestamped window) against a disabled recorder (a no-op method of the same
shape), in interleaved rounds of 20,000 calls; the figure is the median paired
difference per call.

Per chunk: the same long stub stream (``--deltas`` chunks, stub in its own process)
read through a Runtime with monitoring on (alert rules evaluated every 100 ms, the
``/metrics`` endpoint scraped every 100 ms by a thread) and through one whose
``record_request`` is disabled; rounds alternate which goes first. The figure is the
median paired difference per chunk (it includes the per-request cost spread over the
stream, and the scraping thread's share of the GIL).

    .venv/bin/python benchmarks/bench_metrics.py [--rounds 15] [--deltas 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import provcfg
from provcfg._manifest import MonitoringSpec
from provcfg._metrics import Metrics, RequestRecord
from provcfg._monitoring._alerts import AlertEvaluator
from provcfg.stub import StubProcess

RULES = [
    {"metric": "first_chunk_seconds", "above": 5},
    {"metric": "total_seconds", "above": 60},
    {"metric": "error_rate", "above": 0.5},
]

MANIFEST = """\
version: 1
pools: {p: {}}
providers:
  local: {kind: anthropic-api, base_url: "URL", api_key: stub, model: stub-text,
          pool: p, transport: fast, max_retries: 0}
monitoring:
  evaluation_interval: 100ms
  alerts:
    - {metric: first_chunk_seconds, above: 5}
    - {metric: error_rate, above: 0.5}
"""


def _disabled(self: Metrics, rec: RequestRecord) -> None:
    """The 'metrics disabled' recorder: same call shape, no work."""


def per_request(rounds: int, calls: int = 20_000) -> list[float]:
    on = Metrics()
    AlertEvaluator(on).configure(MonitoringSpec.model_validate({"alerts": RULES}))
    off = Metrics()
    off.record_request = _disabled.__get__(off)  # type: ignore[method-assign]
    rec = RequestRecord(
        "api", "anthropic-api", "p", True, None, 0.001, 0.01, 0.5, 100, 0, 10, 200, None
    )
    diffs = []
    for i in range(rounds):
        times = {}
        for name, metrics in (("on", on), ("off", off)) if i % 2 else (("off", off), ("on", on)):
            record = metrics.record_request
            start = time.perf_counter()
            for _ in range(calls):
                record(rec)
            times[name] = (time.perf_counter() - start) / calls
        diffs.append(times["on"] - times["off"])
    return diffs


async def _read(rt: provcfg.Runtime) -> int:
    n = 0
    async for _ in rt.provider("local").stream("hi"):
        n += 1
    return n


async def per_chunk(rounds: int, deltas: int) -> tuple[list[float], int]:
    with StubProcess(["--deltas", str(deltas), "--chunk-size", "4"]) as stub:
        folder = Path(tempfile.mkdtemp())
        path = folder / "providers.yaml"
        path.write_text(MANIFEST.replace("URL", stub.base_url))
        on = provcfg.load(path)
        off_path = folder / "off.yaml"
        off_path.write_text(MANIFEST.replace("URL", stub.base_url).split("monitoring:")[0])
        off = provcfg.load(off_path)
        off.metrics.record_request = _disabled.__get__(off.metrics)  # type: ignore[method-assign]
        handle = provcfg.serve_metrics(on, port=0)
        stop = threading.Event()

        def scrape() -> None:
            while not stop.wait(0.1):
                with urllib.request.urlopen(f"{handle.url}/metrics") as r:
                    r.read()

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        try:
            chunks = await _read(on)
            await _read(off)  # warm both
            diffs = []
            for i in range(rounds):
                times = {}
                order = (("on", on), ("off", off)) if i % 2 else (("off", off), ("on", on))
                for name, rt in order:
                    start = time.perf_counter()
                    await _read(rt)
                    times[name] = time.perf_counter() - start
                diffs.append((times["on"] - times["off"]) / chunks)
        finally:
            stop.set()
            scraper.join()
            handle.close()
            await on.aclose()
            await off.aclose()
    return diffs, chunks


def _fmt(diffs: list[float]) -> str:
    q = statistics.quantiles(diffs, n=4)
    med = statistics.median(diffs) * 1e6
    return f"median {med:+.3f} us (IQR {q[0] * 1e6:+.3f} .. {q[2] * 1e6:+.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--deltas", type=int, default=4000)
    args = parser.parse_args()
    req = per_request(args.rounds)
    print(f"per request  (budget <= 5 us): record_request on - disabled: {_fmt(req)}")
    chunk, n = asyncio.run(per_chunk(args.rounds, args.deltas))
    print(f"per chunk    (budget <= 1 us): {n}-chunk stream, on - disabled: {_fmt(chunk)}")


if __name__ == "__main__":
    main()
