"""OpenTelemetry spans for requests and reloads (``monitoring.traces: true``, extra ``otel``).

This module is imported only when a manifest turns traces on, so a process without
them pays nothing: no import, no observer. With them, one request observer turns each
:class:`~provcfg._metrics.RequestRecord` into a finished span after the request ended
(start time back-dated by its duration), with the GenAI semantic-convention attributes
and the first chunk as a span event; no work happens per chunk. Spans go to whatever
tracer provider the application configured (``opentelemetry.trace.set_tracer_provider``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provcfg._metrics import RequestRecord

__all__ = ["RequestTracer", "traces_available"]

_SYSTEMS = {
    "anthropic-api": "anthropic",
    "claude-code": "anthropic",
    "codex": "openai",
    "opencode": "opencode",
}


def traces_available() -> bool:
    """Whether the OpenTelemetry API can be imported (the ``otel`` extra is installed)."""
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


class RequestTracer:
    """Makes one span per finished request and one per reload."""

    def __init__(self) -> None:
        from opentelemetry import trace

        from provcfg._version import __version__

        self._trace = trace
        self._tracer = trace.get_tracer("provcfg", __version__)

    def on_request(self, rec: RequestRecord) -> None:
        """Record ``rec`` as a span named ``chat <provider>`` (request observer)."""
        end = time.time_ns()
        start = end - int(rec.total_s * 1e9)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": _SYSTEMS.get(rec.kind, rec.kind),
            "gen_ai.provider.name": _SYSTEMS.get(rec.kind, rec.kind),
            "gen_ai.usage.input_tokens": rec.input_tokens,
            "gen_ai.usage.output_tokens": rec.output_tokens,
            "provcfg.provider": rec.provider,
            "provcfg.kind": rec.kind,
            "provcfg.chunks": rec.chunks,
            "provcfg.retries": rec.retries,
        }
        model = getattr(rec, "model", None)
        if model:
            attributes["gen_ai.request.model"] = model
        if rec.pool:
            attributes["provcfg.pool"] = rec.pool
        if rec.cost_usd is not None:
            attributes["provcfg.cost_usd"] = rec.cost_usd
        span = self._tracer.start_span(
            f"chat {rec.provider}",
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
            start_time=start,
        )
        if rec.connect_s is not None:
            span.add_event("provcfg.connected", timestamp=start + int(rec.connect_s * 1e9))
        if rec.first_chunk_s is not None:
            span.add_event(
                "gen_ai.first_chunk",
                {"provcfg.first_chunk_seconds": rec.first_chunk_s},
                timestamp=start + int(rec.first_chunk_s * 1e9),
            )
        if not rec.ok:
            span.set_attribute("error.type", rec.error_kind or "unknown")
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, rec.error_kind))
        span.end(end_time=end)

    def on_reload(self, *, ok: bool, generation: int, seconds: float | None) -> None:
        """Record one reload attempt as a span named ``provcfg.reload``."""
        end = time.time_ns()
        start = end - int((seconds or 0.0) * 1e9)
        span = self._tracer.start_span(
            "provcfg.reload",
            attributes={"provcfg.generation": generation, "provcfg.reload.ok": ok},
            start_time=start,
        )
        if not ok:
            span.set_attribute("error.type", "reload_failed")
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, "reload failed"))
        span.end(end_time=end)
