"""The codex provider through the real runner, with a fake codex replaying exec --json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provcfg._errors import ProviderError
from provcfg._manifest import CodexSpec
from provcfg._providers.codex import CodexProvider
from provcfg.plugin import Usage
from tests.support_fake_cli import make_provider


def ev(etype: str, **fields: Any) -> str:
    return json.dumps({"type": etype, **fields}) + "\n"


CMD = {
    "id": "item_1",
    "type": "command_execution",
    "command": "bash -lc ls",
    "aggregated_output": "",
    "exit_code": None,
    "status": "in_progress",
}
DONE_CMD = {**CMD, "aggregated_output": "a.txt\n", "exit_code": 0, "status": "completed"}
TURN_DONE = ev(
    "turn.completed", usage={"input_tokens": 50, "cached_input_tokens": 10, "output_tokens": 7}
)

FULL = (
    ev("thread.started", thread_id="th_123")
    + ev("turn.started")
    + ev("item.completed", item={"id": "item_0", "type": "reasoning", "text": "thinking..."})
    + ev("item.started", item=CMD)
    + ev("item.completed", item=DONE_CMD)
    + ev(
        "item.completed", item={"id": "item_2", "type": "error", "message": "minor: skipped a file"}
    )
    + ev("item.completed", item={"id": "item_3", "type": "agent_message", "text": "All done."})
    + TURN_DONE
)


def codex(tmp_path: Path, script: str, **fields: Any) -> tuple[CodexProvider, Path]:
    return make_provider(
        CodexProvider, CodexSpec, "codex", tmp_path, script, default_model="gpt-5", **fields
    )


async def test_chunks_and_usage(tmp_path: Path) -> None:
    """Thread, reasoning, command, non-fatal error item and message become chunks; usage kept."""
    provider, _ = codex(tmp_path, FULL)
    chunks = [c async for c in provider.stream("hi")]
    types = [c.type for c in chunks]
    assert types == ["system", "thinking", "tool_use", "tool_result", "error", "text", "result"]
    assert chunks[2].data == {
        "id": "item_1",
        "name": "command_execution",
        "input": {"command": "bash -lc ls"},
    }
    assert chunks[3].data is not None and chunks[3].data["content"] == "a.txt\n"
    assert chunks[3].data["is_error"] is False
    assert chunks[4].data == {"message": "minor: skipped a file", "fatal": False}
    final = chunks[-1].data
    assert final is not None
    assert final["usage"] == Usage(input_tokens=50, output_tokens=7, cache_read_input_tokens=10)
    assert final["session_id"] == "th_123" and final["model"] == "gpt-5"


async def test_argv_prompt_on_stdin(tmp_path: Path) -> None:
    """exec --json --skip-git-repo-check --sandbox MODE -m MODEL ... -, prompt on stdin."""
    provider, dump = codex(tmp_path, FULL, sandbox="workspace-write", extra_args=("--ephemeral",))
    await provider.complete("fix the bug", system='say "hi"\nonly')
    seen = json.loads(dump.read_text())
    argv = seen["argv"][1:]
    assert argv[:5] == ["exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write"]
    assert argv[5:7] == ["-m", "gpt-5"]
    assert argv[7:9] == ["-c", 'developer_instructions="say \\"hi\\"\\nonly"']
    assert argv[-2:] == ["--ephemeral", "-"]
    assert seen["stdin"] == "fix the bug"


async def test_failed_command_is_error_result(tmp_path: Path) -> None:
    """A command that exits non-zero gives a tool_result with is_error and its exit code."""
    bad = {**CMD, "aggregated_output": "boom", "exit_code": 2, "status": "failed"}
    provider, _ = codex(tmp_path, ev("item.completed", item=bad) + TURN_DONE)
    chunks = [c async for c in provider.stream("hi")]
    assert [c.type for c in chunks] == ["tool_use", "tool_result", "result"]
    assert chunks[1].data == {
        "tool_use_id": "item_1",
        "content": "boom",
        "is_error": True,
        "exit_code": 2,
    }


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("unexpected status 401 Unauthorized: bad key", "authentication"),
        ("exceeded retry limit, last status: 429 Too Many Requests", "rate_limit"),
        ("stream disconnected before completion", "stream_incomplete"),
        ("turn aborted", "cli_failed"),
    ],
)
async def test_turn_failed_is_mapped(tmp_path: Path, message: str, kind: str) -> None:
    """turn.failed raises the kind of the status named in its message, with the exit code."""
    script = (
        ev("thread.started", thread_id="t")
        + ev("error", message="Reconnecting... 1/5")
        + ev("turn.failed", error={"message": message})
        + "#!exit 1\n"
    )
    provider, _ = codex(tmp_path, script)
    with pytest.raises(ProviderError) as info:
        await provider.complete("hi")
    assert info.value.kind == kind and info.value.exit_code == 1
    assert message in str(info.value)


async def test_stream_error_then_success_is_not_fatal(tmp_path: Path) -> None:
    """A top-level error event (a reconnect) followed by turn.completed is an error chunk only."""
    script = (
        ev("error", message="Reconnecting... 1/5")
        + ev("item.completed", item={"id": "i", "type": "agent_message", "text": "ok"})
        + TURN_DONE
    )
    provider, _ = codex(tmp_path, script)
    chunks = [c async for c in provider.stream("hi")]
    assert [c.type for c in chunks] == ["error", "text", "result"]


async def test_stream_error_without_turn_end_fails(tmp_path: Path) -> None:
    """A stream error and no turn result at all raise that error, not a silent success."""
    provider, _ = codex(
        tmp_path, ev("error", message="unexpected status 500 Internal Server Error: x")
    )
    with pytest.raises(ProviderError) as info:
        await provider.complete("hi")
    assert info.value.kind == "server_error"


async def test_unknown_item_counted(tmp_path: Path) -> None:
    """Unknown item types and event types are counted and skipped."""
    script = (
        ev("item.completed", item={"id": "x", "type": "hologram"}) + ev("brand.new") + TURN_DONE
    )
    provider, _ = codex(tmp_path, script)
    await provider.complete("hi")
    metrics = provider.ctx.metrics
    assert metrics.counter("cli_unknown_event", "item/hologram") == 1
    assert metrics.counter("cli_unknown_event", "brand.new") == 1
