"""Self-measurement: one small timing hook and the summaries behind ``rt.metrics.snapshot()``.

Every key operation (manifest load, provider creation, cache hit and miss, CLI
detection, client creation, pool waits) reports here through :meth:`Metrics.observe`
or :meth:`Metrics.incr`. Recording is an append to a bounded deque and a dict lookup,
with no lock (deque appends are atomic under the GIL), so hot paths pay nothing
measurable; quantiles are computed only when a snapshot is taken. Observers
(exporters, tests) subscribe with :meth:`Metrics.add_observer` and receive frozen
:class:`Event` objects.

Every request of every provider kind ends in one :class:`RequestRecord` passed to
:meth:`Metrics.record_request`: it feeds the per-provider totals and histograms
(:class:`provcfg._reqstats.RequestStats`, read by the Prometheus exporter at scrape
time) and the timestamped window the alert evaluator reads, then the request observers
(traces). That is the only per-request cost; nothing is recorded per chunk.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from provcfg._reqstats import RequestRecord, RequestStats

__all__ = ["Event", "Metrics", "RequestRecord", "Summary"]

_RESERVOIR = 2048


@dataclass(frozen=True, slots=True)
class Event:
    """One observation: ``name`` with optional ``label`` (usually a provider) and a value."""

    name: str
    label: str
    value: float


@dataclass(frozen=True, slots=True)
class Summary:
    """Latency summary of the most recent observations of one series."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON."""
        return {
            "count": self.count,
            "p50": self.p50,
            "p95": self.p95,
            "p99": self.p99,
            "max": self.max,
        }


