"""The claude-code provider through the real runner, with a fake claude replaying stream-json."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from provcfg._errors import CLINotFoundError, ProviderError
from provcfg._manifest import ClaudeCodeSpec
from provcfg._metrics import Metrics
from provcfg._providers.claude_code import ClaudeCodeProvider
from provcfg.plugin import Chunk, Timings, Usage
from provcfg.testing import make_context
from tests.support_fake_cli import make_provider, process_gone

INIT = {
    "type": "system",
    "subtype": "init",
    "cwd": "/tmp",
    "session_id": "sess-1",
    "tools": ["Bash", "Read"],
    "mcp_servers": [],
    "model": "claude-sonnet-4-5",
    "permissionMode": "default",
    "uuid": "u1",
}


def assistant(msg_id: str, *content: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {
        "type": "assistant",
        "message": {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": list(content),
            "stop_reason": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        },
        "parent_tool_use_id": parent,
        "session_id": "sess-1",
    }


def result(**extra: Any) -> dict[str, Any]:
    base = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "duration_ms": 100,
        "num_turns": 2,
        "result": "Done.",
        "session_id": "sess-1",
        "total_cost_usd": 0.0123,
        "usage": {
            "input_tokens": 20,
            "cache_creation_input_tokens": 3,
            "cache_read_input_tokens": 4,
            "output_tokens": 9,
        },
        "stop_reason": "end_turn",
    }
    base.update(extra)
    return base


def delta(text: str) -> dict[str, Any]:
    return {
        "type": "stream_event",
        "event": {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text},
        },
        "parent_tool_use_id": None,
        "session_id": "sess-1",
    }


def lines(*events: dict[str, Any] | str) -> str:
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)


FULL = lines(
    INIT,
    assistant(
        "msg_1",
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
    ),
    {
        "type": "user",
        "message": {
            "role": "user",
            "content": [
                {
                    "tool_use_id": "toolu_1",
                    "type": "tool_result",
                    "content": "a.txt",
                    "is_error": False,
                }
            ],
        },
        "parent_tool_use_id": None,
        "session_id": "sess-1",
    },
    {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 1,
        "max_retries": 2,
        "retry_delay_ms": 500,
        "error_status": 529,
        "error": "overloaded",
    },
    assistant("msg_2", {"type": "text", "text": " Done."}),
    result(),
)


def claude(tmp_path: Path, script: str, **fields: Any) -> tuple[ClaudeCodeProvider, Path]:
    return make_provider(
        ClaudeCodeProvider, ClaudeCodeSpec, "claude-code", tmp_path, script, **fields
    )


async def test_chunks_and_result(tmp_path: Path) -> None:
    """init, text, tool_use, tool_result, api_retry and result become the documented chunks."""
    provider, _ = claude(tmp_path, FULL)
    chunks = [c async for c in provider.stream("hi")]
    types = [c.type for c in chunks]
    assert types == ["system", "text", "tool_use", "tool_result", "retry", "text", "result"]
    assert chunks[0].data is not None and chunks[0].data["session_id"] == "sess-1"
    assert chunks[2].data == {
        "id": "toolu_1",
        "name": "Bash",
        "input": {"command": "ls"},
        "parent_tool_use_id": None,
    }
    assert chunks[3].data is not None and chunks[3].data["content"] == "a.txt"
    assert chunks[4].data is not None and chunks[4].data["status"] == 529
    assert chunks[4].data["delay_seconds"] == 0.5
    final = chunks[-1].data
    assert final is not None
    assert final["usage"] == Usage(20, 9, 4, 3)
    assert final["cost_usd"] == 0.0123 and final["session_id"] == "sess-1"
    assert final["model"] == "claude-sonnet-4-5" and final["stop_reason"] == "end_turn"
    timings = final["timings"]
    assert isinstance(timings, Timings)
    assert timings.connect is not None and timings.first_chunk is not None
    assert timings.total is not None
    assert 0 < timings.connect <= timings.first_chunk <= timings.total


async def test_complete_folds_the_stream(tmp_path: Path) -> None:
    """complete() returns the text, usage, cost, session and tool uses of the run."""
    provider, _ = claude(tmp_path, FULL)
    res = await provider.complete("hi")
    assert res.text == "Let me check. Done."
    assert res.usage.output_tokens == 9 and res.cost_usd == 0.0123
    assert res.session_id == "sess-1" and res.tool_uses[0]["name"] == "Bash"


async def test_argv_env_and_stdin(tmp_path: Path) -> None:
    """The spec becomes flags, the prompt goes to stdin only, secrets only into the child env."""
    secret = "sk-ant-very-secret-0123456789"
    provider, dump = claude(
        tmp_path,
        FULL,
        env={"ANTHROPIC_API_KEY": secret},
        permission_mode="acceptEdits",
        allowed_tools=("Bash(git *)", "Read"),
        disallowed_tools=("WebFetch",),
        max_turns=3,
        extra_args=("--bare",),
    )
    prompt = "a prompt that must not be on argv"
    await provider.complete(prompt, model="claude-opus-4-1", system="be brief", max_tokens=77)
    seen = json.loads(dump.read_text())
    argv: list[str] = seen["argv"][1:]
    assert argv[:4] == ["-p", "--output-format", "stream-json", "--verbose"]
    pairs = dict(itertools.pairwise(argv))
    assert pairs["--model"] == "claude-opus-4-1"
    assert pairs["--permission-mode"] == "acceptEdits"
    assert pairs["--allowedTools"] == "Bash(git *),Read"
    assert pairs["--disallowedTools"] == "WebFetch"
    assert pairs["--max-turns"] == "3"
    assert pairs["--system-prompt"] == "be brief"
    assert argv[-1] == "--bare"
    assert "--dangerously-skip-permissions" not in argv
    assert "--include-partial-messages" not in argv
    assert prompt not in " ".join(argv) and secret not in " ".join(argv)
    assert seen["stdin"] == prompt
    env = seen["env"]
    assert env["ANTHROPIC_API_KEY"] == secret
    assert env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] == "77"
    allowed = {"PATH", "HOME", "LANG", "LANGUAGE", "TERM", "TMPDIR", "USER", "SHELL", "PWD"}
    allowed |= {"SHLVL", "_"}
    declared = {"ANTHROPIC_API_KEY", "FAKE_SCENARIO", "FAKE_DUMP", "CLAUDE_CODE_MAX_OUTPUT_TOKENS"}
    extra = {k for k in env if k not in allowed | declared and not k.startswith("LC_")}
    assert extra == set(), extra  # PWD/SHLVL/_ are added by /bin/sh in the fake's wrapper


async def test_partial_messages_stream_deltas_without_duplicates(tmp_path: Path) -> None:
    """With partial messages, text comes from deltas and the full assistant text is not repeated."""
    script = lines(
        INIT,
        {"type": "stream_event", "event": {"type": "message_start", "message": {"id": "msg_1"}}},
        delta("Hel"),
        delta("lo"),
        assistant("msg_1", {"type": "text", "text": "Hello"}),
        assistant("msg_2", {"type": "text", "text": " again"}),  # not streamed: kept
        result(),
    )
    provider, dump = claude(tmp_path, script, partial_messages=True)
    texts = [c.text async for c in provider.stream("hi") if c.type == "text"]
    assert texts == ["Hel", "lo", " again"]
    assert "--include-partial-messages" in json.loads(dump.read_text())["argv"]


async def test_partial_messages_as_kind_option(tmp_path: Path) -> None:
    """partial_messages=True as a call option adds --include-partial-messages."""
    provider, dump = claude(tmp_path, FULL)
    await provider.complete("hi", partial_messages=True)
    assert "--include-partial-messages" in json.loads(dump.read_text())["argv"]


async def test_subagent_text_is_not_the_answer(tmp_path: Path) -> None:
    """Text of a sub-agent (parent_tool_use_id set) is skipped; its tool calls are kept."""
    script = lines(
        INIT,
        assistant(
            "m",
            {"type": "text", "text": "inner"},
            {"type": "tool_use", "id": "t2", "name": "Read", "input": {}},
            parent="toolu_1",
        ),
        assistant("n", {"type": "text", "text": "outer"}),
        result(),
    )
    provider, _ = claude(tmp_path, script)
    res = await provider.complete("hi")
    assert res.text == "outer"
    assert res.tool_uses[0]["parent_tool_use_id"] == "toolu_1"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, "authentication"),
        (403, "permission"),
        (429, "rate_limit"),
        (529, "overloaded"),
        (404, "invalid_request"),  # the one status table: a 404 names no model here
        (400, "invalid_request"),
        (None, "cli_failed"),
    ],
)
async def test_error_result_is_mapped(tmp_path: Path, status: int | None, kind: str) -> None:
    """An is_error result raises the error kind of its api_error_status, with the exit code."""
    script = (
        lines(INIT, result(is_error=True, api_error_status=status, result="API Error: boom"))
        + "#!exit 1\n"
    )
    provider, _ = claude(tmp_path, script)
    with pytest.raises(ProviderError) as info:
        await provider.complete("hi")
    assert info.value.kind == kind
    assert info.value.exit_code == 1 and "API Error: boom" in str(info.value)
    assert info.value.provider == "agent"


async def test_max_turns_error_result(tmp_path: Path) -> None:
    """An error_max_turns result (no api status) is cli_failed with its message."""
    script = lines(
        INIT,
        result(
            is_error=True,
            subtype="error_max_turns",
            result=None,
            errors=["Reached maximum number of turns (1)"],
        ),
    )
    provider, _ = claude(tmp_path, script)
    with pytest.raises(ProviderError, match="maximum number of turns") as info:
        await provider.complete("hi")
    assert info.value.kind == "cli_failed"


async def test_error_message_scrubs_declared_secrets(tmp_path: Path) -> None:
    """A CLI error text that echoes a declared secret is masked."""
    secret = "sk-ant-leaky-secret-value"
    script = lines(INIT, result(is_error=True, api_error_status=401, result=f"bad key {secret}"))
    provider, _ = claude(tmp_path, script, env={"ANTHROPIC_API_KEY": secret})
    with pytest.raises(ProviderError) as info:
        await provider.complete("hi")
    assert secret not in str(info.value) and "**********" in str(info.value)


async def test_unknown_events_counted_and_skipped(tmp_path: Path) -> None:
    """Unknown event types and system subtypes are counted in cli_unknown_event and skipped."""
    script = lines(
        INIT,
        {"type": "mystery"},
        {"type": "system", "subtype": "novel"},
        assistant("m", {"type": "text", "text": "ok"}),
        result(),
    )
    provider, _ = claude(tmp_path, script)
    res = await provider.complete("hi")
    assert res.text == "ok"
    metrics: Metrics = provider.ctx.metrics
    assert metrics.counter("cli_unknown_event", "mystery") == 1
    assert metrics.counter("cli_unknown_event", "system/novel") == 1


async def test_exit_without_result_is_incomplete(tmp_path: Path) -> None:
    """A CLI that exits 0 without a result line raises stream_incomplete."""
    provider, _ = claude(tmp_path, lines(INIT, assistant("m", {"type": "text", "text": "par"})))
    with pytest.raises(ProviderError) as info:
        await provider.complete("hi")
    assert info.value.kind == "stream_incomplete"


async def test_crash_is_cli_failed_with_tail(tmp_path: Path) -> None:
    """A non-zero exit without a result is cli_failed carrying the stderr tail."""
    provider, _ = claude(tmp_path, lines(INIT) + "#!stderr_text Error: something broke\n#!exit 2\n")
    with pytest.raises(ProviderError) as info:
        await provider.complete("hi")
    assert info.value.kind == "cli_failed" and info.value.exit_code == 2
    assert "something broke" in info.value.stderr_tail and "something broke" in str(info.value)


async def test_first_chunk_before_cli_finishes(tmp_path: Path) -> None:
    """The first chunk reaches the consumer while the fake CLI still waits to write the rest."""
    go = tmp_path / "go"
    provider, _ = claude(tmp_path, lines(INIT) + f"#!wait_file {go}\n" + lines(result()))
    stream = provider.stream("hi")
    async with asyncio.timeout(20):
        first = await anext(stream)  # type: ignore[call-overload]
        assert first.type == "system" and not go.exists()
        go.touch()
        rest = [c async for c in stream]
    assert rest[-1].type == "result"


async def test_break_and_cancel_stop_the_process(tmp_path: Path) -> None:
    """Breaking out of the stream, or cancelling its task, leaves no process behind."""
    pidfile = tmp_path / "pid"
    provider, _ = claude(
        tmp_path, f"#!pidfile {pidfile}\n" + lines(INIT) + "#!ignore_term\n#!hang\n", kill_grace=0.2
    )
    stream = provider.stream("hi")
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert process_gone(int(pidfile.read_text()))
    assert provider.inflight == 0

    pidfile.unlink()
    got = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream("hi"):
            got.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got.wait(), 20)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert process_gone(int(pidfile.read_text()))


async def test_timeout_argument_overrides_spec(tmp_path: Path) -> None:
    """timeout= on the call is the total deadline, raised as kind timeout."""
    provider, _ = claude(tmp_path, lines(INIT) + "#!hang\n", timeout=60.0)
    with pytest.raises(ProviderError) as info:
        await provider.complete("hi", timeout=0.3)
    assert info.value.kind == "timeout"


async def test_unknown_option_rejected(tmp_path: Path) -> None:
    """An unknown kind option is an invalid_request naming the accepted ones."""
    provider, _ = claude(tmp_path, FULL)
    with pytest.raises(ProviderError, match="partial_messages") as info:
        await provider.complete("hi", bogus=1)
    assert info.value.kind == "invalid_request"


async def test_missing_cli_detected_at_initialize(tmp_path: Path) -> None:
    """initialize() (and eager prepare_now) surface CLINotFoundError from cli_path."""

    class Missing:
        def resolve(self) -> Path:
            raise CLINotFoundError("claude", ["/nowhere"], "Install it.")

    ctx = dataclasses.replace(
        make_context(ClaudeCodeSpec(kind="claude-code"), name="agent", metrics=Metrics()),
        cli=Missing(),
    )
    provider = ClaudeCodeProvider(ctx)
    with pytest.raises(CLINotFoundError):
        await provider.initialize()
    with pytest.raises(CLINotFoundError):
        provider.prepare_now()


def test_chunk_types_are_contract_types() -> None:
    """The chunks the parser makes use only ChunkType values (a typo would slip past mypy)."""
    from typing import get_args

    from provcfg.plugin import ChunkType

    assert {"system", "text", "thinking", "tool_use", "tool_result", "retry", "result"} <= set(
        get_args(ChunkType)
    )
    assert Chunk("text", "x").as_dict() == {"type": "text", "text": "x"}
