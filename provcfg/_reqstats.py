"""Per-provider request totals, latency histograms and a timestamped window of recent requests.

:meth:`provcfg._metrics.Metrics.record_request` calls :meth:`RequestStats.add` once per
finished request. The work there is a handful of integer additions, two binary searches
into the bucket bounds and one deque append; no lock (each step is atomic under the
GIL), no allocation beyond the window entry. Readers (the Prometheus collector at scrape
time, the alert evaluator once per tick) copy what they need: ``list(deque)`` runs in C
without releasing the GIL, so a copy is never torn by a concurrent append.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from time import monotonic as _monotonic

__all__ = ["BUCKETS", "Histogram", "ProviderTotals", "RequestRecord", "RequestStats", "WindowEntry"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """How one request ended, emitted once per request by every provider kind.

    ``first_chunk_s`` is the time to the first *content* chunk (text, thinking or
    tool_use), the same for every kind; ``connect_s`` is the time to the response
    headers (API) or to the spawned process (CLI). ``error_kind`` is the
    :class:`~provcfg.ProviderError` kind of a failed request, ``"cancelled"`` when the
    caller stopped reading before the end, None when ``ok``. Times are seconds from
    the start of the request; ``cost_usd`` is None when the provider reports no cost.
    """

    provider: str
    kind: str
    pool: str | None
    ok: bool
    error_kind: str | None
    connect_s: float | None
    first_chunk_s: float | None
    total_s: float
    chunks: int
    retries: int
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None


BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
"""Upper bounds (seconds) of the latency histograms: sub-ms loopback to hour-long agent runs."""

WINDOW_CAP = 65_536
"""Most recent requests kept per provider for alert windows (older ones leave first)."""


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (not cumulative: one increment per observation) and their sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    sum: float = 0.0

    @property
    def count(self) -> int:
        """Observations so far (the sum of the bucket counts: one less field to update)."""
        return sum(list(self.counts))

    def observe(self, seconds: float) -> None:
        """Add one observation (a bucket's bound is inclusive, as Prometheus' ``le``)."""
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """``[(le, cumulative count), ..., (inf, count)]``, the exposition's bucket form."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*BUCKETS, float("inf")), list(self.counts), strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass(slots=True)
class ProviderTotals:
    """Everything counted for one provider since the process started."""

    kind: str
    pool: str | None
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    chunks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    connect: Histogram = field(default_factory=Histogram)
    first_chunk: Histogram = field(default_factory=Histogram)
    total: Histogram = field(default_factory=Histogram)


WindowEntry = tuple[float, "RequestRecord"]
"""(monotonic time the request ended, its record)."""


class RequestStats:
    """Totals and histograms per provider, and each provider's recent requests with times."""

    def __init__(self, window_cap: int = WINDOW_CAP) -> None:
        self._totals: dict[str, ProviderTotals] = {}
        self._windows: dict[str, deque[WindowEntry]] = {}
        self._cap = window_cap
        self.windowed = False
        """Keep the timestamped window (the alert evaluator turns this on when it has rules)."""

    def add(self, rec: RequestRecord) -> None:
        """Count one finished request (the per-request cost of monitoring)."""
        totals = self._totals.get(rec.provider)
        if totals is None:
            totals = self._totals.setdefault(rec.provider, ProviderTotals(rec.kind, rec.pool))
            self._windows.setdefault(rec.provider, deque(maxlen=self._cap))
        totals.requests += 1
        if not rec.ok:
            kind = rec.error_kind or "unknown"
            totals.errors[kind] = totals.errors.get(kind, 0) + 1
        if rec.retries:
            totals.retries += rec.retries
        totals.chunks += rec.chunks
        totals.input_tokens += rec.input_tokens
        totals.output_tokens += rec.output_tokens
        if rec.cost_usd is not None:
            totals.cost_usd += rec.cost_usd
        # Histogram.observe inlined: three method calls were a third of this function.
        value = rec.connect_s
        if value is not None:
            hist = totals.connect
            hist.counts[bisect_left(BUCKETS, value)] += 1
            hist.sum += value
        value = rec.first_chunk_s
        if value is not None:
            hist = totals.first_chunk
            hist.counts[bisect_left(BUCKETS, value)] += 1
            hist.sum += value
        value = rec.total_s
        hist = totals.total
        hist.counts[bisect_left(BUCKETS, value)] += 1
        hist.sum += value
        if self.windowed:
            self._windows[rec.provider].append((_monotonic(), rec))

    def providers(self) -> dict[str, ProviderTotals]:
        """The totals of every provider that finished at least one request (live objects)."""
        return dict(self._totals)

    def window(self, provider: str, since: float) -> list[RequestRecord]:
        """Records of ``provider``'s requests that ended at monotonic time ``since`` or later."""
        entries = self._windows.get(provider)
        if not entries:
            return []
        return [rec for at, rec in list(entries) if at >= since]

    def prune(self, before: float) -> None:
        """Forget window entries that ended before monotonic time ``before``."""
        for entries in list(self._windows.values()):
            while entries and entries[0][0] < before:
                entries.popleft()
