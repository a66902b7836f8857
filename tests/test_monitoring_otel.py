"""OpenTelemetry spans (monitoring.traces) through the SDK's in-memory exporter."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import provcfg
from provcfg.stub import StubServer
from tests.support_stub import stub_thread

__all__ = ["stub_thread"]

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _provider() -> None:
    """One SDK tracer provider for this module (the global provider can be set only once)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)


def _manifest(tmp_path: Path, url: str, traces: str) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(
        "version: 1\nproviders:\n"
        f'  local: {{kind: anthropic-api, base_url: "{url}", api_key: stub, model: stub-text,'
        " transport: fast, max_retries: 0}\n"
        f"monitoring: {{traces: {traces}}}\n"
    )
    return path


async def test_a_stream_becomes_a_genai_span_with_a_first_chunk_event(
    tmp_path: Path, stub_thread: StubServer
) -> None:
    """With traces on, each request is one CLIENT span with GenAI attributes and events."""
    _EXPORTER.clear()
    rt = provcfg.load(_manifest(tmp_path, stub_thread.base_url, "true"))
    try:
        async for _ in rt.provider("local").stream("hi"):
            pass
        with pytest.raises(provcfg.ProviderError):
            async for _ in rt.provider("local").stream("hi", model="stub-fault-401"):
                pass
    finally:
        await rt.aclose()
    ok, failed = _EXPORTER.get_finished_spans()
    assert ok.name == "chat local" and ok.kind == trace.SpanKind.CLIENT
    attrs = dict(ok.attributes or {})
    assert attrs["gen_ai.system"] == "anthropic" and attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.usage.output_tokens"] > 0
    assert [e.name for e in ok.events] == ["provcfg.connected", "gen_ai.first_chunk"]
    assert ok.start_time is not None and ok.end_time is not None
    assert ok.start_time <= ok.events[1].timestamp <= ok.end_time
    assert failed.status.status_code == trace.StatusCode.ERROR
    assert dict(failed.attributes or {})["error.type"] == "authentication"


async def test_reloads_become_spans(tmp_path: Path) -> None:
    """The first load and each good reload of a watched manifest are provcfg.reload spans."""
    _EXPORTER.clear()
    path = _manifest(tmp_path, "http://127.0.0.1:9", "true")
    async with provcfg.watch(path) as live:
        path.write_text(path.read_text().replace("model: stub-text", "model: stub-thinking"))
        await live.wait_for_generation(2)
    reloads = [s for s in _EXPORTER.get_finished_spans() if s.name == "provcfg.reload"]
    assert [dict(s.attributes or {})["provcfg.generation"] for s in reloads] == [1, 2]


async def test_traces_off_registers_no_observer(tmp_path: Path, stub_thread: StubServer) -> None:
    """With traces off (the default) no request observer exists and no span is made."""
    _EXPORTER.clear()
    rt = provcfg.load(_manifest(tmp_path, stub_thread.base_url, "false"))
    try:
        assert rt.metrics._request_observers == []
        async for _ in rt.provider("local").stream("hi"):
            pass
    finally:
        await rt.aclose()
    assert _EXPORTER.get_finished_spans() == ()
