"""Fallbacks and circuit breakers against the real stub server and fake CLIs.

A request moves to the next provider of its route only on a fallback-worthy failure
before its first chunk; a breaker opens after its threshold, fails fast (or hands
requests straight to a fallback), and closes again after a successful probe. The
manifest catches unknown names, self references and cycles with their positions.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

import provcfg
from provcfg import ManifestError, ProviderError
from provcfg._loading import parse_manifest_text
from provcfg._monitoring._collector import ProvcfgCollector
from provcfg._resilience import BreakerEvent, RoutedStream
from provcfg.stub import StubServer
from tests.support_fake_cli import fake_cli, scenario
from tests.support_stub import stub, stub_thread  # noqa: F401

SECRET = "sk-test-FALLBACK-0123456789"


def api(name: str, base_url: str, model: str, extra: str = "") -> str:
    return (
        f"  {name}:\n"
        "    kind: anthropic-api\n"
        f"    base_url: {base_url}\n"
        f"    api_key: {SECRET}\n"
        "    transport: fast\n"
        "    max_retries: 0\n"
        f"    model: {model}\n" + extra
    )


def manifest(tmp_path: Path, providers: str, default: str = "primary") -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(f"version: 1\ndefault_provider: {default}\nproviders:\n{providers}")
    return path


def models_requested(server: StubServer) -> list[str | None]:
    return [r.model for r in server.requests]


async def read_all(stream: Any) -> tuple[str, list[str]]:
    text, types = [], []
    async for chunk in stream:
        types.append(chunk.type)
        if chunk.type == "text":
            text.append(chunk.text)
    return "".join(text), types


async def test_failure_before_first_chunk_goes_to_the_fallback(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """A 529 from the primary (after its own retries) sends the request to the fallback,
    whose answer the caller gets whole; the stream names who answered and who failed."""
    m = manifest(
        tmp_path,
        api("primary", stub.base_url, "stub-fault-529", "    fallbacks: [backup]\n")
        + api("backup", stub.base_url, "claude-haiku-4-5"),
    )
    async with provcfg.load(m) as rt:
        stream = rt.provider("primary").stream("hi")
        assert isinstance(stream, RoutedStream)
        text, types = await read_all(stream)
        assert text and types[-1] == "result"
        assert stream.provider == "backup"
        assert stream.attempts == [("primary", "overloaded")]
        assert rt.metrics.counter("fallbacks", "primary") == 1
        result = await rt.provider("primary").complete("again")
        assert result.text == text
    assert models_requested(stub) == ["stub-fault-529", "claude-haiku-4-5"] * 2


async def test_no_fallback_after_the_first_chunk(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """A primary that drops the connection after 3 deltas raises to the caller, who keeps
    the 3 chunks; the fallback is never asked (no duplicated output)."""
    m = manifest(
        tmp_path,
        api("primary", stub.base_url, "stub-drop-3", "    fallbacks: [backup]\n")
        + api("backup", stub.base_url, "claude-haiku-4-5"),
    )
    async with provcfg.load(m) as rt:
        stream = rt.provider("primary").stream("hi")
        seen: list[str] = []
        with pytest.raises(ProviderError) as info:
            async for chunk in stream:
                seen.append(chunk.type)
        assert seen.count("text") == 3
        assert info.value.kind in ("network", "stream_incomplete")
        assert rt.metrics.counter("fallbacks", "primary") == 0
    assert models_requested(stub) == ["stub-drop-3"]


async def test_fallback_on_limits_which_failures_move_on(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """With fallback_on: [rate_limit], a 529 is raised as is and a 429 moves on; the
    final error of a route that fails everywhere lists the attempts."""
    m = manifest(
        tmp_path,
        api(
            "primary",
            stub.base_url,
            "stub-fault-529",
            "    fallbacks: [backup]\n    fallback_on: [rate_limit]\n",
        )
        + api("limited", stub.base_url, "stub-fault-429", "    fallbacks: [backup]\n")
        + api("backup", stub.base_url, "stub-fault-500"),
    )
    async with provcfg.load(m) as rt:
        with pytest.raises(ProviderError) as info:
            await rt.provider("primary").complete("hi")
        assert info.value.kind == "overloaded" and "attempts" not in info.value.details
        with pytest.raises(ProviderError) as info:
            await rt.provider("limited").complete("hi")
        assert info.value.provider == "backup" and info.value.kind == "server_error"
        assert info.value.details["attempts"] == [{"provider": "limited", "kind": "rate_limit"}]
        assert info.value.__context__ is None and info.value.__cause__ is None
    assert models_requested(stub) == ["stub-fault-529", "stub-fault-429", "stub-fault-500"]


async def test_a_hang_moves_on_only_when_fallback_on_lists_timeout(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """A primary that never answers ends in `timeout`, which moves the request on only
    when fallback_on names it."""
    m = manifest(
        tmp_path,
        api(
            "primary",
            stub.base_url,
            "stub-hang",
            "    fallbacks: [backup]\n    fallback_on: [timeout, overloaded]\n",
        )
        + api("plain", stub.base_url, "stub-hang", "    fallbacks: [backup]\n")
        + api("backup", stub.base_url, "claude-haiku-4-5"),
    )
    async with provcfg.load(m) as rt:
        stream = rt.provider("primary").stream("hi", timeout=0.5)
        text, _ = await read_all(stream)
        assert text and stream.attempts == [("primary", "timeout")]
        with pytest.raises(ProviderError) as info:
            await rt.provider("plain").complete("hi", timeout=0.5)
        assert info.value.kind == "timeout" and info.value.provider == "plain"
    # (the stub records a hung request only once it ends; the fallback's is complete)
    assert models_requested(stub).count("claude-haiku-4-5") == 1


CLAUDE_OK = [
    {"type": "system", "subtype": "init", "session_id": "s", "model": "x", "tools": []},
    {
        "type": "assistant",
        "message": {
            "id": "m1",
            "type": "message",
            "role": "assistant",
            "model": "x",
            "content": [{"type": "text", "text": "from the cli"}],
            "stop_reason": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        },
        "parent_tool_use_id": None,
        "session_id": "s",
    },
    {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "from the cli",
        "session_id": "s",
        "total_cost_usd": 0.0,
        "usage": {"input_tokens": 1, "output_tokens": 1},
        "stop_reason": "end_turn",
    },
]


def cli_provider(tmp_path: Path, name: str, script: str, extra: str = "") -> str:
    folder = tmp_path / name
    folder.mkdir()
    path = scenario(folder, script)
    return (
        f"  {name}:\n"
        "    kind: claude-code\n"
        f"    path: {fake_cli(folder)}\n"
        "    kill_grace: 0.5\n"
        "    model: claude-sonnet-4-5\n"
        f"    env: {{FAKE_SCENARIO: {path}, FAKE_DUMP: {folder / 'dump.json'}}}\n" + extra
    )


async def test_alias_is_translated_per_provider_and_foreign_ids_use_the_default(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """An alias reaches each provider of the route in its own translation; a model id
    the API primary knows is not sent to a CLI fallback of another kind, which uses its
    own default model instead."""
    ok = "".join(json.dumps(e) + "\n" for e in CLAUDE_OK)
    m = tmp_path / "providers.yaml"
    m.write_text(
        "version: 1\n"
        "models:\n"
        "  smart: {anthropic-api: stub-fault-529, claude-code: claude-opus-4-1}\n"
        "providers:\n"
        + api("primary", stub.base_url, "smart", "    fallbacks: [agent]\n")
        + cli_provider(tmp_path, "agent", ok)
    )
    dump = tmp_path / "agent" / "dump.json"
    async with provcfg.load(m) as rt:
        result = await rt.provider("primary").complete("hi", model="smart")
        assert result.text == "from the cli"
        argv = json.loads(dump.read_text())["argv"]
        assert argv[argv.index("--model") + 1] == "claude-opus-4-1"
        stream = rt.provider("primary").stream("hi", model="claude-id-9-stub-529")
        text, _ = await read_all(stream)
        assert text == "from the cli" and stream.provider == "agent"
        argv = json.loads(dump.read_text())["argv"]
        assert argv[argv.index("--model") + 1] == "claude-sonnet-4-5"
    assert models_requested(stub) == ["stub-fault-529", "claude-id-9-stub-529"]


async def test_same_kind_fallback_gets_the_entry_translation_of_an_alias_it_lacks(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """An alias only the entry provider declares reaches a same-kind fallback as the
    entry's model id (one vocabulary); an alias the fallback declares, as its own id."""
    m = manifest(
        tmp_path,
        api(
            "primary",
            stub.base_url,
            "claude-haiku-4-5",
            "    fallbacks: [backup]\n    models: {smart: claude-x-1, quick: claude-q-1}\n",
        )
        + api("backup", stub.base_url, "claude-haiku-4-5", "    models: {quick: claude-b-2}\n"),
    )
    async with provcfg.load(m) as rt:
        stub.enqueue_fault("529")
        assert (await rt.provider("primary").complete("hi", model="smart")).text
        stub.enqueue_fault("529")
        assert (await rt.provider("primary").complete("hi", model="quick")).text
    assert models_requested(stub) == ["claude-x-1", "claude-x-1", "claude-q-1", "claude-b-2"]


