"""``provcfg.serve_metrics``: /metrics, /metrics.json, /healthz and /alerts over HTTP.

A small WSGI app served by a threading ``wsgiref`` server in a daemon thread (the way
prometheus-client's own ``start_wsgi_server`` does it); ``/metrics`` is
prometheus-client's WSGI app over a private registry holding provcfg's collector and
the process collector, so content negotiation (OpenMetrics on ``Accept``) and gzip are
the library's. Scrapes read the source's state at that moment: nothing is recorded here.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from provcfg._errors import ProvcfgError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from provcfg._metrics import Metrics
    from provcfg._monitoring._alerts import AlertEvaluator

__all__ = ["MetricsHandle", "MetricsSource", "serve_metrics"]


class MetricsSource(Protocol):
    """What ``serve_metrics`` reads: a Runtime or the live object of ``provcfg.watch``."""

    @property
    def metrics(self) -> Metrics:
        """The lineage's metrics (they survive reloads)."""
        ...

    @property
    def generation(self) -> int:
        """The live configuration's generation."""
        ...

    @property
    def alerts(self) -> AlertEvaluator:
        """The alert evaluator."""
        ...


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use must be an error, not shared


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Access logs are not a library's business."""


class MetricsHandle:
    """A running metrics server: ``port``, ``url`` and ``close()`` (also a context manager)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host: str = str(server.server_address[0])
        self.port: int = int(server.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> MetricsHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json(start: StartResponse, status: str, body: Any) -> list[bytes]:
    data = json.dumps(body, default=str).encode()
    start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _health(source: MetricsSource) -> tuple[str, dict[str, Any]]:
    metrics = source.metrics
    ok = metrics.value("config_last_reload_successful", 1) == 1
    failing_since = metrics.value("config_reload_failing_since")
    stale_after = source.alerts.spec.stale_after
    body: dict[str, Any] = {
        "generation": source.generation,
        "last_reload": "ok" if ok else "failed",
        "last_success": metrics.value("config_last_reload_success_timestamp"),
    }
    if not ok:
        body["error"] = metrics.value("config_last_reload_error", "")
        if isinstance(failing_since, int | float):
            stale_for = time.time() - failing_since
            body["failing_for_seconds"] = round(stale_for, 3)
            if stale_for > stale_after:
                body["status"] = "stale"
                return "503 Service Unavailable", body
    body["status"] = "ok"
    return "200 OK", body


def make_app(source: MetricsSource) -> Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]:
    """The WSGI app behind :func:`serve_metrics` (usable in your own WSGI server too)."""
    from prometheus_client import CollectorRegistry, make_wsgi_app
    from prometheus_client.process_collector import ProcessCollector

    from provcfg._monitoring._collector import ProvcfgCollector
    from provcfg._version import __version__

    registry = CollectorRegistry(auto_describe=False)

    def firing() -> list[tuple[str, str, str]]:
        # Read through the source each time: a live object's runtime changes on reload.
        return source.alerts.firing()

    registry.register(
        ProvcfgCollector(
            lambda: source.metrics,
            firing,
            version=__version__,
            generation=lambda: source.generation,
        )
    )
    registry.register(ProcessCollector(registry=None))
    metrics_app = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _json(start, "405 Method Not Allowed", {"error": "only GET"})
        if path == "/metrics":
            scraped: Iterable[bytes] = metrics_app(environ, start)
            return scraped
        if path == "/metrics.json":
            return _json(start, "200 OK", source.metrics.snapshot())
        if path == "/healthz":
            status, body = _health(source)
            return _json(start, status, body)
        if path == "/alerts":
            return _json(start, "200 OK", {"alerts": [s.as_dict() for s in source.alerts.states()]})
        return _json(
            start,
            "404 Not Found",
            {
                "error": f"no such path {path!r}",
                "paths": ["/metrics", "/metrics.json", "/healthz", "/alerts"],
            },
        )

    return app


def serve_metrics(
    source: MetricsSource, host: str = "127.0.0.1", port: int = 9464
) -> MetricsHandle:
    """Serve ``source``'s metrics, health and alerts over HTTP in a background thread.

    ``source`` is a Runtime or the live object of ``provcfg.watch`` (its metrics
    survive reloads). The default host is loopback: binding anything else needs an
    explicit ``host``. ``port=0`` picks a free port (read it from the handle).

    Returns:
        A :class:`MetricsHandle` with ``port``, ``url`` and ``close()``.

    Raises:
        ProvcfgError: the address cannot be bound (port in use, unknown host).
    """
    app = make_app(source)
    server_class = _Server6 if ":" in host else _Server
    try:
        server = make_server(
            host, port, app, server_class=server_class, handler_class=_QuietHandler
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        hint = "; pick another port (0 picks a free one)" if port else ""
        raise ProvcfgError(f"cannot serve metrics on {host}:{port}: {reason}{hint}") from None
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.2},
        name="provcfg-metrics",
        daemon=True,
    )
    thread.start()
    return MetricsHandle(server, thread)
