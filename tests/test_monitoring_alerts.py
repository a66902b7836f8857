"""The in-process alert evaluator on real time windows: for:, min_requests, baselines, delivery."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import provcfg
from provcfg._manifest import AlertmanagerSpec, MonitoringSpec
from provcfg._metrics import Metrics, RequestRecord
from provcfg._monitoring._alertmanager import AlertmanagerSender
from provcfg._monitoring._alerts import AlertEvaluator, AlertEvent
from tests.support_manifest import load_text
from tests.support_monitoring import poll


def _rec(first: float, ok: bool = True, provider: str = "api") -> RequestRecord:
    return RequestRecord(provider, "anthropic-api", None, ok, None if ok else "overloaded",
                         0.001, first, first * 2, 5, 0, 1, 1, None)  # fmt: skip


def _evaluator(*alerts: dict[str, object], **spec: object) -> tuple[Metrics, AlertEvaluator]:
    metrics = Metrics()
    evaluator = AlertEvaluator(metrics)
    evaluator.configure(MonitoringSpec.model_validate({"alerts": list(alerts), **spec}))
    return metrics, evaluator


def test_a_rule_fires_after_for_and_resolves_when_the_window_slides_past() -> None:
    """A slow provider fires once its condition held for `for:`, and resolves once fast again."""
    metrics, ev = _evaluator(
        {
            "metric": "first_chunk_seconds",
            "provider": "api",
            "above": 0.5,
            "window": 0.4,
            "for": 0.2,
        }
    )
    seen: list[AlertEvent] = []
    ev.subscribe(seen.append)
    metrics.record_request(_rec(2.0))
    assert ev.evaluate() == []  # pending: the condition has not held for 0.2 s yet
    assert ev.states()[0].state == "pending"

    def fired() -> list[AlertEvent]:
        metrics.record_request(_rec(2.0))
        return ev.evaluate()

    (event,) = poll(fired, timeout=10, every=0.05)
    assert (event.name, event.state, event.provider, event.threshold) == (
        "first_chunk_seconds_api", "firing", "api", 0.5
    )  # fmt: skip
    assert event.value == 2.0 and event.since <= event.at

    def resolved() -> list[AlertEvent]:
        metrics.record_request(_rec(0.01))
        return ev.evaluate()

    (done,) = poll(resolved, timeout=10, every=0.05)
    assert done.state == "resolved" and done.since == event.since
    assert [e.state for e in seen] == ["firing", "resolved"]


def test_min_requests_keeps_one_slow_request_from_paging() -> None:
    """Below min_requests the rule stays quiet; enough requests in the window make it fire."""
    metrics, ev = _evaluator(
        {"metric": "total_seconds", "provider": "api", "above": 1, "min_requests": 3}
    )
    metrics.record_request(_rec(5.0))
    assert ev.evaluate() == [] and ev.states()[0].state == "inactive"
    metrics.record_request(_rec(5.0))
    metrics.record_request(_rec(5.0))
    assert [e.state for e in ev.evaluate()] == ["firing"]


def test_one_warning_per_transition_not_per_evaluation() -> None:
    """Evaluating a firing rule again logs nothing more; firing and resolving log once each."""
    metrics, ev = _evaluator({"metric": "error_rate", "above": 0.5, "window": 0.3})
    with capture_logs() as logs:
        metrics.record_request(_rec(0.1, ok=False))
        for _ in range(5):
            ev.evaluate()
        poll(ev.evaluate, timeout=10, every=0.05)
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert warnings == ["alert_firing", "alert_resolved"]


def test_a_rule_without_provider_watches_each_provider_on_its_own() -> None:
    """error_rate with no provider makes one alert instance per provider seen."""
    metrics, ev = _evaluator({"metric": "error_rate", "above": 0.4})
    metrics.record_request(_rec(0.1, ok=False, provider="a"))
    metrics.record_request(_rec(0.1, ok=True, provider="b"))
    events = ev.evaluate()
    assert [(e.provider, e.state) for e in events] == [("a", "firing")]
    assert {(s.provider, s.state) for s in ev.states()} == {("a", "firing"), ("b", "inactive")}


def test_chunks_per_second_below_a_floor_fires() -> None:
    """chunks_per_second is chunks over streaming time in the window, compared with below:."""
    metrics, ev = _evaluator({"metric": "chunks_per_second", "provider": "api", "below": 100})
    metrics.record_request(_rec(0.5))  # 5 chunks in 1 s
    (event,) = ev.evaluate()
    assert event.state == "firing" and event.value == pytest.approx(5.0)


def test_pool_exhaustion_and_reload_failures_are_read_from_counters() -> None:
    """pool_exhausted_rate and reload_failures count increments inside the window."""
    metrics, ev = _evaluator(
        {"metric": "pool_exhausted_rate", "pool": "p", "above": 0.5, "window": 2},
        {"metric": "reload_failures", "above": 0, "window": 2},
    )
    ev.configure(ev.spec, pools=["p"])
    assert ev.evaluate() == []
    metrics.incr("pool_exhausted", "p", 3)
    metrics.incr("reload_failure")
    events = ev.evaluate()
    assert sorted((e.name, e.state) for e in events) == [
        ("pool_exhausted_rate", "firing"), ("reload_failures", "firing")
    ]  # fmt: skip


def test_above_baseline_compares_with_the_providers_benchmarked_p95(tmp_path: Path) -> None:
    """above_baseline: 1.2 fires when the live p95 exceeds 1.2x the baseline file's p95."""
    (tmp_path / "baseline.json").write_text(json.dumps({"api": {"first_chunk_seconds": 0.1}}))
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        "version: 1\nproviders:\n  api: {kind: anthropic-api, api_key: x, model: m-1}\n"
        "monitoring:\n  baseline: baseline.json\n  alerts:\n"
        "    - {metric: first_chunk_seconds, provider: api, above_baseline: 1.2}\n"
    )
    rt = provcfg.load(manifest)
    try:
        rt.metrics.record_request(_rec(0.11))
        assert rt.alerts.evaluate() == []
        rt.metrics.record_request(_rec(0.5))
        rt.metrics.record_request(_rec(0.5))
        (event,) = rt.alerts.evaluate()
        assert event.state == "firing" and event.threshold == pytest.approx(0.12)
    finally:
        asyncio.run(rt.aclose())