async def test_crashing_cli_falls_back_to_the_api(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """A CLI that crashes before any output (cli_failed) hands the request to the API
    fallback; its process group is gone afterwards."""
    m = manifest(
        tmp_path,
        cli_provider(
            tmp_path, "primary", "#!stderr_text boom\n#!exit 3\n", "    fallbacks: [api]\n"
        )
        + api("api", stub.base_url, "claude-haiku-4-5"),
    )
    async with provcfg.load(m) as rt:
        stream = rt.provider("primary").stream("hi")
        text, types = await read_all(stream)
        assert text and types[-1] == "result"
        assert stream.attempts == [("primary", "cli_failed")] and stream.provider == "api"
        assert rt.metrics.counter("cli_process_spawned", "primary") == 1


async def test_breaker_opens_fails_fast_and_closes_after_a_probe(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """Two 529s within the window open the breaker; the next request fails fast with
    kind overloaded without reaching the server; after the cooldown one probe goes
    through and its success closes the breaker. Each transition is an event and a
    counter, and the exported series move."""
    m = manifest(
        tmp_path,
        api(
            "primary",
            stub.base_url,
            "claude-haiku-4-5",
            "    breaker: {failures: 2, window: 60s, cooldown: 300ms}\n",
        ),
    )
    events: list[BreakerEvent] = []
    async with provcfg.load(m) as rt:
        rt.breakers.subscribe(events.append)
        registry = CollectorRegistry()
        registry.register(ProvcfgCollector(lambda: rt.metrics))
        p = rt.provider("primary")
        stub.enqueue_fault("529", times=2)
        for _ in range(2):
            with pytest.raises(ProviderError):
                await p.complete("hi")
        assert rt.breakers.states() == {"primary": "open"}
        with pytest.raises(ProviderError) as info:
            await p.complete("hi")
        assert info.value.kind == "overloaded" and info.value.details["breaker"] == "open"
        assert info.value.retry_after is not None
        assert len(stub.requests) == 2  # failed fast: the server never saw it
        scraped = generate_latest(registry).decode()
        assert 'provcfg_breaker_state{provider="primary"} 2.0' in scraped
        assert 'provcfg_breaker_rejected_total{provider="primary"} 1.0' in scraped
        await asyncio.sleep(0.4)  # let the cooldown pass (no timing is asserted)
        result = await p.complete("probe")
        assert result.text
        assert rt.breakers.states() == {"primary": "closed"}
        scraped = generate_latest(registry).decode()
    assert [(e.previous, e.state) for e in events] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert 'provcfg_breaker_state{provider="primary"} 0.0' in scraped
    for state in ("open", "half_open", "closed"):
        assert f'provcfg_breaker_transitions_total{{provider="primary",state="{state}"}} 1.0' in (
            scraped
        )


async def test_failed_probe_opens_the_breaker_again(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """A half-open probe that fails opens the breaker again (one event per transition)."""
    m = manifest(
        tmp_path,
        api(
            "primary",
            stub.base_url,
            "claude-haiku-4-5",
            "    breaker: {failures: 1, window: 60s, cooldown: 200ms}\n",
        ),
    )
    events: list[BreakerEvent] = []
    async with provcfg.load(m) as rt:
        rt.breakers.subscribe(events.append)
        stub.enqueue_fault("500", times=2)
        with pytest.raises(ProviderError):
            await rt.provider("primary").complete("hi")
        await asyncio.sleep(0.3)
        with pytest.raises(ProviderError) as info:
            await rt.provider("primary").complete("probe")
        assert info.value.kind == "server_error"  # the probe really went out
        assert rt.breakers.states() == {"primary": "open"}
    assert [e.state for e in events] == ["open", "half_open", "open"]


async def test_open_breaker_sends_requests_straight_to_the_fallback(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """While the primary's breaker is open, requests go to the fallback without
    touching the primary."""
    m = manifest(
        tmp_path,
        api(
            "primary",
            stub.base_url,
            "stub-fault-529",
            "    fallbacks: [backup]\n    breaker: {failures: 1, window: 60s, cooldown: 1h}\n",
        )
        + api("backup", stub.base_url, "claude-haiku-4-5"),
    )
    async with provcfg.load(m) as rt:
        for _ in range(3):
            assert (await rt.provider("primary").complete("hi")).text
        assert rt.breakers.states() == {"primary": "open"}
        assert rt.metrics.counter("breaker_rejected", "primary") == 2
    assert models_requested(stub) == ["stub-fault-529"] + ["claude-haiku-4-5"] * 3


async def test_breaker_survives_a_reload_that_keeps_its_provider(tmp_path: Path) -> None:
    """A reload that leaves a provider's spec unchanged keeps its breaker and its state;
    one that changes the breaker starts a new, closed one."""
    text = (
        "version: 1\nproviders:\n"
        + api(
            "primary",
            "http://127.0.0.1:9",
            "claude-haiku-4-5",
            "    breaker: {failures: 1, window: 60s, cooldown: 1h}\n",
        )
        + api("other", "http://127.0.0.1:9", "claude-haiku-4-5")
    )
    m = tmp_path / "providers.yaml"
    m.write_text(text)
    rt1 = provcfg.load(m)
    with pytest.raises(ProviderError):
        await rt1.provider("primary").complete("hi")  # nothing listens on port 9
    assert rt1.breakers.states() == {"primary": "open"}
    m2 = parse_manifest_text(text.replace("  other:", "  renamed:"), file=str(m))
    rt2 = provcfg.Runtime.build(m2, previous=rt1)
    assert rt2.breakers.states() == {"primary": "open"}
    m3 = parse_manifest_text(text.replace("cooldown: 1h", "cooldown: 2h"), file=str(m))
    rt3 = provcfg.Runtime.build(m3, previous=rt2)
    assert rt3.breakers.states() == {"primary": "closed"}
    for rt in (rt1, rt2, rt3):
        await rt.aclose()


@pytest.mark.parametrize(
    ("providers", "where", "message"),
    [
        (
            "  a: {kind: anthropic-api, fallbacks: [b, bakup]}\n  b: {kind: anthropic-api}\n"
            "  backup: {kind: anthropic-api}\n",
            ":4:",
            "providers.a.fallbacks.1: no provider named 'bakup'; did you mean 'backup'?",
        ),
        (
            "  a: {kind: anthropic-api, fallbacks: [a]}\n",
            ":4:",
            "providers.a.fallbacks.0: provider 'a' cannot fall back to itself",
        ),
        (
            "  a: {kind: anthropic-api, fallbacks: [b]}\n"
            "  b: {kind: anthropic-api, fallbacks: [c]}\n"
            "  c: {kind: anthropic-api, fallbacks: [a]}\n",
            ":6:",
            "providers.c.fallbacks.0: fallback cycle a -> b -> c -> a",
        ),
        (
            "  a: {kind: anthropic-api, fallbacks: [b, b]}\n  b: {kind: anthropic-api}\n",
            ":4:",
            "providers.a.fallbacks.1: 'b' is listed twice",
        ),
        (
            "  a: {kind: anthropic-api, fallback_on: [overload]}\n",
            ":4:",
            "providers.a.fallback_on.0",
        ),
        (
            "  a: {kind: anthropic-api, breaker: {failures: 0}}\n",
            ":4:",
            "providers.a.breaker.failures",
        ),
        (
            "  a: {kind: anthropic-api, breaker: {window: 0s}}\n",
            ":4:",
            "window must be longer than 0s",
        ),
    ],
)
def test_validation_names_bad_fallbacks_with_positions(
    tmp_path: Path, providers: str, where: str, message: str
) -> None:
    """Unknown fallbacks (with did-you-mean), self references, cycles, repeats, unknown
    error kinds and bad breaker values are positioned problems from `provcfg validate`."""
    path = tmp_path / "providers.yaml"
    path.write_text("version: 1\n# fallbacks\nproviders:\n" + providers)
    with pytest.raises(ManifestError) as info:
        provcfg.load_manifest(path)
    text = "\n".join(str(p) for p in info.value.problems)
    assert message in text
    assert f"{path}{where}" in text
    done = subprocess.run(
        [sys.executable, "-m", "provcfg", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and message in done.stdout + done.stderr


def test_run_timings_show_which_provider_answered(
    tmp_path: Path,
    stub_thread: StubServer,  # noqa: F811
) -> None:
    """`provcfg run --timings` names the provider that answered and the one it left."""
    m = manifest(
        tmp_path,
        api("primary", stub_thread.base_url, "stub-fault-529", "    fallbacks: [backup]\n")
        + api("backup", stub_thread.base_url, "claude-haiku-4-5"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "provcfg", "run", "-f", str(m), "--timings", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "provider=backup fallback_from=primary(overloaded)" in done.stderr
    assert SECRET not in done.stderr + done.stdout


async def test_closing_a_routed_stream_stops_the_cli_it_reached(
    tmp_path: Path,
    stub: StubServer,  # noqa: F811
) -> None:
    """A routed stream closed after its first chunk closes the provider's stream: the
    CLI's process group (a SIGTERM-ignoring CLI) is gone, and nothing falls back."""
    from tests.test_orphans import TEXT, group_alive

    pid_file = tmp_path / "cli.pid"
    script = f"#!pidfile {pid_file}\n#!ignore_term\n" + json.dumps(TEXT) + "\n#!hang\n"
    m = manifest(
        tmp_path,
        cli_provider(tmp_path, "primary", script, "    fallbacks: [api]\n")
        + api("api", stub.base_url, "claude-haiku-4-5"),
    )
    async with provcfg.load(m) as rt:
        stream = rt.provider("primary").stream("hi")
        first = await stream.__anext__()
        assert first.type == "text" and stream.provider == "primary"
        pgid = int(pid_file.read_text())
        assert group_alive(pgid)
        await stream.aclose()  # type: ignore[attr-defined]
        assert group_alive(pgid) == []
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
    assert stub.requests == []
