"""The Prometheus collector: provcfg's own in-process state, read at scrape time.

Nothing here runs per request or per chunk. :class:`ProvcfgCollector` is registered in
a private ``CollectorRegistry`` and, on each scrape, turns the cheap counters of
:class:`~provcfg._metrics.Metrics` (request totals and histograms, cache and CLI
counters, pool gauges, reload values) and of the alert evaluator into metric families.
:data:`CATALOG` names every family with its type, labels and help text: the docs, the
dashboard and the rule export are checked against it.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from provcfg._metrics import Metrics
    from provcfg._reqstats import Histogram

__all__ = ["CATALOG", "MetricInfo", "ProvcfgCollector"]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """One exported family: its name (without ``_total`` for counters), type, labels, help."""

    name: str
    type: str
    labels: tuple[str, ...]
    help: str

    @property
    def sample_name(self) -> str:
        """The name queries use (``_total`` for counters, ``_bucket`` etc. for histograms)."""
        return f"{self.name}_total" if self.type == "counter" else self.name


_P = ("provider", "kind")
CATALOG: tuple[MetricInfo, ...] = (
    MetricInfo("provcfg_requests", "counter", _P, "Requests finished, ok or not."),
    MetricInfo(
        "provcfg_request_errors",
        "counter",
        (*_P, "error_kind"),
        "Requests that ended in a ProviderError, by its kind.",
    ),
    MetricInfo("provcfg_request_retries", "counter", _P, "Retries made inside requests."),
    MetricInfo("provcfg_chunks", "counter", _P, "Chunks streamed to callers."),
    MetricInfo("provcfg_input_tokens", "counter", _P, "Input tokens the provider reported."),
    MetricInfo("provcfg_output_tokens", "counter", _P, "Output tokens the provider reported."),
    MetricInfo("provcfg_cost_usd", "counter", _P, "Cost in US dollars the provider reported."),
    MetricInfo(
        "provcfg_connect_seconds",
        "histogram",
        _P,
        "Time to the connection (API) or the spawned process (CLI).",
    ),
    MetricInfo(
        "provcfg_first_chunk_seconds",
        "histogram",
        _P,
        "Time to the first content chunk (text, thinking or tool use).",
    ),
    MetricInfo(
        "provcfg_request_duration_seconds", "histogram", _P, "Time from start to end of a request."
    ),
    MetricInfo("provcfg_cache_hits", "counter", ("region",), "Cache region reads that hit."),
    MetricInfo("provcfg_cache_misses", "counter", ("region",), "Cache region reads that missed."),
    MetricInfo(
        "provcfg_cache_errors",
        "counter",
        ("region",),
        "Remote cache backend errors (served as misses).",
    ),
    MetricInfo(
        "provcfg_cache_evictions",
        "counter",
        ("region",),
        "Entries evicted for space by memory regions (restarts when a region is rebuilt).",
    ),
    MetricInfo("provcfg_cache_entries", "gauge", ("region",), "Entries held by memory regions."),
    MetricInfo(
        "provcfg_pool_connections",
        "gauge",
        ("pool", "state"),
        "HTTP connections of a pool by state (in_use, idle).",
    ),
    MetricInfo("provcfg_pool_max_connections", "gauge", ("pool",), "The pool's max_connections."),
    MetricInfo("provcfg_pool_waiting", "gauge", ("pool",), "Requests waiting for a connection."),
    MetricInfo(
        "provcfg_pool_exhausted",
        "counter",
        ("pool",),
        "Requests that gave up waiting for a pool connection (pool_exhausted).",
    ),
    MetricInfo("provcfg_cli_detect_seconds", "summary", ("command",), "Time spent finding a CLI."),
    MetricInfo(
        "provcfg_cli_path_cache_hits", "counter", ("command",), "CLI path lookups served cached."
    ),
    MetricInfo(
        "provcfg_cli_path_cache_misses", "counter", ("command",), "CLI path lookups that searched."
    ),
    MetricInfo(
        "provcfg_cli_processes_spawned", "counter", ("provider",), "Agent CLI processes started."
    ),
    MetricInfo(
        "provcfg_cli_processes_killed",
        "counter",
        ("provider",),
        "Agent CLI processes ended by a signal from provcfg (timeouts, cancelled streams).",
    ),
    MetricInfo(
        "provcfg_cli_processes_running", "gauge", ("provider",), "Agent CLI processes alive now."
    ),
    MetricInfo(
        "provcfg_warm_spares_ready",
        "gauge",
        ("provider",),
        "Warm agent processes (spares, servers) ready to serve a request now.",
    ),
    MetricInfo(
        "provcfg_warm_processes",
        "gauge",
        ("provider",),
        "Warm agent processes the pool holds (ready or being prepared).",
    ),
    MetricInfo(
        "provcfg_warm_processes_rss_bytes",
        "gauge",
        ("provider",),
        "Resident memory of the warm processes the pool holds (sampled every 10 s).",
    ),
    MetricInfo("provcfg_warm_hits", "counter", ("provider",), "Requests served by a warm process."),
    MetricInfo(
        "provcfg_warm_misses",
        "counter",
        ("provider", "reason"),
        "Requests of a warm provider that ran cold, by why (docs/clis.md).",
    ),
    MetricInfo(
        "provcfg_warm_spawn_seconds",
        "summary",
        ("provider",),
        "Time from starting a warm process until it was ready.",
    ),
    MetricInfo(
        "provcfg_warm_reaped",
        "counter",
        ("provider", "reason"),
        "Warm processes stopped by the pool, by why (docs/clis.md).",
    ),
    MetricInfo(
        "provcfg_fallbacks",
        "counter",
        ("provider",),
        "Requests that left this provider for its next fallback (a failure before the first "
        "chunk, or an open breaker).",
    ),
    MetricInfo(
        "provcfg_breaker_state",
        "gauge",
        ("provider",),
        "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ),
    MetricInfo(
        "provcfg_breaker_transitions",
        "counter",
        ("provider", "state"),
        "Circuit breaker transitions, by the state entered (open, half_open, closed).",
    ),
    MetricInfo(
        "provcfg_breaker_rejected",
        "counter",
        ("provider",),
        "Requests an open breaker failed fast or sent straight to a fallback.",
    ),
    MetricInfo("provcfg_config_generation", "gauge", (), "Generation of the live configuration."),
    MetricInfo(
        "provcfg_reloads", "counter", ("result",), "Reload attempts by result (success, failure)."
    ),
    MetricInfo(
        "provcfg_config_last_reload_successful",
        "gauge",
        (),
        "1 when the last reload attempt succeeded, else 0.",
    ),
    MetricInfo(
        "provcfg_config_last_reload_success_timestamp_seconds",
        "gauge",
        (),
        "Unix time of the last successful (re)load.",
    ),
    MetricInfo("provcfg_reload_duration_seconds", "summary", (), "Save-to-live reload latency."),
    MetricInfo(
        "provcfg_alerts_firing",
        "gauge",
        ("alertname", "provider", "pool"),
        "1 for each alert firing now (in-process evaluation).",
    ),
    MetricInfo(
        "provcfg_alertmanager_deliveries",
        "counter",
        ("result",),
        "Alertmanager posts by result: sent, failed (retried), dropped (gave up or queue full).",
    ),
    MetricInfo("provcfg_build", "info", ("version", "python"), "provcfg's version."),
)
"""Every family provcfg exports (docs/monitoring.md documents each)."""

_BY_NAME = {info.name: info for info in CATALOG}


def _family(name: str) -> Any:
    info = _BY_NAME[name]
    make = {
        "counter": CounterMetricFamily,
        "gauge": GaugeMetricFamily,
        "histogram": HistogramMetricFamily,
        "summary": SummaryMetricFamily,
    }[info.type]
    return make(name, info.help, labels=list(info.labels))


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    return [("+Inf" if b == float("inf") else repr(b), n) for b, n in histogram.cumulative()]


class ProvcfgCollector(Collector):
    """Reads a Metrics object (and optionally the alert states) on every scrape."""

    def __init__(
        self,
        metrics: Callable[[], Metrics],
        alerts: Callable[[], list[tuple[str, str, str]]] | None = None,
        version: str = "",
        generation: Callable[[], int] | None = None,
    ) -> None:
        self._metrics = metrics
        self._alerts = alerts
        self._version = version
        self._generation = generation

    def describe(self) -> Iterator[Metric]:
        """Nothing up front: the families depend on what has been recorded."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """One pass over the in-process state; never raises for a broken gauge."""
        metrics = self._metrics()
        yield from self._requests(metrics)
        counters = metrics.counters()
        yield from self._caches(metrics, counters)
        yield from self._pools(metrics, counters)
        yield from self._clis(metrics, counters)
        yield from self._warm(metrics, counters)
        yield from self._resilience(metrics, counters)
        yield from self._reloads(metrics, counters)
        yield from self._alert_states(counters)
        build = InfoMetricFamily("provcfg_build", _BY_NAME["provcfg_build"].help)
        build.add_metric([], {"version": self._version, "python": platform.python_version()})
        yield build

    def _requests(self, metrics: Metrics) -> Iterator[Metric]:
        names = (
            "provcfg_requests",
            "provcfg_request_errors",
            "provcfg_request_retries",
            "provcfg_chunks",
            "provcfg_input_tokens",
            "provcfg_output_tokens",
            "provcfg_cost_usd",
            "provcfg_connect_seconds",
            "provcfg_first_chunk_seconds",
            "provcfg_request_duration_seconds",
        )
        fam = {name: _family(name) for name in names}
        for provider, t in sorted(metrics.requests.providers().items()):
            labels = [provider, t.kind]
            fam["provcfg_requests"].add_metric(labels, t.requests)
            for error_kind, n in sorted(dict(t.errors).items()):
                fam["provcfg_request_errors"].add_metric([*labels, error_kind], n)
            fam["provcfg_request_retries"].add_metric(labels, t.retries)
            fam["provcfg_chunks"].add_metric(labels, t.chunks)
            fam["provcfg_input_tokens"].add_metric(labels, t.input_tokens)
            fam["provcfg_output_tokens"].add_metric(labels, t.output_tokens)
            fam["provcfg_cost_usd"].add_metric(labels, t.cost_usd)
            for name, hist in (
                ("provcfg_connect_seconds", t.connect),
                ("provcfg_first_chunk_seconds", t.first_chunk),
                ("provcfg_request_duration_seconds", t.total),
            ):
                # The sum is read after the buckets: a request landing in between makes
                # +Inf (the count) at most one behind the sum, never ahead of a bucket.
                buckets = _buckets(hist)
                fam[name].add_metric(labels, buckets, hist.sum)
        yield from fam.values()

    def _caches(self, metrics: Metrics, counters: dict[tuple[str, str], int]) -> Iterator[Metric]:
        # Every region seen gets each counter (0 until it first counts), so ratios have data.
        kinds = ("cache_hit", "cache_miss", "cache_error")
        regions = {label for (key, label) in counters if key in kinds}
        regions.update(metrics.read_gauges("cache_entries."))
        for name, counter in zip(
            ("provcfg_cache_hits", "provcfg_cache_misses", "provcfg_cache_errors"),
            kinds,
            strict=True,
        ):
            fam = _family(name)
            for region in sorted(regions):
                fam.add_metric([region], counters.get((counter, region), 0))
            yield fam
        for name, prefix in (
            ("provcfg_cache_evictions", "cache_evictions."),
            ("provcfg_cache_entries", "cache_entries."),
        ):
            fam = _family(name)
            for region, value in sorted(metrics.read_gauges(prefix).items()):
                fam.add_metric([region], float(value))
            yield fam

    def _pools(self, metrics: Metrics, counters: dict[tuple[str, str], int]) -> Iterator[Metric]:
        connections = _family("provcfg_pool_connections")
        limit = _family("provcfg_pool_max_connections")
        waiting = _family("provcfg_pool_waiting")
        pools = metrics.read_gauges("pool.")
        for pool, stats in sorted(pools.items()):
            if not isinstance(stats, dict):
                continue
            for state in ("in_use", "idle"):
                connections.add_metric([pool, state], float(stats.get(state, 0)))
            limit.add_metric([pool], float(stats.get("max_connections", 0)))
            waiting.add_metric([pool], float(stats.get("waiting", 0)))
        exhausted = _family("provcfg_pool_exhausted")
        # Every live pool gets a series (0 until it first runs dry), so rate() has data.
        counts = {label: 0 for label in pools}
        counts.update({label: v for (key, label), v in counters.items() if key == "pool_exhausted"})
        for pool, value in sorted(counts.items()):
            exhausted.add_metric([pool], value)
        yield from (connections, limit, waiting, exhausted)

    def _clis(self, metrics: Metrics, counters: dict[tuple[str, str], int]) -> Iterator[Metric]:
        detect = _family("provcfg_cli_detect_seconds")
        for command, (count, total) in sorted(metrics.series_totals("cli_detect_seconds").items()):
            detect.add_metric([command], count, total)
        yield detect
        for name, counter in (
            ("provcfg_cli_path_cache_hits", "cli_path_hit"),
            ("provcfg_cli_path_cache_misses", "cli_path_miss"),
            ("provcfg_cli_processes_spawned", "cli_process_spawned"),
            ("provcfg_cli_processes_killed", "cli_process_killed"),
        ):
            fam = _family(name)
            for (key, label), value in sorted(counters.items()):
                if key == counter:
                    fam.add_metric([label], value)
            yield fam
        running = _family("provcfg_cli_processes_running")
        for provider, value in sorted(metrics.read_gauges("cli_processes_running.").items()):
            running.add_metric([provider], float(value))
        yield running

    def _warm(self, metrics: Metrics, counters: dict[tuple[str, str], int]) -> Iterator[Metric]:
        ready = _family("provcfg_warm_spares_ready")
        alive = _family("provcfg_warm_processes")
        rss = _family("provcfg_warm_processes_rss_bytes")
        pools = metrics.read_gauges("warm_pool")
        for stats in pools.values():
            if not isinstance(stats, dict):
                continue
            for provider, entry in sorted(stats.items()):
                ready.add_metric([provider], float(entry.get("ready", 0)))
                alive.add_metric([provider], float(entry.get("processes", 0)))
                rss.add_metric([provider], float(entry.get("rss_bytes", 0)))
        yield from (ready, alive, rss)
        hits = _family("provcfg_warm_hits")
        misses = _family("provcfg_warm_misses")
        reaped = _family("provcfg_warm_reaped")
        for (key, label), value in sorted(counters.items()):
            if key == "warm_hit":
                hits.add_metric([label], value)
            elif key in ("warm_miss", "warm_reaped"):
                provider, _, reason = label.partition("/")
                (misses if key == "warm_miss" else reaped).add_metric([provider, reason], value)
        yield from (hits, misses, reaped)
        spawn = _family("provcfg_warm_spawn_seconds")
        for provider, (count, total) in sorted(metrics.series_totals("warm_spawn_seconds").items()):
            spawn.add_metric([provider], count, total)
        yield spawn

    def _resilience(
        self, metrics: Metrics, counters: dict[tuple[str, str], int]
    ) -> Iterator[Metric]:
        states = metrics.read_gauges("breaker_state.")
        state = _family("provcfg_breaker_state")
        for provider, value in sorted(states.items()):
            state.add_metric([provider], float(value))
        yield state
        transitions = _family("provcfg_breaker_transitions")
        # Every provider with a breaker gets each series (0 until it first moves).
        seen = {(p, s): 0 for p in states for s in ("open", "half_open", "closed")}
        for (key, label), value in counters.items():
            if key in ("breaker_open", "breaker_half_open", "breaker_closed"):
                seen[(label, key[len("breaker_") :])] = value
        for (provider, entered), value in sorted(seen.items()):
            transitions.add_metric([provider, entered], value)
        yield transitions
        for name, counter, base in (
            ("provcfg_breaker_rejected", "breaker_rejected", states),
            ("provcfg_fallbacks", "fallbacks", {}),
        ):
            fam = _family(name)
            counts = {label: 0 for label in base}
            counts.update({label: v for (key, label), v in counters.items() if key == counter})
            for provider, value in sorted(counts.items()):
                fam.add_metric([provider], value)
            yield fam

    def _reloads(self, metrics: Metrics, counters: dict[tuple[str, str], int]) -> Iterator[Metric]:
        generation = (
            self._generation()
            if self._generation is not None
            else metrics.value("config_generation")
        )
        if generation is not None:
            fam = _family("provcfg_config_generation")
            fam.add_metric([], float(generation))
            yield fam
        reloads = _family("provcfg_reloads")
        reloads.add_metric(["success"], counters.get(("reload_success", ""), 0))
        reloads.add_metric(["failure"], counters.get(("reload_failure", ""), 0))
        yield reloads
        for name, value_name in (
            ("provcfg_config_last_reload_successful", "config_last_reload_successful"),
            (
                "provcfg_config_last_reload_success_timestamp_seconds",
                "config_last_reload_success_timestamp",
            ),
        ):
            value = metrics.value(value_name)
            if value is not None:
                fam = _family(name)
                fam.add_metric([], float(value))
                yield fam
        latency = _family("provcfg_reload_duration_seconds")
        for count, total in metrics.series_totals("reload_seconds").values():
            latency.add_metric([], count, total)
        yield latency

    def _alert_states(self, counters: dict[tuple[str, str], int]) -> Iterator[Metric]:
        firing = _family("provcfg_alerts_firing")
        if self._alerts is not None:
            for name, provider, pool in self._alerts():
                firing.add_metric([name, provider, pool], 1.0)
        yield firing
        deliveries = _family("provcfg_alertmanager_deliveries")
        for result in ("sent", "failed", "dropped"):
            deliveries.add_metric([result], counters.get(("alertmanager_" + result, ""), 0))
        yield deliveries
