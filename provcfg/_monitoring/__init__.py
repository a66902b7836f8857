"""Monitoring: the Prometheus exporter, the alert evaluator and its Alertmanager sender,
the Prometheus rules and Grafana dashboard generators, optional OpenTelemetry spans.

Layer: above providers, pools and caches (it reads their metrics), below the runtime
(the runtime owns a :class:`~provcfg._monitoring._lineage.Monitoring`; nothing here
imports the runtime or the reloader). ``serve_metrics`` takes any object with
``metrics``, ``generation`` and ``alerts`` (a Runtime or a LiveRuntime).
"""

from provcfg._monitoring._server import MetricsHandle, MetricsSource, serve_metrics

__all__ = ["MetricsHandle", "MetricsSource", "serve_metrics"]
