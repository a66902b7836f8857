"""Sessions with the real CLIs against the stub: several turns through one live agent.

Turn 2 refers to turn 1. The stub runs with its conversation echo (docs/stub.md): each
reply is a summary of the conversation the request carried, so the answer the caller
reads in turn 2 shows turn 1 (and turn 3 shows both); the stub's recorded requests
are checked too. The agent's session id stays the same. Each test runs in its own
loopback-only netns.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import provcfg
from provcfg._errors import ProviderError
from provcfg.plugin import Chunk
from provcfg.stub import StubConfig, StubServer
from tests.support_clis import (
    AgentClis,
    Netns,
    agent_clis_fixture,  # noqa: F401 (fixture)
    cli_home_fixture,  # noqa: F401 (fixture)
    marked_processes,
    netns_fixture,  # noqa: F401 (fixture)
)
from tests.support_warm import SECRET, eventually, warm_manifest, write_manifest

pytestmark = [pytest.mark.cli, pytest.mark.slow]

REPLY = "session reply"
TURNS = ("My name is Ada. Say hello.", "What is my name?", "Spell it backwards.")


@pytest.fixture
async def stub(netns: Netns) -> AsyncIterator[StubServer]:
    """A stub on 127.0.0.1 inside the test's namespace."""
    config = StubConfig(text=REPLY, chunk_size=4, echo_conversation=True)
    async with StubServer(config=config) as server:
        yield server


def _text(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if c.type == "text")


def _conversation(body: Any) -> str:
    """Every text the request carries, in order (messages or responses input items)."""
    return json.dumps(body.get("messages") or body.get("input") or [], ensure_ascii=False)


def _turn_requests(stub: StubServer, since: int) -> list[Any]:
    """The model requests of one turn (the agent's own turn: its largest request)."""
    return [r for r in stub.requests[since:] if r.method == "POST"]


async def _three_turns(rt: Any, provider: str, stub: StubServer, **kwargs: Any) -> list[str]:
    """Run the three turns in one session; return the conversation each turn's request held.

    Each turn's answer (the stub's echo of the conversation it received) names the
    turn's own prompt and every earlier one.
    """
    seen: list[str] = []
    ids: set[str | None] = set()
    async with rt.provider(provider).session(**kwargs) as session:
        for n, prompt in enumerate(TURNS):
            before = len(stub.requests)
            chunks = [c async for c in session.send(prompt)]
            answer = _text(chunks)
            assert all(p in answer for p in TURNS[: n + 1]), answer
            assert all(p not in answer for p in TURNS[n + 1 :]), answer
            result = chunks[-1]
            assert result.type == "result" and result.data is not None
            requests = _turn_requests(stub, before)
            assert requests, "the turn reached the stub"
            main = max(requests, key=lambda r: r.body_size)
            seen.append(_conversation(main.body))
            ids.add(session.session_id)
    assert len(ids) == 1 and None not in ids
    return seen


def _carries_the_earlier_turns(seen: list[str]) -> None:
    assert TURNS[0] in seen[0] and TURNS[1] not in seen[0]
    assert TURNS[0] in seen[1] and TURNS[1] in seen[1] and "assistant" in seen[1]
    assert all(t in seen[2] for t in TURNS)


