"""What monitoring costs: per recorded request, and per chunk of a stream with it all on.

``metrics.record``: ``Metrics.record_request`` with alert rules configured (histograms,
totals, the timestamped window the rules read) against a no-op function of the same
shape, the "metrics disabled" floor (budget: <= 5 us added per request).

``metrics.stream``: the same 2,000-delta stub stream read through two runtimes, one with
monitoring on (alert rules evaluated every 100 ms, ``/metrics`` served and scraped by a
thread every 100 ms) and one without monitoring whose recorder is a no-op; this
process's CPU per chunk, so the evaluator's and the scraper's share of the process
counts (budget: <= 1 us added per chunk).
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from provcfg.bench._case import Budget, Case, CaseContext, Contender, Sample, TimeFunc
from provcfg.bench.cases._fixtures import scratch
from provcfg.bench.cases._readers import stub_process

RULES = [
    {"metric": "first_chunk_seconds", "above": 5},
    {"metric": "error_rate", "above": 0.5},
]

_PROVIDER = (
    "providers:\n"
    "  local: {{kind: anthropic-api, base_url: '{url}', api_key: stub, model: stub-text,\n"
    "          transport: fast, max_retries: 0}}\n"
)
_MONITORING = "monitoring:\n  evaluation_interval: 100ms\n  alerts:\n" + "".join(
    f"    - {{metric: {rule['metric']}, above: {rule['above']}}}\n" for rule in RULES
)


def _no_op(rec: object) -> None:
    """The 'metrics disabled' recorder: the same call shape, no work."""


@asynccontextmanager
async def _record(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    from provcfg._manifest import MonitoringSpec
    from provcfg._metrics import Metrics
    from provcfg._monitoring._alerts import AlertEvaluator
    from provcfg._reqstats import RequestRecord
    from provcfg.bench._case import statement_contender

    metrics = Metrics()
    AlertEvaluator(metrics).configure(MonitoringSpec.model_validate({"alerts": RULES}))
    rec = RequestRecord(
        "api", "anthropic-api", "p", True, None, 0.001, 0.01, 0.5, 100, 0, 10, 200, None
    )
    names = {"on": metrics.record_request, "off": _no_op, "rec": rec}
    yield [
        statement_contender(
            "disabled", "reference", "off(rec)", names, ctx, label="a no-op of the same shape"
        ),
        statement_contender(
            "record_request",
            "subject",
            "on(rec)",
            names,
            ctx,
            label="Metrics.record_request with two alert rules configured",
        ),
    ]


def _per_chunk(rt: Any, spin: Callable[[], None] | None, model: str) -> TimeFunc:
    """This process's CPU seconds per chunk over whole streams (the spin inside each)."""

    async def run(loops: int) -> Sample:
        cpu = 0.0
        chunks = 0
        for _ in range(loops):
            cpu0 = time.process_time()
            async for _chunk in rt.provider("local").stream("hi", model=model):
                chunks += 1
            if spin is not None:
                spin()
            cpu += time.process_time() - cpu0
        return Sample(cpu / max(chunks, 1), {"chunks": chunks / loops}, cpu / loops)

    return run


@asynccontextmanager
async def _stream(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import provcfg

    model = f"stub-deltas-{200 if ctx.smoke else 2000}"
    async with stub_process() as stub:
        with scratch() as folder:
            head = "version: 1\n" + _PROVIDER.format(url=stub.base_url)
            on_path = folder / "on.yaml"
            on_path.write_text(head + _MONITORING)
            off_path = folder / "off.yaml"
            off_path.write_text(head)
            on = provcfg.load(on_path)
            off = provcfg.load(off_path)
            off.metrics.record_request = _no_op  # type: ignore[method-assign]
            served = provcfg.serve_metrics(on, port=0)
            stop = threading.Event()

            def scrape() -> None:
                while not stop.wait(0.1):
                    # served.url is the loopback http:// address this case just opened
                    with urllib.request.urlopen(f"{served.url}/metrics") as answer:  # noqa: S310
                        answer.read()

            scraper = threading.Thread(target=scrape, name="bench-scraper", daemon=True)
            scraper.start()
            try:
                yield [
                    Contender(
                        "disabled",
                        "reference",
                        _per_chunk(off, ctx.slowed("reference"), model),
                        "no monitoring, record_request a no-op",
                    ),
                    Contender(
                        "monitoring-on",
                        "subject",
                        _per_chunk(on, ctx.slowed("subject"), model),
                        "alert rules evaluated and /metrics scraped every 100 ms",
                    ),
                ]
            finally:
                stop.set()
                scraper.join()
                served.close()
                await on.aclose()
                await off.aclose()


CASES = [
    Case(
        name="metrics.record",
        title="Metrics.record_request with alert rules vs a no-op recorder, per request",
        build=_record,
        clock="cpu",
        gc_off=True,
        rounds={"quick": (8, 40), "full": (30, 200)},
        sample_seconds=0.002,
        repeats=3,
        budgets=(Budget("record_request", "<= +5 us per request", max_added=5e-6),),
    ),
    Case(
        name="metrics.stream",
        title="CPU per chunk of a 2,000-delta stream: monitoring on vs off",
        build=_stream,
        clock="cpu",
        sample_seconds=0.0,
        threshold=0.10,  # calibrated: 15/15 of +15 %; cross-session drift <= 0
        rounds={"quick": (6, 20), "full": (20, 80)},
        seconds={"quick": 5.0, "full": 30.0},
        budgets=(Budget("monitoring-on", "<= +1 us per chunk", max_added=1e-6),),
    ),
]
