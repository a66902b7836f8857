"""``provcfg alerts export`` and ``provcfg dashboard``: Prometheus rules and a Grafana model.

Both are generated from the manifest over the families of
:data:`provcfg._monitoring._collector.CATALOG`, so they query exactly what
``/metrics`` exports. The rules mean what the in-process evaluator means, computed by
Prometheus from the histograms and counters (quantiles are bucket-interpolated there).
"""

from __future__ import annotations

import json
from typing import Any

from provcfg._manifest import AlertSpec, Manifest

__all__ = ["DASHBOARD_PANELS", "dashboard_json", "prometheus_rules", "rule_expression"]

_HISTOGRAMS = {
    "first_chunk_seconds": "provcfg_first_chunk_seconds",
    "total_seconds": "provcfg_request_duration_seconds",
    "connect_seconds": "provcfg_connect_seconds",
}


def _duration(seconds: float) -> str:
    """A PromQL duration: whole seconds as ``300s``, else milliseconds."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def _number(value: float) -> str:
    return repr(float(value))


def rule_expression(rule: AlertSpec, threshold: float, provider: str | None = None) -> str:
    """The PromQL condition of ``rule`` (for ``provider`` when given, else the rule's own)."""
    target = provider or rule.provider
    window = _duration(rule.window)
    op = (
        "<"
        if rule.below is not None and rule.above is None and rule.above_baseline is None
        else ">"
    )
    sel = f'{{provider="{target}"}}' if target else ""
    metric = rule.metric
    if metric in _HISTOGRAMS:
        family = _HISTOGRAMS[metric]
        value = (
            f"histogram_quantile({_number(rule.quantile)}, sum by (provider, le) "
            f"(rate({family}_bucket{sel}[{window}])))"
        )
        count = f"sum by (provider) (increase({family}_count{sel}[{window}]))"
    elif metric == "error_rate":
        value = (
            f"sum by (provider) (increase(provcfg_request_errors_total{sel}[{window}])) "
            f"/ sum by (provider) (increase(provcfg_requests_total{sel}[{window}]))"
        )
        count = f"sum by (provider) (increase(provcfg_requests_total{sel}[{window}]))"
    elif metric == "chunks_per_second":
        value = (
            f"sum by (provider) (increase(provcfg_chunks_total{sel}[{window}])) "
            f"/ sum by (provider) (increase(provcfg_request_duration_seconds_sum{sel}[{window}]))"
        )
        count = f"sum by (provider) (increase(provcfg_requests_total{sel}[{window}]))"
    elif metric == "pool_exhausted_rate":
        pool = f'{{pool="{rule.pool}"}}' if rule.pool else ""
        rate = f"rate(provcfg_pool_exhausted_total{pool}[{window}])"
        return f"sum by (pool) ({rate}) {op} {_number(threshold)}"
    else:  # reload_failures
        return (
            f'sum(increase(provcfg_reloads_total{{result="failure"}}[{window}])) '
            f"{op} {_number(threshold)}"
        )
    expr = f"({value}) {op} {_number(threshold)}"
    if rule.min_requests > 0:
        expr += f" and on (provider) ({count} >= {rule.min_requests})"
    return expr


def prometheus_rules(manifest: Manifest, baseline: dict[str, dict[str, float]]) -> dict[str, Any]:
    """A Prometheus alerting-rules document (one group) for ``manifest.monitoring.alerts``.

    ``above_baseline`` rules get their thresholds from ``baseline`` now: a rule without
    a provider becomes one rule per provider the baseline file knows.
    """
    rules: list[dict[str, Any]] = []
    for rule in manifest.monitoring.alerts:
        targets: list[tuple[str | None, float]] = []
        if rule.above_baseline is not None:
            names = [rule.provider] if rule.provider else sorted(baseline)
            for name in names:
                base = baseline.get(name, {}).get(rule.metric)
                if base is not None:
                    targets.append((name, base * rule.above_baseline))
        else:
            threshold = rule.above if rule.above is not None else rule.below
            assert threshold is not None  # the model requires a threshold
            targets.append((rule.provider, threshold))
        for provider, threshold in targets:
            entry: dict[str, Any] = {
                "alert": rule.label,
                "expr": rule_expression(rule, threshold, provider),
            }
            if rule.for_ > 0:
                entry["for"] = _duration(rule.for_)
            entry["labels"] = {"severity": rule.severity, "service": "provcfg"}
            entry["annotations"] = {
                "summary": f"{rule.metric} crossed {threshold:.6g}"
                + (f" on provider {provider}" if provider else "")
                + " (from provcfg's manifest)",
            }
            rules.append(entry)
    return {"groups": [{"name": "provcfg", "rules": rules}]}


RATE = "$__rate_interval"
"""Grafana's rate window variable, used in every dashboard query."""

DASHBOARD_PANELS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # (row, title, unit, queries)
    (
        "Latency",
        "First chunk p95 by provider",
        "s",
        (
            "histogram_quantile(0.95, sum by (provider, le) "
            f"(rate(provcfg_first_chunk_seconds_bucket[{RATE}])))",
        ),
    ),
    (
        "Latency",
        "Request duration p50 / p95 by provider",
        "s",
        (
            "histogram_quantile(0.5, sum by (provider, le) "
            f"(rate(provcfg_request_duration_seconds_bucket[{RATE}])))",
            "histogram_quantile(0.95, sum by (provider, le) "
            f"(rate(provcfg_request_duration_seconds_bucket[{RATE}])))",
        ),
    ),
    (
        "Traffic",
        "Requests per second by provider",
        "reqps",
        (f"sum by (provider, kind) (rate(provcfg_requests_total[{RATE}]))",),
    ),
    (
        "Traffic",
        "Tokens per second by provider",
        "short",
        (
            f"sum by (provider) (rate(provcfg_input_tokens_total[{RATE}]))",
            f"sum by (provider) (rate(provcfg_output_tokens_total[{RATE}]))",
        ),
    ),
    (
        "Errors",
        "Errors per second by provider and kind",
        "reqps",
        (f"sum by (provider, error_kind) (rate(provcfg_request_errors_total[{RATE}]))",),
    ),
    (
        "Errors",
        "Error ratio by provider",
        "percentunit",
        (
            f"sum by (provider) (rate(provcfg_request_errors_total[{RATE}])) / "
            f"sum by (provider) (rate(provcfg_requests_total[{RATE}]))",
        ),
    ),
    (
        "Pools",
        "Pool connections by state",
        "short",
        ("sum by (pool, state) (provcfg_pool_connections)",),
    ),
    (
        "Pools",
        "Pool exhaustion per second",
        "short",
        (f"sum by (pool) (rate(provcfg_pool_exhausted_total[{RATE}]))",),
    ),
    (
        "Caches",
        "Cache hit ratio by region",
        "percentunit",
        (
            f"sum by (region) (rate(provcfg_cache_hits_total[{RATE}])) / "
            f"(sum by (region) (rate(provcfg_cache_hits_total[{RATE}])) + "
            f"sum by (region) (rate(provcfg_cache_misses_total[{RATE}])))",
        ),
    ),
    (
        "Reloads",
        "Config generation and reloads",
        "short",
        (
            "max(provcfg_config_generation)",
            f"sum by (result) (increase(provcfg_reloads_total[{RATE}]))",
        ),
    ),
    (
        "CLI processes",
        "Agent CLI processes",
        "short",
        (
            "sum by (provider) (provcfg_cli_processes_running)",
            f"sum by (provider) (rate(provcfg_cli_processes_spawned_total[{RATE}]))",
        ),
    ),
    (
        "Alerts",
        "Alerts firing",
        "short",
        ("sum by (alertname, provider) (provcfg_alerts_firing)",),
    ),
)
"""Every panel of the generated dashboard: (row, title, unit, PromQL queries)."""


