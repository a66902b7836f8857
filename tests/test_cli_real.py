"""The real agent CLIs (Claude Code, opencode, codex) driven through provcfg against the stub.

Each test loads a manifest with ``provcfg.load`` whose providers point at the pinned
CLIs in tools/clis and at a stub server on 127.0.0.1, then streams through
``rt.provider(name)`` exactly as a user would. The test's thread runs in a
loopback-only network namespace (see tests/support_clis.py): the stub listens there
and every CLI process is spawned there, so nothing can leave the machine.

Every test also proves that no CLI process (child or grandchild, found by a marker
variable in its environment) is alive once the request is over.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import provcfg
from provcfg._errors import ProviderError
from provcfg.plugin import Chunk, Usage
from provcfg.stub import StubConfig, StubServer, tool_words
from tests.support_clis import (
    MARKER_VAR,
    AgentClis,
    Netns,
    agent_clis_fixture,  # noqa: F401 (fixture)
    claude_env,
    cli_home_fixture,  # noqa: F401 (fixture)
    codex_env,
    marked_processes,
    netns_argv,
    netns_fixture,  # noqa: F401 (fixture)
    opencode_env,
    write_codex_config,
    write_opencode_config,
)

pytestmark = pytest.mark.cli

# Non-ASCII, with JSON-sensitive characters: what the stub sends must arrive unchanged.
REPLY = 'provcfg real-CLI reply: "quoted", naïve ✓ — done.'
SECRET = "sk-provcfg-test-" + uuid.uuid4().hex
OPENCODE_MODELS = ("claude-sonnet-4-5", "stub-tool-use", "stub-fault-401", "stub-hang")


@dataclass
class Rig:
    """One test's runtime, stub and marker (every CLI process carries the marker)."""

    rt: Any
    stub: StubServer
    marker: str
    where: Netns
    work: Path


@pytest.fixture
async def reply_stub(netns: Netns) -> AsyncIterator[StubServer]:
    """A stub on 127.0.0.1 inside the test's namespace, replying :data:`REPLY`."""
    async with StubServer(config=StubConfig(text=REPLY, chunk_size=5)) as server:
        yield server


def _manifest(clis: AgentClis, stub: StubServer, home: Path, marker: str) -> dict[str, Any]:
    work = home.parent / "work"
    work.mkdir()
    codex_home = home / ".codex"
    write_codex_config(codex_home, stub.base_url)
    write_opencode_config(work, stub.base_url, OPENCODE_MODELS)
    common = {"kill_grace": "2s", "timeout": "2m", "init": "lazy"}

    def env(values: dict[str, str]) -> dict[str, str]:
        # The key travels as ${STUB_SECRET}: interpolated by the loader, never in the file.
        out = {k: ("${STUB_SECRET}" if v == SECRET else v) for k, v in values.items()}
        out[MARKER_VAR] = marker
        return out

    return {
        "version": 1,
        "default_provider": "claude",
        "providers": {
            "claude": {
                "kind": "claude-code",
                "path": str(clis.claude),
                "model": "claude-sonnet-4-5",
                "cwd": str(work),
                "env": env(claude_env(stub.base_url, home, SECRET)),
                **common,
            },
            # Allowed to run Read without asking (never --dangerously-skip-permissions).
            "claude_read": {
                "kind": "claude-code",
                "path": str(clis.claude),
                "model": "claude-sonnet-4-5",
                "cwd": str(work),
                "permission_mode": "default",
                "allowed_tools": ["Read"],
                "env": env(claude_env(stub.base_url, home, SECRET)),
                **common,
            },
            "opencode": {
                "kind": "opencode",
                "path": str(clis.opencode),
                "model": "provcfg/claude-sonnet-4-5",
                "cwd": str(work),
                "env": env(opencode_env(home, SECRET)),
                **common,
            },
            "codex": {
                "kind": "codex",
                "path": str(clis.codex),
                "model": "gpt-5.5",
                "cwd": str(work),
                "env": env(codex_env(home, codex_home, SECRET)),
                **common,
            },
        },
    }


