"""Monitoring state shared by every generation of one runtime lineage.

A runtime lineage (a Runtime and the ones rebuilt from it by reloads) shares one
:class:`~provcfg._metrics.Metrics`, and with it one :class:`Monitoring`: the alert
evaluator (``rt.alerts``), its Alertmanager sender and the optional trace observer.
Each generation calls :meth:`Monitoring.configure` once its build succeeded, holds a
reference, and releases it when it closes; the threads stop with the last reference.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from provcfg._manifest import MonitoringSpec
from provcfg._metrics import Metrics
from provcfg._monitoring._alertmanager import AlertmanagerSender
from provcfg._monitoring._alerts import AlertEvaluator, load_baseline

__all__ = ["Monitoring"]


class Monitoring:
    """The alert evaluator, its sender and the tracer of one Metrics lineage."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.alerts = AlertEvaluator(metrics)
        self._refs = 0
        self._lock = threading.Lock()
        self._tracer: object | None = None

    def check(self, spec: MonitoringSpec, *, file: str) -> dict[str, dict[str, float]]:
        """Everything configure would read from outside the manifest (the baseline file).

        Raises:
            ManifestError: the baseline file is missing or malformed, or a rule's
                provider has no baseline value for its metric.
        """
        from provcfg._errors import ManifestError

        if spec.traces:
            from provcfg._monitoring._tracing import traces_available

            if not traces_available():
                raise ManifestError.single(
                    file,
                    "traces need OpenTelemetry; install the extra: pip install 'provcfg[otel]'",
                    loc="monitoring.traces",
                )
        if spec.baseline is None:
            return {}
        baseline = load_baseline(spec.baseline, manifest_file=file)

        for i, rule in enumerate(spec.alerts):
            if rule.above_baseline is None or rule.provider is None:
                continue
            if rule.metric not in baseline.get(rule.provider, {}):
                raise ManifestError.single(
                    file,
                    f"the baseline file has no {rule.metric} for provider {rule.provider!r}; "
                    "add it or use above: instead",
                    loc=f"monitoring.alerts.{i}.above_baseline",
                )
        return baseline

    def configure(
        self,
        spec: MonitoringSpec,
        *,
        baseline: dict[str, dict[str, float]],
        pools: Iterable[str],
    ) -> None:
        """Apply a generation's monitoring section (after its build succeeded)."""
        with self._lock:
            self._refs += 1
            current = self.alerts.spec.alertmanager
            sender = self.alerts._sender
            if spec.alertmanager != current or (spec.alertmanager and sender is None):
                sender = (
                    AlertmanagerSender(spec.alertmanager, self.metrics)
                    if spec.alertmanager is not None
                    else None
                )
            replaced = self.alerts.configure(spec, baseline=baseline, pools=pools, sender=sender)
            self._set_traces(spec.traces)
            self.alerts.start()
        if replaced is not None:
            replaced.close()

    def release(self) -> None:
        """Drop one generation's reference; the last one stops the threads."""
        with self._lock:
            self._refs -= 1
            last = self._refs <= 0
            if last:
                self._set_traces(False)
        if last:
            self.alerts.close()

    def trace_reload(self, *, ok: bool, generation: int, seconds: float | None) -> None:
        """A reload span, when traces are on (called by the reloader)."""
        tracer = self._tracer
        if tracer is not None:
            from provcfg._monitoring._tracing import RequestTracer

            assert isinstance(tracer, RequestTracer)
            tracer.on_reload(ok=ok, generation=generation, seconds=seconds)

    def _set_traces(self, on: bool) -> None:
        if on and self._tracer is None:
            from provcfg._monitoring._tracing import RequestTracer

            tracer = RequestTracer()
            self.metrics.add_request_observer(tracer.on_request)
            self._tracer = tracer
        elif not on and self._tracer is not None:
            from provcfg._monitoring._tracing import RequestTracer

            assert isinstance(self._tracer, RequestTracer)
            self.metrics.remove_request_observer(self._tracer.on_request)
            self._tracer = None