def dashboard_json(manifest: Manifest, *, title: str = "provcfg") -> str:
    """A Grafana dashboard (JSON model, schemaVersion 39) over provcfg's metrics.

    One row per concern (latency, traffic, errors, pools, caches, reloads, CLI
    processes, alerts); a Prometheus data source is chosen on import (``DS_PROMETHEUS``).
    The manifest's alert thresholds are drawn on the latency panels of their providers.
    """
    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    panels: list[dict[str, Any]] = []
    y = 0
    panel_id = 1
    row = ""
    x = 0
    for row_title, title_, unit, queries in DASHBOARD_PANELS:
        if row_title != row:
            if x:
                y += 8
                x = 0
            panels.append(
                {
                    "type": "row",
                    "title": row_title,
                    "id": panel_id,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "panels": [],
                }
            )
            panel_id += 1
            y += 1
            row = row_title
        panels.append(
            {
                "type": "timeseries",
                "title": title_,
                "id": panel_id,
                "datasource": datasource,
                "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
                "fieldConfig": {
                    "defaults": {"unit": unit, **_thresholds(manifest, title_)},
                    "overrides": [],
                },
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {"refId": chr(ord("A") + i), "expr": q, "datasource": datasource}
                    for i, q in enumerate(queries)
                ],
            }
        )
        panel_id += 1
        x = 12 - x
        if x == 0:
            y += 8
    model = {
        "title": title,
        "uid": "provcfg",
        "tags": ["provcfg"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "templating": {"list": []},
        "annotations": {"list": []},
        "description": "Generated by provcfg dashboard from "
        + ", ".join(sorted(manifest.providers))
        + " (providers)",
        "panels": panels,
    }
    return json.dumps(model, indent=2) + "\n"


def _thresholds(manifest: Manifest, title: str) -> dict[str, Any]:
    metric = (
        "first_chunk_seconds"
        if title.startswith("First chunk")
        else "total_seconds"
        if title.startswith("Request duration")
        else None
    )
    steps = [
        rule.above
        for rule in manifest.monitoring.alerts
        if metric is not None and rule.metric == metric and rule.above is not None
    ]
    if not steps:
        return {}
    return {
        "thresholds": {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}]
            + [{"color": "red", "value": v} for v in sorted(set(steps))],
        },
        "custom": {"thresholdsStyle": {"mode": "line"}},
    }