@pytest.fixture
async def rig(
    agent_clis: AgentClis, reply_stub: StubServer, cli_home: Path, netns: Netns
) -> AsyncIterator[Rig]:
    """A runtime loaded from a manifest of the three real CLIs pointed at the stub."""
    marker = uuid.uuid4().hex
    manifest = _manifest(agent_clis, reply_stub, cli_home, marker)
    path = cli_home.parent / "providers.yaml"
    path.write_text(json.dumps(manifest, indent=2))  # JSON is YAML
    async with provcfg.load(path, environ={"STUB_SECRET": SECRET}) as rt:
        yield Rig(rt, reply_stub, marker, netns, cli_home.parent / "work")
    assert marked_processes(marker) == [], "a CLI process outlived the runtime"


def _no_survivors(rig: Rig) -> None:
    leftover = marked_processes(rig.marker)
    assert leftover == [], f"CLI processes still alive after the request: {leftover}"
    for pid in _zombie_children():
        pytest.fail(f"child {pid} of the test process was never reaped")


def _zombie_children() -> Iterator[int]:
    me = str(os.getpid()).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split(b" ")
        if fields[0] == b"Z" and fields[1] == me:
            yield int(name)


async def _collect(rig: Rig, provider: str, **kwargs: Any) -> list[Chunk]:
    return [c async for c in rig.rt.provider(provider).stream("Say hello.", **kwargs)]


def _text(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if c.type == "text")


def _secret_free(exc: ProviderError) -> None:
    for text in (str(exc), repr(exc), exc.message, exc.stderr_tail, json.dumps(exc.details)):
        assert SECRET not in text


# --------------------------------------------------------------------------- isolation


def test_the_test_thread_sees_only_loopback(netns: Netns) -> None:
    """Inside the test's namespace the only network interface is lo (or the fallback is said)."""
    import socket

    names = [name for _, name in socket.if_nameindex()]
    if netns.isolated:
        assert names == ["lo"]
    else:
        assert netns.reason


