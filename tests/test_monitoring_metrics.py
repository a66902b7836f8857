"""serve_metrics over real HTTP: Prometheus text and OpenMetrics, JSON, health, alerts, reloads."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import provcfg
from provcfg._metrics import Metrics, RequestRecord
from provcfg._monitoring._collector import CATALOG
from provcfg._reqstats import BUCKETS
from provcfg.stub import StubServer
from tests.support_monitoring import poll
from tests.support_stub import stub_thread

__all__ = ["stub_thread"]

MANIFEST = """\
version: 1
pools: {shared: {max_connections: 4}}
cache:
  providers: {backend: memory, max_size: 8}
providers:
  local: {kind: anthropic-api, base_url: "URL", api_key: stub, pool: shared,
          model: stub-text, transport: fast, max_retries: 0}
monitoring:
  stale_after: STALE
"""


def _manifest(tmp_path: Path, url: str, stale: str = "5m") -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(MANIFEST.replace("URL", url).replace("STALE", stale))
    return path


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _rec(provider: str = "p", ok: bool = True, first: float = 0.002, total: float = 0.01,
         error_kind: str | None = None) -> RequestRecord:  # fmt: skip
    return RequestRecord(provider, "anthropic-api", "shared", ok, error_kind, 0.001, first,
                         total, 7, 1, 10, 20, 0.5)  # fmt: skip


async def _stream(rt: provcfg.Runtime, model: str = "stub-text") -> None:
    async for _ in rt.provider("local").stream("hi", model=model):
        pass


async def test_streams_against_the_stub_are_counted_in_prometheus_text(
    stub_thread: StubServer, tmp_path: Path
) -> None:
    """Real streams show up as request counters and cumulative histograms with bounded labels."""
    rt = provcfg.load(_manifest(tmp_path, stub_thread.base_url))
    try:
        for _ in range(3):
            await _stream(rt)
        with pytest.raises(provcfg.ProviderError):
            await _stream(rt, model="stub-fault-401")
        with provcfg.serve_metrics(rt, port=0) as handle:
            status, ctype, text = _get(f"{handle.url}/metrics")
    finally:
        await rt.aclose()
    assert status == 200 and ctype.startswith("text/plain")
    samples = _samples(text)
    labels = frozenset({("provider", "local"), ("kind", "anthropic-api")})
    assert samples[("provcfg_requests_total", labels)] == 4
    err = labels | {("error_kind", "authentication")}
    assert samples[("provcfg_request_errors_total", err)] == 1
    buckets = [
        samples[("provcfg_first_chunk_seconds_bucket", labels | {("le", le)})]
        for le in [*(repr(b) for b in BUCKETS), "+Inf"]
    ]
    assert buckets == sorted(buckets) and buckets[-1] == 3
    assert samples[("provcfg_first_chunk_seconds_count", labels)] == 3
    assert samples[("provcfg_request_duration_seconds_count", labels)] == 4
    assert samples[("provcfg_pool_exhausted_total", frozenset({("pool", "shared")}))] == 0
    assert samples[("provcfg_cache_misses_total", frozenset({("region", "providers")}))] >= 1
    allowed = {"provider", "kind", "error_kind", "region", "pool", "state", "le", "command",
               "result", "alertname", "version", "python", "quantile"}  # fmt: skip
    used = {k for (name, lbls) in samples if name.startswith("provcfg_") for k, _ in lbls}
    assert used <= allowed


async def test_openmetrics_is_served_when_asked(tmp_path: Path) -> None:
    """An Accept header asking for OpenMetrics gets OpenMetrics, ending in # EOF."""
    rt = provcfg.load(_manifest(tmp_path, "http://127.0.0.1:9"))
    rt.metrics.record_request(_rec("local"))
    try:
        with provcfg.serve_metrics(rt, port=0) as handle:
            accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
            status, ctype, text = _get(f"{handle.url}/metrics", accept)
    finally:
        await rt.aclose()
    assert status == 200 and ctype.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")
    assert 'provcfg_requests_total{kind="anthropic-api",provider="local"} 1.0' in text


async def test_json_health_and_alert_endpoints(tmp_path: Path) -> None:
    """/metrics.json is the snapshot, /healthz names the generation, /alerts lists rule states."""
    path = _manifest(tmp_path, "http://127.0.0.1:9")
    path.write_text(
        path.read_text().replace(
            "monitoring:\n", "monitoring:\n  alerts: [{metric: error_rate, above: 0.5}]\n"
        )
    )
    rt = provcfg.load(path)
    rt.metrics.record_request(_rec("local", ok=False, error_kind="timeout"))
    rt.alerts.evaluate()
    try:
        with provcfg.serve_metrics(rt, port=0) as handle:
            _, _, snap = _get(f"{handle.url}/metrics.json")
            code, _, health = _get(f"{handle.url}/healthz")
            _, _, alerts = _get(f"{handle.url}/alerts")
            missing, _, _ = _get(f"{handle.url}/nope")
    finally:
        await rt.aclose()
    assert "latency" in json.loads(snap) and "counters" in json.loads(snap)
    assert code == 200 and json.loads(health)["generation"] == 1
    states = json.loads(alerts)["alerts"]
    assert [(s["name"], s["provider"], s["state"]) for s in states] == [
        ("error_rate", "local", "firing")
    ]
    assert missing == 404


def test_a_port_in_use_is_a_clear_error() -> None:
    """Binding a port another socket holds raises ProvcfgError naming the address and the fix."""
    metrics = Metrics()

    class Source:
        def __init__(self) -> None:
            from provcfg._monitoring._alerts import AlertEvaluator

            self.metrics = metrics
            self.generation = 1
            self.alerts = AlertEvaluator(metrics)

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(provcfg.ProvcfgError, match=f"127.0.0.1:{port}.*another port"):
            provcfg.serve_metrics(Source(), port=port)
    handle = provcfg.serve_metrics(Source(), port=0)
    handle.close()
    with socket.socket() as again:  # the port is free after close()
        again.bind(("127.0.0.1", handle.port))


async def test_live_metrics_survive_reloads_and_health_turns_stale(tmp_path: Path) -> None:
    """Counters keep counting across a reload; a failed reload past stale_after gives 503."""
    path = _manifest(tmp_path, "http://127.0.0.1:9", stale="0s")
    async with provcfg.watch(path) as live:
        live.metrics.record_request(_rec("local"))
        with provcfg.serve_metrics(live, port=0) as handle:
            path.write_text(path.read_text().replace("max_connections: 4", "max_connections: 5"))
            await live.wait_for_generation(2)
            live.metrics.record_request(_rec("local"))
            _, _, text = _get(f"{handle.url}/metrics")
            labels = frozenset({("provider", "local"), ("kind", "anthropic-api")})
            assert _samples(text)[("provcfg_requests_total", labels)] == 2
            assert _samples(text)[("provcfg_config_generation", frozenset())] == 2
            path.write_text("version: 1\nproviders: {}\n")

            def unhealthy() -> Any:
                code, _, body = _get(f"{handle.url}/healthz")
                return (code, json.loads(body)) if code == 503 else None

            _, body = await asyncio.to_thread(poll, unhealthy, timeout=30)
            assert body["last_reload"] == "failed" and body["generation"] == 2
            assert body["status"] == "stale"


def test_catalog_names_follow_prometheus_conventions() -> None:
    """Every exported family has the provcfg_ prefix, and time families end in _seconds."""
    for info in CATALOG:
        assert info.name.startswith("provcfg_")
        assert not info.name.endswith("_total")  # the client adds it to counters
        if info.type == "histogram" or "duration" in info.name:
            assert info.name.endswith("_seconds")
