"""Delivery of alert events to Alertmanager (``POST /api/v2/alerts``), off every stream's path.

:meth:`AlertmanagerSender.submit` only puts the event on a bounded queue (the oldest
waiting alert is dropped and counted when it is full), so the evaluator, and with it
every stream, never waits for the network. A daemon thread posts batches with a
synchronous httpx2 client, retrying failures with capped exponential back-off and
jitter; each failed try counts ``alertmanager_failed``, each alert given up on
``alertmanager_dropped``, each delivered one ``alertmanager_sent`` (exported as
``provcfg_alertmanager_deliveries_total{result}``). The URL may hold credentials: it is
never logged unmasked.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from provcfg._logs import get_logger
from provcfg._manifest import AlertmanagerSpec, mask_url

if TYPE_CHECKING:
    import httpx2

    from provcfg._metrics import Metrics
    from provcfg._monitoring._event import AlertEvent

__all__ = ["AlertmanagerSender", "alertmanager_payload"]

log = get_logger("provcfg.monitoring")

_BATCH = 64


def _rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def alertmanager_payload(event: AlertEvent, *, resend_every: float) -> dict[str, Any]:
    """One alert in Alertmanager's v2 ``postableAlert`` form.

    A firing alert's ``endsAt`` lies a few resend periods ahead, so Alertmanager
    resolves it by itself if provcfg stops resending (a crashed process); a resolved
    alert's ``endsAt`` is the time it resolved.
    """
    labels = {"alertname": event.name, "service": "provcfg", "severity": event.severity}
    if event.provider:
        labels["provider"] = event.provider
    if event.pool:
        labels["pool"] = event.pool
    value = "n/a" if event.value != event.value else f"{event.value:.6g}"
    ends = event.at if event.state == "resolved" else event.at + 3 * resend_every
    return {
        "labels": labels,
        "annotations": {
            "summary": f"{event.metric} {value} (threshold {event.threshold:.6g})",
            "metric": event.metric,
            "value": value,
            "threshold": f"{event.threshold:.6g}",
        },
        "startsAt": _rfc3339(event.since),
        "endsAt": _rfc3339(ends),
    }


class AlertmanagerSender:
    """A bounded queue and one thread posting to one Alertmanager."""

    def __init__(self, spec: AlertmanagerSpec, metrics: Metrics) -> None:
        self.spec = spec
        self._metrics = metrics
        self._url = spec.url.get_secret_value().rstrip("/") + "/api/v2/alerts"
        self._where = mask_url(spec.url.get_secret_value())
        self._queue: queue.Queue[AlertEvent] = queue.Queue(maxsize=spec.queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="provcfg-alertmanager", daemon=True)
        self._thread.start()

    def submit(self, event: AlertEvent) -> None:
        """Queue ``event`` for delivery; never blocks (a full queue drops its oldest alert)."""
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
                    self._metrics.incr("alertmanager_dropped")

    def pending(self) -> int:
        """Alerts waiting for delivery now."""
        return self._queue.qsize()

    def close(self, timeout: float = 2.0) -> None:
        """Stop after at most one more delivery attempt per queued batch (bounded wait)."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        import httpx2

        with httpx2.Client(timeout=self.spec.timeout) as client:
            while not self._stop.is_set():
                try:
                    first = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                batch = [first]
                while len(batch) < _BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._deliver(client, batch)

    def _deliver(self, client: httpx2.Client, batch: list[AlertEvent]) -> None:
        import httpx2

        body = [alertmanager_payload(event, resend_every=self.spec.resend_every) for event in batch]
        for attempt in range(self.spec.max_retries + 1):
            try:
                response = client.post(self._url, json=body)
            except httpx2.HTTPError as exc:
                problem = type(exc).__name__
            else:
                if response.status_code < 300:
                    self._metrics.incr("alertmanager_sent", amount=len(batch))
                    return
                problem = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    # A rejected payload will not pass on a retry.
                    self._metrics.incr("alertmanager_failed")
                    break
            self._metrics.incr("alertmanager_failed")
            if attempt == self.spec.max_retries:
                break
            wait = min(self.spec.retry_max_wait, 0.25 * 2**attempt)
            wait *= 0.5 + random.random() / 2  # noqa: S311  jitter, not cryptography
            log.info(
                "alertmanager_retry",
                url=self._where,
                problem=problem,
                attempt=attempt + 1,
                wait=round(wait, 3),
            )
            if self._stop.wait(wait):
                break
        self._metrics.incr("alertmanager_dropped", amount=len(batch))
        log.warning(
            "alertmanager_delivery_failed",
            url=self._where,
            problem=problem,
            alerts=len(batch),
            at=time.time(),
        )