def test_netns_argv_runs_a_command_with_only_loopback(netns: Netns) -> None:
    """A command wrapped by netns_argv sees only lo (and fails loudly where unshare is refused)."""
    import subprocess
    import sys

    script = "import socket; print([n for _, n in socket.if_nameindex()])"
    done = subprocess.run(
        netns_argv([sys.executable, "-c", script]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if netns.isolated:
        assert (done.returncode, done.stdout.strip()) == (0, "['lo']"), done.stderr
    else:
        assert done.returncode != 0


def test_installed_clis_report_their_pinned_versions(agent_clis: AgentClis, cli_home: Path) -> None:
    """Each installed CLI answers --version with the version pinned in tools/clis/package.json."""
    import subprocess

    for name, version in agent_clis.versions.items():
        binary = getattr(agent_clis, name)
        done = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            env={"PATH": os.environ["PATH"], "HOME": str(cli_home)},
            timeout=60,
            check=True,
        )
        assert version in done.stdout, (name, done.stdout)


# --------------------------------------------------------------------------- claude-code


async def test_claude_streams_the_stub_reply_with_usage(rig: Rig) -> None:
    """Claude Code's answer through provcfg is exactly the stub's reply, with usage and cost."""
    chunks = await _collect(rig, "claude")
    assert _text(chunks) == REPLY
    assert chunks[0].type == "system" and chunks[0].data is not None
    result = chunks[-1]
    assert result.type == "result" and result.data is not None
    usage = result.data["usage"]
    request = rig.stub.requests[-1]
    assert request.path == "/v1/messages" and request.model == "claude-sonnet-4-5"
    # The stub counts input as body bytes / 4 and output as one token per delta.
    assert usage == Usage(input_tokens=request.body_size // 4, output_tokens=-(-len(REPLY) // 5))
    assert isinstance(result.data["cost_usd"], float) and result.data["cost_usd"] > 0
    assert result.data["session_id"] == chunks[0].data["session_id"]
    _no_survivors(rig)


async def test_claude_partial_messages_arrive_as_the_stub_deltas(rig: Rig) -> None:
    """With partial messages on, each stub delta arrives as one text chunk, not re-sent whole."""
    chunks = await _collect(rig, "claude", partial_messages=True)
    texts = [c.text for c in chunks if c.type == "text"]
    assert texts == [REPLY[i : i + 5] for i in range(0, len(REPLY), 5)]
    _no_survivors(rig)


async def test_claude_tool_use_turn(rig: Rig) -> None:
    """A stub tool call reaches the caller as tool_use then tool_result, then the final text."""
    chunks = await _collect(rig, "claude", model="stub-tool-use")
    types = [c.type for c in chunks]
    assert "tool_use" in types and types.index("tool_use") < types.index("tool_result")
    tool_use = chunks[types.index("tool_use")].data
    assert tool_use is not None and tool_use["name"] == "get_weather"
    assert tool_use["input"] == {"location": "San Francisco, CA", "unit": "celsius"}
    result = chunks[types.index("tool_result")].data
    assert result is not None and result["is_error"] is True  # Claude Code has no get_weather
    assert _text(chunks) == REPLY * 2  # once before the call, once after
    assert len(rig.stub.requests) == 2
    _no_survivors(rig)


NOTES = "provcfg notes: read by a real tool, ✓.\n"


async def test_claude_runs_a_read_only_tool_successfully(rig: Rig) -> None:
    """The stub asks Claude Code to Read a file in the test's folder; the tool succeeds."""
    notes = rig.work / "notes.txt"
    notes.write_text(NOTES)
    model = "stub-tool-use-" + tool_words("Read", {"file_path": str(notes)})
    chunks = await _collect(rig, "claude_read", model=model)
    types = [c.type for c in chunks]
    assert types.index("tool_use") < types.index("tool_result") < types.index("result")
    tool_use = chunks[types.index("tool_use")].data
    assert tool_use is not None
    assert (tool_use["name"], tool_use["input"]) == ("Read", {"file_path": str(notes)})
    result = chunks[types.index("tool_result")].data
    assert result is not None and result["is_error"] is False
    assert result["tool_use_id"] == tool_use["id"]
    assert NOTES.strip() in str(result["content"])
    assert _text(chunks) == REPLY * 2
    # The second request hands the file's text back, so the stub answered text and stopped.
    assert len(rig.stub.requests) == 2
    assert NOTES.strip() in json.dumps(rig.stub.requests[1].body, ensure_ascii=False)
    _no_survivors(rig)


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        ("stub-fault-401", "authentication"),
        ("stub-fault-429-retry-after-1", "rate_limit"),
        ("stub-fault-529", "overloaded"),
    ],
)
async def test_claude_api_errors_become_provider_errors(rig: Rig, model: str, kind: str) -> None:
    """A stub HTTP error becomes the mapped ProviderError kind; no message holds the key."""
    with pytest.raises(ProviderError) as caught:
        await rig.rt.provider("claude").complete("Say hello.", model=model)
    assert caught.value.kind == kind
    assert caught.value.provider == "claude"
    _secret_free(caught.value)
    assert len(rig.stub.requests) == 1  # CLAUDE_CODE_MAX_RETRIES=0: no hidden retries
    _no_survivors(rig)


async def test_claude_recovers_from_a_dropped_stream_without_streaming(rig: Rig) -> None:
    """After the stub drops its stream, Claude Code retries once without streaming and succeeds."""
    rig.stub.enqueue_fault("drop-2", path="/v1/messages")
    chunks = await _collect(rig, "claude")
    assert _text(chunks) == REPLY
    assert [r.stream for r in rig.stub.requests] == [True, False]
    assert chunks[-1].type == "result"
    _no_survivors(rig)


async def test_claude_dropped_twice_is_a_provider_error(rig: Rig) -> None:
    """When the plain-JSON retry is cut too, the run ends in a ProviderError holding no key."""
    with pytest.raises(ProviderError) as caught:
        await rig.rt.provider("claude").complete("Say hello.", model="stub-drop-2")
    assert "ECONNRESET" in caught.value.message
    assert caught.value.kind == "network"  # api_error_status is null: mapped by the text
    assert caught.value.exit_code == 1
    _secret_free(caught.value)
    assert [r.stream for r in rig.stub.requests] == [True, False]
    _no_survivors(rig)


async def test_claude_cancelled_mid_request_leaves_no_process(rig: Rig) -> None:
    """Closing the stream while Claude Code waits on a hanging API kills its whole group."""
    stream = rig.rt.provider("claude").stream("Say hello.", model="stub-hang")
    first = await anext(stream)  # system/init: the CLI runs and is about to call the API
    assert first.type == "system"
    assert marked_processes(rig.marker) != []
    await stream.aclose()
    _no_survivors(rig)


# --------------------------------------------------------------------------- codex