def _quantile(ordered: list[float], q: float) -> float:
    # Nearest-rank on the sorted sample: exact for small samples, no interpolation surprises.
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class Metrics:
    """Counters, gauges and latency series of one Runtime (or shared across reloads)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str], deque[float]] = {}
        self._totals: dict[tuple[str, str], int] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._counters: dict[tuple[str, str], int] = {}
        self._gauges: dict[str, Callable[[], Any]] = {}
        self._values: dict[str, Any] = {}
        self._observers: list[Callable[[Event], None]] = []
        self._request_observers: list[Callable[[RequestRecord], None]] = []
        self._counter_sources: list[Callable[[], Mapping[tuple[str, str], int]]] = []
        self.requests = RequestStats()
        """Per-provider totals, histograms and the recent-request window (exporter, alerts)."""

    def record_request(self, rec: RequestRecord) -> None:
        """Record one finished request (called once per request, never per chunk).

        Feeds the per-provider totals, histograms and alert window
        (:attr:`requests`), the snapshot's per-provider counters ``requests``,
        ``errors`` (failed, not cancelled), ``cancelled`` and ``retries`` and the
        series ``connect_seconds``, ``first_chunk_seconds`` and ``total_seconds`` of a
        request that succeeded, then the request observers.
        """
        self.requests.add(rec)
        name = rec.provider
        self.incr("requests", name)
        if rec.retries:
            self.incr("retries", name, rec.retries)
        if rec.ok:
            if rec.connect_s is not None:
                self.observe("connect_seconds", rec.connect_s, name)
            if rec.first_chunk_s is not None:
                self.observe("first_chunk_seconds", rec.first_chunk_s, name)
            self.observe("total_seconds", rec.total_s, name)
        elif rec.error_kind == "cancelled":
            self.incr("cancelled", name)
        else:
            self.incr("errors", name)
        for observer in self._request_observers:
            observer(rec)

    def add_request_observer(self, observer: Callable[[RequestRecord], None]) -> None:
        """Call ``observer`` with every later :class:`RequestRecord` (keep it cheap)."""
        self._request_observers.append(observer)

    def remove_request_observer(self, observer: Callable[[RequestRecord], None]) -> None:
        """Stop calling ``observer``; unknown observers are ignored."""
        with contextlib.suppress(ValueError):
            self._request_observers.remove(observer)

    def value(self, name: str, default: Any = None) -> Any:
        """A value stored with :meth:`set`, or ``default``."""
        return self._values.get(name, default)

    def counters(self) -> dict[tuple[str, str], int]:
        """A copy of every counter, keyed by (name, label) (sources included)."""
        out = dict(self._counters)
        for source in list(self._counter_sources):
            for key, value in source().items():
                out[key] = out.get(key, 0) + value
        return out

    def add_counter_source(self, source: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """Add the counts ``source()`` returns to the counters whenever they are read.

        For a hot path that cannot afford :meth:`incr` (about 0.3 us): it keeps its own
        integers and this reads them (the CLI resolver's watched hits do this).
        """
        self._counter_sources.append(source)

    def remove_counter_source(self, source: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        """Stop reading ``source``; unknown ones are ignored."""
        with contextlib.suppress(ValueError):
            self._counter_sources.remove(source)

    def read_gauges(self, prefix: str) -> dict[str, Any]:
        """Read every gauge whose name starts with ``prefix`` (failing ones are left out)."""
        out: dict[str, Any] = {}
        for name, read in list(self._gauges.items()):
            if name.startswith(prefix):
                try:
                    out[name[len(prefix) :]] = read()
                except Exception:  # noqa: S112  a gauge must never break an export
                    continue
        return out

    def series_totals(self, name: str) -> dict[str, tuple[int, float]]:
        """Per label of the series ``name``: (observations ever, their sum in seconds)."""
        return {
            label: (count, self._sums.get((n, label), 0.0))
            for (n, label), count in list(self._totals.items())
            if n == name
        }

    def observe(self, name: str, seconds: float, label: str = "") -> None:
        """Record one duration (seconds) in the series ``name``/``label``."""
        key = (name, label)
        series = self._series.get(key)
        if series is None:
            series = self._series.setdefault(key, deque(maxlen=_RESERVOIR))
        series.append(seconds)
        self._totals[key] = self._totals.get(key, 0) + 1
        self._sums[key] = self._sums.get(key, 0.0) + seconds
        if self._observers:
            self._notify(Event(name, label, seconds))

    def incr(self, name: str, label: str = "", amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``/``label``."""
        key = (name, label)
        self._counters[key] = self._counters.get(key, 0) + amount
        if self._observers:
            self._notify(Event(name, label, float(amount)))

    def set(self, name: str, value: Any) -> None:
        """Set a plain JSON-serializable value (for example the last reload's time)."""
        self._values[name] = value

    def gauge(self, name: str, read: Callable[[], Any]) -> None:
        """Register a function read at snapshot time (pool state, cache sizes)."""
        self._gauges[name] = read

    def remove_gauge(self, name: str, read: Callable[[], Any] | None = None) -> None:
        """Forget a gauge (its owner was closed).

        With ``read``, only if the gauge is still that function: a newer owner that
        registered the same name (a pool rebuilt by a reload) keeps its gauge.
        """
        if read is None or self._gauges.get(name) == read:
            self._gauges.pop(name, None)

    @contextmanager
    def timed(self, name: str, label: str = "") -> Iterator[None]:
        """Context manager that observes the time its body took, also when it raises."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(name, time.perf_counter() - start, label)

    def add_observer(self, observer: Callable[[Event], None]) -> None:
        """Call ``observer`` with every later :class:`Event` (keep it cheap)."""
        self._observers.append(observer)

    def _notify(self, event: Event) -> None:
        for observer in self._observers:
            observer(event)

    def counter(self, name: str, label: str = "") -> int:
        """Current value of one counter."""
        if self._counter_sources:
            return self.counters().get((name, label), 0)
        return self._counters.get((name, label), 0)

    def summary(self, name: str, label: str = "") -> Summary | None:
        """Summary of one latency series, or None if it has no observation."""
        series = self._series.get((name, label))
        if not series:
            return None
        ordered = sorted(series)
        return Summary(
            count=self._totals[(name, label)],
            p50=_quantile(ordered, 0.50),
            p95=_quantile(ordered, 0.95),
            p99=_quantile(ordered, 0.99),
            max=ordered[-1],
        )

    def snapshot(self) -> dict[str, Any]:
        """Counts and latency summaries as plain JSON-serializable data.

        Shape: ``{"latency": {name: {label or "_": summary}}, "counters": {name:
        {label or "_": n}}, "gauges": {name: value}, "values": {name: value}}``.
        """
        latency: dict[str, dict[str, Any]] = {}
        for name, label in list(self._series):
            summary = self.summary(name, label)
            if summary is not None:
                latency.setdefault(name, {})[label or "_"] = summary.as_dict()
        counters: dict[str, dict[str, int]] = {}
        for (name, label), value in self.counters().items():
            counters.setdefault(name, {})[label or "_"] = value
        gauges: dict[str, Any] = {}
        for name, read in list(self._gauges.items()):
            try:
                gauges[name] = read()
            except Exception as exc:  # a gauge must never break the dashboard
                gauges[name] = {"error": type(exc).__name__}
        return {
            "latency": latency,
            "counters": counters,
            "gauges": gauges,
            "values": dict(self._values),
        }