async def test_claude_session_three_turns_share_one_process(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> None:
    """Three turns in one Claude Code session: turn 2 and 3 carry the turns before them,
    one process serves them all (taken from a spare), and nothing is left after."""
    marker = uuid.uuid4().hex
    path = write_manifest(
        cli_home.parent / "p.yaml",
        warm_manifest(agent_clis, stub, cli_home, marker, warm={"spares": 1}),
    )
    async with provcfg.load(path, environ={"STUB_SECRET": SECRET}) as rt:
        await rt.warmup(timeout=180)
        await eventually(lambda: rt.warm_pool.ready_count() == 1, 180, "a spare")
        seen = await _three_turns(rt, "claude", stub)
        _carries_the_earlier_turns(seen)
        assert rt.metrics.counter("warm_hit", "claude") == 1
        assert rt.metrics.counter("requests", "claude") == 3  # one record per turn
    assert marked_processes(marker) == []


async def test_claude_session_survives_a_failed_turn(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> None:
    """An API error inside a turn raises its ProviderError; the next turn works in the same
    session; a session whose process was killed ends with a typed error."""
    marker = uuid.uuid4().hex
    path = write_manifest(
        cli_home.parent / "p.yaml", warm_manifest(agent_clis, stub, cli_home, marker, init="lazy")
    )
    rt = provcfg.load(path, environ={"STUB_SECRET": SECRET})
    async with rt, rt.provider("claude").session() as session:
        first = [c async for c in session.send("hello")]
        assert re.search(r"user: .*\bhello$", _text(first))
        stub.enqueue_fault("529", path="/v1/messages")
        with pytest.raises(ProviderError) as caught:
            [c async for c in session.send("this one fails")]
        assert caught.value.kind == "overloaded"
        third = [c async for c in session.send("and this one works?")]
        assert "and this one works?" in _text(third)
        import os
        import signal

        for pid in marked_processes(marker):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(ProviderError) as dead:
            [c async for c in session.send("anyone there?")]
        assert dead.value.kind == "cli_failed"
        assert "ended" in dead.value.message
    assert marked_processes(marker) == []


async def test_codex_session_three_turns_on_one_thread(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> None:
    """Three turns on one codex app-server thread (the warm server): each request carries
    the turns before it; the thread id is the session id."""
    marker = uuid.uuid4().hex
    path = write_manifest(
        cli_home.parent / "p.yaml",
        warm_manifest(agent_clis, stub, cli_home, marker, warm={"spares": 1}, providers=("codex",)),
    )
    async with provcfg.load(path, environ={"STUB_SECRET": SECRET}) as rt:
        await rt.warmup(timeout=180)
        seen = await _three_turns(rt, "codex", stub)
        _carries_the_earlier_turns(seen)
        assert rt.metrics.counter("warm_hit", "codex") == 1
    assert marked_processes(marker) == []


async def test_codex_session_without_warm_starts_its_own_server(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> None:
    """Without warm processes a codex session runs its own app-server, stopped at the end;
    a failed turn raises its kind and the next turn works."""
    marker = uuid.uuid4().hex
    path = write_manifest(
        cli_home.parent / "p.yaml",
        warm_manifest(agent_clis, stub, cli_home, marker, providers=("codex",), init="lazy"),
    )
    async with provcfg.load(path, environ={"STUB_SECRET": SECRET}) as rt:
        async with rt.provider("codex").session() as session:
            assert re.search(r"user: .*\bhello", _text([c async for c in session.send("hello")]))
            stub.enqueue_fault("401", path="/v1/responses")
            with pytest.raises(ProviderError) as caught:
                [c async for c in session.send("this one fails")]
            assert caught.value.kind == "authentication" and caught.value.status == 401
            assert "works again?" in _text([c async for c in session.send("works again?")])
            assert marked_processes(marker) != []
        await eventually(lambda: marked_processes(marker) == [], 30, "the server stopped")


async def test_opencode_session_three_turns_in_one_session(
    agent_clis: AgentClis, stub: StubServer, cli_home: Path, netns: Netns
) -> None:
    """Three turns in one opencode session on the warm server: each request carries the
    turns before it; the opencode session id is the session id."""
    marker = uuid.uuid4().hex
    manifest = warm_manifest(
        agent_clis, stub, cli_home, marker, warm={"spares": 1}, providers=("opencode",)
    )
    path = write_manifest(cli_home.parent / "p.yaml", manifest)
    async with provcfg.load(path, environ={"STUB_SECRET": SECRET}) as rt:
        await rt.warmup(timeout=300)
        seen = await _three_turns(rt, "opencode", stub)
        _carries_the_earlier_turns(seen)
        assert rt.metrics.counter("warm_hit", "opencode") == 1
    assert marked_processes(marker) == []
