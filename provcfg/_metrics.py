"""Self-measurement: one small timing hook and the summaries behind ``rt.metrics.snapshot()``.

Every key operation (manifest load, provider creation, cache hit and miss, CLI
detection, client creation, pool waits) reports here through :meth:`Metrics.observe`
or :meth:`Metrics.incr`. Every provider request, whatever its kind, reports once
when it ends through :meth:`Metrics.record_request` with one frozen
:class:`RequestRecord` (nothing is recorded per chunk). Recording is an append to a
bounded deque and a dict lookup, with no lock (deque appends are atomic under the
GIL), so hot paths pay nothing measurable; quantiles are computed only when a
snapshot is taken. Observers (exporters, tests) subscribe with
:meth:`Metrics.add_observer` and receive frozen :class:`Event` objects, and with
:meth:`Metrics.add_request_observer` for :class:`RequestRecord` objects.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["Event", "Metrics", "RequestRecord", "Summary"]

_RESERVOIR = 2048


@dataclass(frozen=True, slots=True)
class Event:
    """One observation: ``name`` with optional ``label`` (usually a provider) and a value."""

    name: str
    label: str
    value: float


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One provider request, reported once when it ends (any kind, success or failure).

    ``first_chunk_s`` is the time to the first *content* chunk (text, thinking or
    tool_use), the same for every kind; ``connect_s`` is the time to the response
    headers (API) or to the spawned process (CLI). ``error_kind`` is the
    :class:`~provcfg.ProviderError` kind of a failed request, ``"cancelled"`` when
    the caller stopped reading before the end, None when ``ok``.
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
        self._counters: dict[tuple[str, str], int] = {}
        self._gauges: dict[str, Callable[[], Any]] = {}
        self._values: dict[str, Any] = {}
        self._observers: list[Callable[[Event], None]] = []
        self._request_observers: list[Callable[[RequestRecord], None]] = []

    def observe(self, name: str, seconds: float, label: str = "") -> None:
        """Record one duration (seconds) in the series ``name``/``label``."""
        key = (name, label)
        series = self._series.get(key)
        if series is None:
            series = self._series.setdefault(key, deque(maxlen=_RESERVOIR))
        series.append(seconds)
        self._totals[key] = self._totals.get(key, 0) + 1
        if self._observers:
            self._notify(Event(name, label, seconds))

    def incr(self, name: str, label: str = "", amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``/``label``."""
        key = (name, label)
        self._counters[key] = self._counters.get(key, 0) + amount
        if self._observers:
            self._notify(Event(name, label, float(amount)))

    def record_request(self, record: RequestRecord) -> None:
        """Record one finished provider request (called once per request, never per chunk).

        Updates the per-provider counters ``requests``, ``errors`` (failed requests,
        not cancelled ones), ``cancelled`` and ``retries`` and the series
        ``connect_seconds``, ``first_chunk_seconds`` and ``total_seconds`` of a
        request that succeeded, then hands ``record`` to the request observers.
        """
        name = record.provider
        self.incr("requests", name)
        if record.retries:
            self.incr("retries", name, record.retries)
        if record.ok:
            if record.connect_s is not None:
                self.observe("connect_seconds", record.connect_s, name)
            if record.first_chunk_s is not None:
                self.observe("first_chunk_seconds", record.first_chunk_s, name)
            self.observe("total_seconds", record.total_s, name)
        elif record.error_kind == "cancelled":
            self.incr("cancelled", name)
        else:
            self.incr("errors", name)
        for observer in self._request_observers:
            observer(record)

    def add_request_observer(self, observer: Callable[[RequestRecord], None]) -> None:
        """Call ``observer`` with every later :class:`RequestRecord` (keep it cheap)."""
        self._request_observers.append(observer)

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
        for (name, label), value in list(self._counters.items()):
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
