"""The opencode provider through the real runner, with a fake opencode replaying --format json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provcfg._errors import ProviderError
from provcfg._manifest import OpenCodeSpec
from provcfg._providers.opencode import OpenCodeProvider
from provcfg.plugin import Usage
from tests.support_fake_cli import make_provider

SID = "ses_abc"


def ev(etype: str, **fields: Any) -> str:
    return json.dumps({"type": etype, "timestamp": 1, "sessionID": SID, **fields}) + "\n"


def step_finish(inp: int, out: int, cost: float, reason: str) -> str:
    part = {
        "id": "prt_f",
        "sessionID": SID,
        "messageID": "msg_1",
        "type": "step-finish",
        "reason": reason,
        "cost": cost,
        "tokens": {"input": inp, "output": out, "reasoning": 1, "cache": {"read": 2, "write": 3}},
    }
    return ev("step_finish", part=part)


TOOL = {
    "id": "prt_t",
    "sessionID": SID,
    "messageID": "msg_1",
    "type": "tool",
    "callID": "call_1",
    "tool": "bash",
    "state": {"status": "completed", "input": {"command": "ls"}, "output": "a.txt", "title": "ls"},
}

FULL = (
    ev("step_start", part={"id": "prt_s", "type": "step-start"})
    + ev("tool_use", part=TOOL)
    + step_finish(10, 4, 0.001, "tool-calls")
    + ev("step_start", part={"id": "prt_s2", "type": "step-start"})
    + ev(
        "text",
        part={"id": "prt_x", "type": "text", "text": "Hello there", "time": {"start": 1, "end": 2}},
    )
    + step_finish(20, 5, 0.002, "stop")
)


def opencode(tmp_path: Path, script: str, **fields: Any) -> tuple[OpenCodeProvider, Path]:
    return make_provider(
        OpenCodeProvider,
        OpenCodeSpec,
        "opencode",
        tmp_path,
        script,
        default_model="anthropic/claude-sonnet-4-5",
        **fields,
    )


async def test_chunks_usage_and_cost_over_steps(tmp_path: Path) -> None:
    """Steps, tool use and text become chunks; tokens and cost are summed over the steps."""
    provider, _ = opencode(tmp_path, FULL)
    chunks = [c async for c in provider.stream("hi")]
    assert [c.type for c in chunks] == ["system", "tool_use", "tool_result", "text", "result"]
    assert chunks[1].data == {"id": "call_1", "name": "bash", "input": {"command": "ls"}}
    assert chunks[2].data == {"tool_use_id": "call_1", "content": "a.txt", "is_error": False}
    final = chunks[-1].data
    assert final is not None
    assert final["usage"] == Usage(30, 11, 4, 6)
    assert final["cost_usd"] == pytest.approx(0.003)
    assert final["stop_reason"] == "stop" and final["session_id"] == SID
    assert final["model"] == "anthropic/claude-sonnet-4-5"


async def test_argv_and_stdin(tmp_path: Path) -> None:
    """run --format json --title -m provider/model --agent; the prompt travels on stdin only."""
    provider, dump = opencode(tmp_path, FULL, agent="builder")
    await provider.complete("the prompt text", model="openai/gpt-5")
    seen = json.loads(dump.read_text())
    assert seen["argv"][1:] == [
        "run",
        "--format",
        "json",
        "--title",
        "provcfg",
        "-m",
        "openai/gpt-5",
        "--agent",
        "builder",
    ]
    assert seen["stdin"] == "the prompt text"


async def test_failed_tool_is_error_result(tmp_path: Path) -> None:
    """A tool part in state error becomes a tool_result with is_error and the error text."""
    bad = {**TOOL, "state": {"status": "error", "input": {"command": "x"}, "error": "denied"}}
    provider, _ = opencode(tmp_path, ev("tool_use", part=bad) + step_finish(1, 1, 0, "stop"))
    chunks = [c async for c in provider.stream("hi")]
    assert chunks[1].data == {"tool_use_id": "call_1", "content": "denied", "is_error": True}


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            {"name": "APIError", "data": {"message": "Unauthorized", "statusCode": 401}},
            "authentication",
        ),
        ({"name": "APIError", "data": {"message": "slow down", "statusCode": 429}}, "rate_limit"),
        ({"name": "ProviderAuthError", "data": {"message": "no key"}}, "authentication"),
        ({"name": "UnknownError", "data": {"message": "weird"}}, "cli_failed"),
    ],
)
async def test_error_event_is_mapped(tmp_path: Path, error: dict[str, Any], kind: str) -> None:
    """An error line becomes the mapped ProviderError, raised with opencode's exit code."""
    provider, _ = opencode(
        tmp_path, ev("step_start", part={}) + ev("error", error=error) + "#!exit 1\n"
    )
    with pytest.raises(ProviderError) as info:
        await provider.complete("hi")
    assert info.value.kind == kind and info.value.exit_code == 1
    assert str(error["data"]["message"]) in str(info.value)


async def test_system_prompt_refused_with_hint(tmp_path: Path) -> None:
    """opencode has no system-prompt flag: system= is invalid_request pointing at agents."""
    provider, _ = opencode(tmp_path, FULL)
    with pytest.raises(ProviderError, match="agent") as info:
        await provider.complete("hi", system="be brief")
    assert info.value.kind == "invalid_request"


async def test_unknown_event_counted(tmp_path: Path) -> None:
    """An unknown line type is counted and the stream goes on."""
    provider, _ = opencode(tmp_path, ev("novelty") + FULL)
    res = await provider.complete("hi")
    assert res.text == "Hello there"
    assert provider.ctx.metrics.counter("cli_unknown_event", "novelty") == 1