async def test_codex_streams_the_stub_reply_with_usage(rig: Rig) -> None:
    """codex's answer through provcfg is exactly the stub's reply, with its usage."""
    chunks = await _collect(rig, "codex")
    assert _text(chunks) == REPLY
    result = chunks[-1]
    assert result.type == "result" and result.data is not None
    request = rig.stub.requests[-1]
    assert request.path == "/v1/responses" and request.model == "gpt-5.5"
    assert result.data["usage"].input_tokens == request.body_size // 4
    assert result.data["usage"].output_tokens == -(-len(REPLY) // 5)
    assert result.data["session_id"]
    _no_survivors(rig)


async def test_codex_tool_turn_runs_a_command(rig: Rig) -> None:
    """The stub's function call makes codex run a read-only command; its output comes back."""
    (rig.work / "notes.txt").write_text(NOTES)
    model = "stub-tool-use-" + tool_words("exec_command", {"cmd": "cat notes.txt"})
    chunks = await _collect(rig, "codex", model=model)
    types = [c.type for c in chunks]
    assert types.index("tool_use") < types.index("tool_result") < types.index("result")
    tool_use = chunks[types.index("tool_use")].data
    assert tool_use is not None and tool_use["name"] == "command_execution"
    assert "cat notes.txt" in tool_use["input"]["command"]
    result = chunks[types.index("tool_result")].data
    assert result is not None and result["tool_use_id"] == tool_use["id"]
    assert (result["is_error"], result["exit_code"], result["content"]) == (False, 0, NOTES)
    assert _text(chunks) == REPLY * 2
    # codex sent the command's output back as a function_call_output, so the loop ended.
    assert len(rig.stub.requests) == 2
    items = (rig.stub.requests[1].body or {})["input"]
    outputs = [i for i in items if i.get("type") == "function_call_output"]
    assert outputs and NOTES.strip() in json.dumps(outputs, ensure_ascii=False)
    _no_survivors(rig)


@pytest.mark.parametrize(
    ("model", "kind"),
    [("stub-fault-401", "authentication"), ("stub-fault-429-retry-after-1", "rate_limit")],
)
async def test_codex_api_errors_become_provider_errors(rig: Rig, model: str, kind: str) -> None:
    """A stub HTTP error ends codex's turn and becomes the mapped kind; no message holds the key."""
    with pytest.raises(ProviderError) as caught:
        await rig.rt.provider("codex").complete("Say hello.", model=model)
    assert caught.value.kind == kind
    assert caught.value.exit_code == 1
    _secret_free(caught.value)
    assert len(rig.stub.requests) == 1  # request_max_retries = 0
    _no_survivors(rig)


# --------------------------------------------------------------------------- opencode
# opencode takes 5-20 s per run on this machine kind (a 180 MB Bun binary that sets up a
# SQLite store, a title request and a project scan), hence slow.


@pytest.mark.slow
async def test_opencode_streams_the_stub_reply_with_usage(rig: Rig) -> None:
    """opencode's answer through provcfg is exactly the stub's reply, with its token counts."""
    chunks = await _collect(rig, "opencode")
    assert _text(chunks) == REPLY
    result = chunks[-1]
    assert result.type == "result" and result.data is not None
    main = [
        r for r in rig.stub.requests if r.body_size == max(q.body_size for q in rig.stub.requests)
    ]
    assert main[0].path == "/v1/messages"
    assert result.data["usage"].input_tokens == main[0].body_size // 4
    assert result.data["usage"].output_tokens == -(-len(REPLY) // 5)
    assert result.data["stop_reason"] == "stop"
    _no_survivors(rig)


@pytest.mark.slow
async def test_opencode_tool_use_and_auth_error(rig: Rig) -> None:
    """opencode reports a stub tool call as tool_use + tool_result, and a 401 as authentication."""
    chunks = await _collect(rig, "opencode", model="provcfg/stub-tool-use")
    types = [c.type for c in chunks]
    assert types.index("tool_use") < types.index("tool_result") < types.index("result")
    assert _text(chunks) == REPLY * 2
    _no_survivors(rig)

    with pytest.raises(ProviderError) as caught:
        await rig.rt.provider("opencode").complete("Say hello.", model="provcfg/stub-fault-401")
    assert caught.value.kind == "authentication"
    assert caught.value.status == 401
    _secret_free(caught.value)
    _no_survivors(rig)
