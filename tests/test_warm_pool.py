"""The warm pool's rules with a fake Claude Code (tests/fake_clis/replay.py speaks stream-json
input): real child processes, real pipes, no network, a few seconds per test.

What is proven here: a spare is primed and then used for a request of its launch; other
launches miss with their reason; the runtime cap holds across providers; a spare that
keeps failing to start backs off; idle_timeout and max_age reap (and only max_age
replaces at once); a folder used twice is learned; a provider's spares go with its
instance; nothing is left after aclose().
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import provcfg
from provcfg._errors import ManifestError
from provcfg._loading import parse_manifest_text
from tests.support_clis import MARKER_VAR, marked_processes
from tests.support_fake_cli import fake_cli, scenario

INIT = {"type": "system", "subtype": "init", "session_id": "s-1", "model": "m", "tools": []}
ANSWER = {
    "type": "assistant",
    "message": {"id": "a", "content": [{"type": "text", "text": "fake warm answer"}]},
    "parent_tool_use_id": None,
}
RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "session_id": "s-1",
    "total_cost_usd": 0.001,
    "usage": {"input_tokens": 3, "output_tokens": 2},
}
SPARE = "#!control_reply\n#!stdin_line\n" + "".join(
    json.dumps(e) + "\n" for e in (INIT, ANSWER, RESULT)
)


class Fake:
    """A manifest of fake claude-code providers, its runtime and its marker."""

    def __init__(self, tmp_path: Path, script: str = SPARE) -> None:
        self.tmp = tmp_path
        self.marker = uuid.uuid4().hex
        self.cli = fake_cli(tmp_path)
        self.script = scenario(tmp_path, script)
        self.lines = tmp_path / "lines.txt"
        self.work = tmp_path / "work"
        self.work.mkdir()

    def provider(self, **fields: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "kind": "claude-code",
            "path": str(self.cli),
            "model": "claude-sonnet-4-5",
            "cwd": str(self.work),
            "kill_grace": "1s",
            "init": "eager",
            "env": {
                "FAKE_SCENARIO": str(self.script),
                "FAKE_STREAM_INPUT": "1",
                "FAKE_LINES": str(self.lines),
                MARKER_VAR: self.marker,
            },
            "warm": {"spares": 1},
        }
        spec.update(fields)
        return spec

    def load(self, providers: dict[str, Any], max_processes: int = 4) -> Any:
        manifest = {"version": 1, "warm": {"max_processes": max_processes}, "providers": providers}
        path = self.tmp / "providers.yaml"
        path.write_text(json.dumps(manifest))
        return provcfg.load(path)

    def alive(self) -> list[int]:
        return marked_processes(self.marker)


async def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


async def test_a_primed_spare_serves_a_request_of_its_launch(tmp_path: Path) -> None:
    """The spare runs with --input-format stream-json, is primed, and a default request
    writes one user line to it and reads the answer (a hit); its replacement follows."""
    fake = Fake(tmp_path)
    async with fake.load({"c": fake.provider()}) as rt:
        assert (await rt.warmup(timeout=60))["c"] is None
        (spare,) = fake.alive()
        assert "--input-format" in _argv(spare)
        result = await rt.provider("c").complete("hello there")
        assert result.text == "fake warm answer"
        assert rt.metrics.counter("warm_hit", "c") == 1
        line = json.loads(fake.lines.read_text())
        assert line == {"type": "user", "message": {"role": "user", "content": "hello there"}}
        await _until(lambda: rt.warm_pool.ready_count() == 1)
        assert spare not in fake.alive()
        stats = rt.warm_pool.stats()["c"]
        assert stats["ready"] == 1
    assert fake.alive() == []


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"model": "claude-opus-4-1"}, "not_kept"),
        ({"system": "be brief"}, "not_kept"),
        ({"max_tokens": 10}, "not_kept"),
        ({"partial_messages": True}, "not_kept"),
    ],
)
async def test_other_launches_miss_and_run_cold(
    tmp_path: Path, kwargs: dict[str, Any], reason: str
) -> None:
    """A request whose command differs from the spare's (model, system prompt, max_tokens,
    an option) runs cold and counts a miss; the spare stays for a matching request."""
    fake = Fake(tmp_path)
    async with fake.load({"c": fake.provider()}) as rt:
        await rt.warmup(timeout=60)
        (spare,) = fake.alive()
        result = await rt.provider("c").complete("x", **kwargs)
        assert result.text == "fake warm answer"
        assert rt.metrics.counter("warm_miss", f"c/{reason}") == 1
        assert rt.metrics.counter("warm_hit", "c") == 0
        assert spare in fake.alive()
    assert fake.alive() == []


async def test_the_runtime_cap_holds_across_providers(tmp_path: Path) -> None:
    """Two providers wanting 2 spares each under max_processes: 3 never hold more than 3."""
    fake = Fake(tmp_path)
    providers = {
        "a": fake.provider(warm={"spares": 2}),
        "b": fake.provider(warm={"spares": 2}, model="claude-haiku-4-5"),
    }
    async with fake.load(providers, max_processes=3) as rt:
        await rt.warmup(timeout=10)
        await _until(lambda: rt.warm_pool.ready_count() == 3)
        await asyncio.sleep(1.5)
        assert len(fake.alive()) == 3
        assert (
            rt.metrics.counter("warm_cap_reached", "a")
            + rt.metrics.counter("warm_cap_reached", "b")
            > 0
        )
    assert fake.alive() == []


async def test_a_spare_that_fails_to_start_backs_off(tmp_path: Path) -> None:
    """A spare that exits at once is retried with a growing delay (0.5 s, 1 s, 2 s, ...),
    not in a loop; requests keep working cold meanwhile."""
    fake = Fake(tmp_path, "#!exit_if_stream 3\n" + SPARE)
    async with fake.load({"c": fake.provider()}) as rt:
        await asyncio.sleep(4.0)
        attempts = rt.metrics.counter("cli_process_spawned", "c")
        assert 2 <= attempts <= 5, attempts
        assert rt.metrics.counter("warm_reaped", "c/failed") == attempts
        result = await rt.provider("c").complete("x")
        assert result.text == "fake warm answer"
        assert rt.metrics.counter("warm_miss", "c/no_spare") == 1
    assert fake.alive() == []


async def test_idle_timeout_reaps_without_replacing_until_next_use(tmp_path: Path) -> None:
    """An idle spare is reaped after idle_timeout and not replaced until a request of its
    launch comes; then the spares come back."""
    fake = Fake(tmp_path)
    async with fake.load({"c": fake.provider(warm={"spares": 1, "idle_timeout": "1s"})}) as rt:
        await rt.warmup(timeout=60)
        await _until(lambda: rt.metrics.counter("warm_reaped", "c/idle_timeout") == 1)
        await asyncio.sleep(1.5)
        assert fake.alive() == []
        await rt.provider("c").complete("x")
        await _until(lambda: rt.warm_pool.ready_count() == 1)
    assert fake.alive() == []


async def test_max_age_replaces_old_spares(tmp_path: Path) -> None:
    """A spare older than max_age is reaped and a new one started in its place."""
    fake = Fake(tmp_path)
    async with fake.load({"c": fake.provider(warm={"spares": 1, "max_age": "1s"})}) as rt:
        await rt.warmup(timeout=60)
        (first,) = fake.alive()
        await _until(lambda: rt.metrics.counter("warm_reaped", "c/max_age") >= 1)
        await _until(lambda: rt.warm_pool.ready_count() == 1 and first not in fake.alive())
    assert fake.alive() == []


async def test_a_folder_used_twice_is_learned(tmp_path: Path) -> None:
    """Requests with cwd= another folder miss; the second one makes the folder warm."""
    fake = Fake(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    async with fake.load({"c": fake.provider(warm={"spares": 1, "learn": 2})}) as rt:
        await rt.warmup(timeout=60)
        p = rt.provider("c")
        await p.complete("x", cwd=other)
        await p.complete("x", cwd=other)
        await _until(lambda: rt.warm_pool.ready_count() == 2)
        await p.complete("x", cwd=other)
        assert rt.metrics.counter("warm_hit", "c") == 1
        assert rt.metrics.counter("warm_miss", "c/not_kept") == 2
    assert fake.alive() == []


async def test_lazy_providers_start_spares_after_first_use(tmp_path: Path) -> None:
    """init: lazy starts no spare at load; the first request runs cold, then one is kept."""
    fake = Fake(tmp_path)
    async with fake.load({"c": fake.provider(init="lazy")}) as rt:
        await asyncio.sleep(1.0)
        assert fake.alive() == []
        await rt.provider("c").complete("x")
        await _until(lambda: rt.warm_pool.ready_count() == 1)
    assert fake.alive() == []


async def test_recycling_the_instance_retires_its_spares(tmp_path: Path) -> None:
    """A provider instance that closes (here: handle.aclose() recycles it) takes its spares
    with it; the next instance keeps its own."""
    fake = Fake(tmp_path)
    async with fake.load({"c": fake.provider()}) as rt:
        await rt.warmup(timeout=60)
        (spare,) = fake.alive()
        await rt.provider("c").aclose()
        await _until(lambda: spare not in fake.alive())
        assert rt.metrics.counter("warm_reaped", "c/retired") == 1
    assert fake.alive() == []


def test_bad_warm_settings_are_positioned_errors() -> None:
    """spares below 0 or above the cap, warm on a kind without processes, unknown keys and
    max_uses on claude-code: each a problem at its line and column."""
    text = """\
