"""The in-process alert evaluator: ``monitoring.alerts`` rules on rolling time windows.

Every ``evaluation_interval`` a daemon thread reads the timestamped request window of
:class:`~provcfg._reqstats.RequestStats` (and samples a few counters: pool exhaustion,
failed reloads) and moves each alert instance through inactive -> pending -> firing ->
resolved. A rule names a provider, or watches each provider (each pool) on its own: one
instance per target. Transitions, and only transitions, become :class:`AlertEvent`
objects: subscribers get them (in the evaluator's thread), one structlog warning is
logged, and the Alertmanager sender (when configured) queues them without blocking.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from provcfg._errors import ManifestError
from provcfg._logs import get_logger
from provcfg._manifest import LATENCY_METRICS, AlertSpec, MonitoringSpec
from provcfg._monitoring._event import AlertEvent

if TYPE_CHECKING:
    from provcfg._metrics import Metrics, RequestRecord
    from provcfg._monitoring._alertmanager import AlertmanagerSender

__all__ = ["AlertEvaluator", "AlertEvent", "AlertState", "load_baseline"]

log = get_logger("provcfg.monitoring")

State = Literal["inactive", "pending", "firing"]


@dataclass(slots=True)
class AlertState:
    """The evaluator's view of one alert instance (one rule on one target)."""

    rule: AlertSpec
    provider: str | None
    pool: str | None
    threshold: float
    state: State = "inactive"
    since: float = 0.0  # Unix time the condition began to hold
    value: float = math.nan
    last_sent: float = 0.0  # monotonic time last handed to Alertmanager

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable form (``/alerts``)."""
        return {
            "name": self.rule.label,
            "state": self.state,
            "metric": self.rule.metric,
            "provider": self.provider,
            "pool": self.pool,
            "value": None if math.isnan(self.value) else self.value,
            "threshold": self.threshold,
            "severity": self.rule.severity,
            "since": self.since if self.state != "inactive" else None,
        }


Subscriber = Callable[[AlertEvent], None]


def load_baseline(path: str, *, manifest_file: str) -> dict[str, dict[str, float]]:
    """Read a baseline JSON file: ``{provider: {metric: p95 seconds}}`` (or ``{provider: p95}``
    meaning first_chunk_seconds). A relative path is read from the manifest's folder.

    Raises:
        ManifestError: the file is missing, not JSON, or holds anything but positive numbers.
    """
    full = os.path.join(os.path.dirname(os.path.abspath(manifest_file)), os.path.expanduser(path))

    def bad(message: str) -> ManifestError:
        return ManifestError.single(manifest_file, message, loc="monitoring.baseline")

    from provcfg._loading import read_manifest_file

    try:
        # Read as a manifest is: only a regular file (a FIFO there never blocks a reload),
        # at most the size cap.
        data = json.loads(read_manifest_file(full).data.decode("utf-8"))
    except ManifestError as exc:
        reason = exc.problems[0].message
        if reason.startswith("file not found"):
            raise bad(
                f"baseline file {full} does not exist; write it or remove baseline:"
            ) from None
        raise bad(f"baseline file {full}: {reason}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad(f"baseline file {full} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(data, Mapping):
        raise bad(f"baseline file {full} must hold an object: {{provider: {{metric: p95}}}}")
    out: dict[str, dict[str, float]] = {}
    for provider, entry in data.items():
        table = entry if isinstance(entry, Mapping) else {"first_chunk_seconds": entry}
        for metric, value in table.items():
            if metric not in LATENCY_METRICS:
                raise bad(
                    f"baseline file {full}: {provider}.{metric} is not a latency metric "
                    f"({', '.join(LATENCY_METRICS)})"
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise bad(f"baseline file {full}: {provider}.{metric} must be a positive number")
            out.setdefault(str(provider), {})[metric] = float(value)
    return out


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


class AlertEvaluator:
    """Evaluates the configured rules against one :class:`~provcfg._metrics.Metrics`.

    Shared by every generation of a runtime lineage, so alert states and subscribers
    survive reloads. ``subscribe(callback)`` is the public part (``rt.alerts``).
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str | None, str | None], AlertState] = {}
        self._rules: tuple[AlertSpec, ...] = ()
        self._baseline: dict[str, dict[str, float]] = {}
        self._pools: tuple[str, ...] = ()
        self._subscribers: list[Subscriber] = []
        self._samples: deque[tuple[float, dict[tuple[str, str], int]]] = deque()
        self._interval = 1.0
        self._resend = 60.0
        self._sender: AlertmanagerSender | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.spec = MonitoringSpec()
        """The monitoring section in force (the latest generation's)."""

    # ----------------------------------------------------------------- public

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` on every later firing/resolved transition.

        Callbacks run in the evaluator's thread: keep them quick (hand over to an event
        loop with ``loop.call_soon_threadsafe``). An exception a callback raises is
        logged and does not stop the others. Returns a function that unsubscribes.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def states(self) -> list[AlertState]:
        """Every alert instance seen so far, firing ones first."""
        with self._lock:
            states = list(self._states.values())
        order = {"firing": 0, "pending": 1, "inactive": 2}
        return sorted(states, key=lambda s: (order[s.state], s.rule.label, s.provider or ""))

    def firing(self) -> list[tuple[str, str, str]]:
        """(name, provider, pool) of each firing alert ("" for a missing label)."""
        return [
            (s.rule.label, s.provider or "", s.pool or "")
            for s in self.states()
            if s.state == "firing"
        ]

    # ----------------------------------------------------------------- configuration

    def configure(
        self,
        spec: MonitoringSpec,
        *,
        baseline: Mapping[str, Mapping[str, float]] | None = None,
        pools: Iterable[str] = (),
        sender: AlertmanagerSender | None = None,
    ) -> AlertmanagerSender | None:
        """Take the rules of a new generation; instances of unchanged rules keep their state.

        Instances of removed or changed rules that were firing resolve. Returns the
        sender this replaced (the caller closes it), or None.
        """
        events: list[AlertEvent] = []
        now = time.time()
        with self._lock:
            kept = {rule for rule in spec.alerts}
            for key, state in list(self._states.items()):
                if state.rule not in kept:
                    del self._states[key]
                    if state.state == "firing":
                        events.append(self._event(state, "resolved", now))
            self._rules = spec.alerts
            self._metrics.requests.windowed = bool(spec.alerts)
            self._baseline = {k: dict(v) for k, v in (baseline or {}).items()}
            self._pools = tuple(pools)
            self._interval = spec.evaluation_interval
            self._resend = spec.alertmanager.resend_every if spec.alertmanager else 60.0
            old, self._sender = self._sender, sender
            self.spec = spec
        self._publish(events)
        return old if old is not sender else None

    def start(self) -> None:
        """Start the evaluation thread (idempotent; a no-op without rules)."""
        if self._thread is not None or not self._rules:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="provcfg-alerts", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the Alertmanager sender (flushing what it can)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()

    # ----------------------------------------------------------------- evaluation

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.evaluate()
            except Exception as exc:  # an evaluation bug must not kill alerting for good
                log.error("alert_evaluation_failed", error=f"{type(exc).__name__}: {exc}")

    def evaluate(self) -> list[AlertEvent]:
        """One evaluation of every rule now; returns (and publishes) the transitions."""
        mono, now = time.monotonic(), time.time()
        counters = self._metrics.counters()
        with self._lock:
            rules = self._rules
            longest = max((r.window for r in rules), default=0.0)
            self._samples.append((mono, counters))
            while len(self._samples) > 1 and self._samples[1][0] <= mono - longest:
                self._samples.popleft()
            self._metrics.requests.prune(mono - longest)
            events: list[AlertEvent] = []
            for rule in rules:
                for provider, pool in self._targets(rule, mono):
                    value, enough = self._value(rule, provider, pool, mono, counters)
                    threshold = self._threshold(rule, provider)
                    if threshold is None:
                        continue
                    key = (rule.label, provider, pool)
                    state = self._states.get(key)
                    if state is None:
                        state = self._states[key] = AlertState(rule, provider, pool, threshold)
                    state.threshold = threshold
                    state.value = value
                    holds = enough and not math.isnan(value) and self._holds(rule, value, threshold)
                    event = self._step(state, holds, mono, now)
                    if event is not None:
                        events.append(event)
            resend = [
                s
                for s in self._states.values()
                if s.state == "firing" and mono - s.last_sent >= self._resend
            ]
            for state in resend:
                state.last_sent = mono
            sender = self._sender
        if sender is not None:
            for state in resend:
                sender.submit(self._event(state, "firing", now))
        self._publish(events)
        return events

    def _targets(self, rule: AlertSpec, mono: float) -> list[tuple[str | None, str | None]]:
        if rule.metric == "reload_failures":
            return [(None, None)]
        if rule.metric == "pool_exhausted_rate":
            return [(None, rule.pool)] if rule.pool else [(None, p) for p in self._pools]
        if rule.provider is not None:
            return [(rule.provider, None)]
        seen = set(self._metrics.requests.providers())
        seen.update(p for (_, p, _) in self._states if p is not None)
        return [(p, None) for p in sorted(seen)]

    def _threshold(self, rule: AlertSpec, provider: str | None) -> float | None:
        if rule.above_baseline is not None:
            base = self._baseline.get(provider or "", {}).get(rule.metric)
            return None if base is None else base * rule.above_baseline
        return rule.above if rule.above is not None else rule.below

    @staticmethod
    def _holds(rule: AlertSpec, value: float, threshold: float) -> bool:
        if rule.below is not None and rule.above is None and rule.above_baseline is None:
            return value < threshold
        return value > threshold

    def _value(
        self,
        rule: AlertSpec,
        provider: str | None,
        pool: str | None,
        mono: float,
        counters: Mapping[tuple[str, str], int],
    ) -> tuple[float, bool]:
        """(value, whether the window holds enough requests to judge)."""
        metric = rule.metric
        if metric in ("pool_exhausted_rate", "reload_failures"):
            key = ("pool_exhausted", pool or "") if pool else ("reload_failure", "")
            oldest = self._oldest_sample(mono - rule.window)
            delta = counters.get(key, 0) - oldest.get(key, 0)
            if metric == "reload_failures":
                return float(delta), True
            return delta / rule.window, True
        records = self._metrics.requests.window(provider or "", mono - rule.window)
        enough = len(records) >= rule.min_requests
        if metric == "error_rate":
            if not records:
                return 0.0, enough
            return sum(1 for r in records if not r.ok) / len(records), enough
        if metric == "chunks_per_second":
            seconds = math.fsum(r.total_s for r in records if r.ok)
            chunks = sum(r.chunks for r in records if r.ok)
            return (chunks / seconds if seconds > 0 else math.nan), enough
        values = [v for v in map(_LATENCY[metric], records) if v is not None]
        if not values:
            return math.nan, False
        return _quantile(values, rule.quantile), enough

    def _oldest_sample(self, since: float) -> Mapping[tuple[str, str], int]:
        # The newest sample at or before the window's start (or the oldest one kept).
        chosen = self._samples[0][1]
        for at, counters in self._samples:
            if at > since:
                break
            chosen = counters
        return chosen

    def _step(self, state: AlertState, holds: bool, mono: float, now: float) -> AlertEvent | None:
        if holds:
            if state.state == "inactive":
                state.state, state.since = "pending", now
            if state.state == "pending" and now - state.since >= state.rule.for_:
                state.state = "firing"
                state.last_sent = mono
                return self._event(state, "firing", now)
            return None
        if state.state == "firing":
            state.state = "inactive"
            return self._event(state, "resolved", now)
        state.state = "inactive"
        return None

    @staticmethod
    def _event(state: AlertState, kind: Literal["firing", "resolved"], now: float) -> AlertEvent:
        return AlertEvent(
            name=state.rule.label,
            state=kind,
            value=state.value,
            threshold=state.threshold,
            provider=state.provider,
            pool=state.pool,
            metric=state.rule.metric,
            severity=state.rule.severity,
            since=state.since,
            at=now,
        )

    def _publish(self, events: list[AlertEvent]) -> None:
        sender = self._sender
        for event in events:
            log.warning(
                "alert_" + event.state,
                alert=event.name,
                metric=event.metric,
                provider=event.provider,
                pool=event.pool,
                value=None if math.isnan(event.value) else round(event.value, 6),
                threshold=event.threshold,
            )
            if sender is not None:
                sender.submit(event)
            for callback in list(self._subscribers):
                try:
                    callback(event)
                except Exception as exc:  # a subscriber's bug must not stop the others
                    log.error(
                        "alert_subscriber_failed",
                        alert=event.name,
                        error=f"{type(exc).__name__}: {exc}",
                    )


def _first_chunk(rec: RequestRecord) -> float | None:
    return rec.first_chunk_s


def _total(rec: RequestRecord) -> float | None:
    return rec.total_s


def _connect(rec: RequestRecord) -> float | None:
    return rec.connect_s


_LATENCY: dict[str, Callable[[RequestRecord], float | None]] = {
    "first_chunk_seconds": _first_chunk,
    "total_seconds": _total,
    "connect_seconds": _connect,
}