@pytest.mark.parametrize(
    ("baseline", "fragment"),
    [
        (None, "does not exist"),
        ("{not json", "not readable JSON"),
        ('{"api": {"first_chunk_seconds": -1}}', "positive number"),
        ('{"other": 0.1}', "no first_chunk_seconds for provider 'api'"),
    ],
)
def test_a_bad_baseline_file_is_a_clear_manifest_error(
    tmp_path: Path, baseline: str | None, fragment: str
) -> None:
    """A missing or malformed baseline file fails the load with monitoring.baseline's place."""
    if baseline is not None:
        (tmp_path / "b.json").write_text(baseline)
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        "version: 1\nproviders:\n  api: {kind: anthropic-api, api_key: x, model: m-1}\n"
        "monitoring:\n  baseline: b.json\n  alerts:\n"
        "    - {metric: first_chunk_seconds, provider: api, above_baseline: 1.2}\n"
    )
    with pytest.raises(provcfg.ManifestError) as caught:
        provcfg.load(manifest)
    assert fragment in str(caught.value) and "monitoring." in str(caught.value)


@pytest.mark.parametrize(
    ("alert", "fragment"),
    [
        ("{metric: first_chunk_secs, above: 1}", "did you mean 'first_chunk_seconds'"),
        ("{metric: error_rate, provider: apx, above: 1}", "did you mean 'api'"),
        ("{metric: error_rate, above: 1, window: 0}", "window must be longer than 0s"),
        ("{metric: error_rate, above: 1, window: -5}", "cannot be negative"),
        ("{metric: error_rate, above: 1, window: 1m, for: 2m}", "for: is longer than window"),
        ("{metric: error_rate, above_baseline: 2}", "applies to the latency metrics"),
        ("{metric: pool_exhausted_rate, pool: poo, above: 1}", "did you mean 'pool'"),
        ("{metric: error_rate, min_requests: -1, above: 1}", "must be at least 0"),
    ],
)
def test_bad_alert_rules_are_positioned_errors(alert: str, fragment: str) -> None:
    """Each bad rule is a validation problem at its line, with the fix or a did-you-mean."""
    text = (
        "version: 1\npools: {pool: {}}\n"
        "providers:\n  api: {kind: anthropic-api, api_key: x, model: m-1}\n"
        f"monitoring:\n  alerts:\n    - {alert}\n"
    )
    with pytest.raises(provcfg.ManifestError) as caught:
        load_text(text)
    (problem,) = caught.value.problems
    assert (
        fragment in problem.message and problem.line == 7 and problem.loc.startswith("monitoring")
    )


def test_an_unreachable_alertmanager_is_retried_counted_and_never_blocks() -> None:
    """Posting to a closed port counts failed tries and drops, and submit() returns at once."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = Metrics()
    spec = AlertmanagerSpec.model_validate(
        {
            "url": f"http://127.0.0.1:{port}",
            "max_retries": 2,
            "retry_max_wait": 0.05,
            "queue_size": 2,
        }
    )
    sender = AlertmanagerSender(spec, metrics)
    event = AlertEvent("x", "firing", 1.0, 0.5, "api", None, "error_rate", "warning", 1.0, 2.0)
    try:
        for _ in range(10):  # a full queue drops its oldest alert instead of waiting
            sender.submit(event)
        poll(lambda: metrics.counter("alertmanager_failed") >= 3, timeout=30)
        poll(lambda: metrics.counter("alertmanager_dropped") >= 8, timeout=30)
    finally:
        sender.close()
    assert metrics.counter("alertmanager_sent") == 0


def test_rule_states_survive_a_reconfigure_and_removed_firing_rules_resolve() -> None:
    """A reload keeping a rule keeps its state; dropping a firing rule resolves it."""
    metrics, ev = _evaluator({"metric": "error_rate", "provider": "api", "above": 0.1})
    metrics.record_request(_rec(0.1, ok=False))
    assert [e.state for e in ev.evaluate()] == ["firing"]
    seen: list[AlertEvent] = []
    ev.subscribe(seen.append)
    ev.configure(ev.spec)
    assert ev.evaluate() == [] and ev.states()[0].state == "firing"
    ev.configure(MonitoringSpec())
    assert [(e.name, e.state) for e in seen] == [("error_rate_api", "resolved")]


def test_the_evaluator_thread_evaluates_on_its_own_and_stops_on_close() -> None:
    """start() evaluates every evaluation_interval without being called; close() ends it."""
    metrics, ev = _evaluator(
        {"metric": "error_rate", "provider": "api", "above": 0.1}, evaluation_interval=0.05
    )
    ev.start()
    try:
        metrics.record_request(_rec(0.1, ok=False))
        poll(lambda: ev.firing() == [("error_rate_api", "api", "")], timeout=10)
    finally:
        ev.close()
    assert not any(t.name == "provcfg-alerts" and t.is_alive() for t in threading.enumerate())
    assert not math.isnan(ev.states()[0].value)