version: 1
warm:
  max_processes: 2
providers:
  a:
    kind: claude-code
    warm: {spares: 3}
  b:
    kind: claude-code
    warm: {spares: -1}
  c:
    kind: anthropic-api
    warm: {spares: 1}
  d:
    kind: codex
    warm: {spares: 1, sparez: 2}
  e:
    kind: claude-code
    warm: {max_uses: 5}
"""
    with pytest.raises(ManifestError) as caught:
        parse_manifest_text(text, file="w.yaml")
    found = {(p.loc, p.line, p.column): p.message for p in caught.value.problems}
    assert set(found) == {
        ("providers.a.warm.spares", 7, 20),
        ("providers.b.warm.spares", 10, 20),
        ("providers.c.warm", 13, 5),
        ("providers.d.warm.sparez", 16, 23),
        ("providers.e.warm.max_uses", 19, 22),
    }, found
    messages = "\n".join(found.values())
    assert "above the runtime cap warm.max_processes: 2" in messages
    assert "must be at least 0" in messages
    assert "kind anthropic-api runs no agent process to keep warm" in messages
    assert "unknown key 'sparez'; did you mean 'spares'?" in messages
    assert "serves one conversation" in messages


async def test_the_prometheus_exporter_reads_the_warm_metrics(tmp_path: Path) -> None:
    """After a hit and a miss, a scrape has spares ready, processes, RSS, hits, misses by
    reason and spawn time for the provider."""
    from prometheus_client import CollectorRegistry, generate_latest

    from provcfg._monitoring._collector import ProvcfgCollector

    fake = Fake(tmp_path)
    async with fake.load({"c": fake.provider()}) as rt:
        await rt.warmup(timeout=60)
        await rt.provider("c").complete("x")
        await rt.provider("c").complete("x", max_tokens=5)
        await _until(lambda: rt.warm_pool.ready_count() == 1)
        rt.warm_pool._sample_rss(time.monotonic())
        registry = CollectorRegistry()
        registry.register(ProvcfgCollector(lambda: rt.metrics))
        text = generate_latest(registry).decode()
    assert 'provcfg_warm_hits_total{provider="c"} 1.0' in text
    assert 'provcfg_warm_misses_total{provider="c",reason="not_kept"} 1.0' in text
    assert 'provcfg_warm_spares_ready{provider="c"} 1.0' in text
    assert 'provcfg_warm_processes{provider="c"} 1.0' in text
    assert 'provcfg_warm_spawn_seconds_count{provider="c"} 2.0' in text
    rss = [ln for ln in text.splitlines() if ln.startswith("provcfg_warm_processes_rss_bytes{")]
    assert rss and float(rss[0].split()[-1]) > 1_000_000
