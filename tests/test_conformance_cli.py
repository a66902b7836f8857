"""The provider conformance suite run for claude-code, opencode and codex with fake CLIs.

The fake CLI (tests/fake_clis/replay.py) picks its scenario by the prompt's first
word, so one provider can answer ("text"), stream long ("long") and fail ("error").
Every run records its pid, and ``assert_released`` checks that none is left running.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from provcfg._manifest import ClaudeCodeSpec, CodexSpec, OpenCodeSpec
from provcfg._metrics import Metrics
from provcfg._providers.claude_code import ClaudeCodeProvider
from provcfg._providers.codex import CodexProvider
from provcfg._providers.opencode import OpenCodeProvider
from provcfg.plugin import Provider
from provcfg.testing import ProviderConformance, Request, make_context
from tests.support_fake_cli import fake_cli, process_gone


def _lines(*events: dict[str, Any]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


_CLAUDE_TEXT = [
    {"type": "system", "subtype": "init", "session_id": "s", "model": "m", "tools": []},
    {
        "type": "assistant",
        "message": {"id": "a", "content": [{"type": "text", "text": "Hello world"}]},
        "parent_tool_use_id": None,
    },
]
_CLAUDE_RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "session_id": "s",
    "total_cost_usd": 0.001,
    "usage": {"input_tokens": 3, "output_tokens": 2},
    "stop_reason": "end_turn",
}
_OC = {"timestamp": 1, "sessionID": "ses"}
_OC_STEP = {
    "type": "step_finish",
    **_OC,
    "part": {"reason": "stop", "cost": 0.0, "tokens": {"input": 3, "output": 2}},
}


def _oc_text(text: str) -> dict[str, Any]:
    return {"type": "text", **_OC, "part": {"type": "text", "text": text}}


def _cx_text(text: str) -> dict[str, Any]:
    return {"type": "item.completed", "item": {"id": "i", "type": "agent_message", "text": text}}


_CX_DONE = {"type": "turn.completed", "usage": {"input_tokens": 3, "output_tokens": 2}}

SCENARIOS: dict[str, dict[str, str]] = {
    "claude-code": {
        "text": _lines(*_CLAUDE_TEXT, _CLAUDE_RESULT),
        "long": _lines(*_CLAUDE_TEXT, *_CLAUDE_TEXT, *_CLAUDE_TEXT) + "#!hang\n",
        "error": _lines(
            _CLAUDE_TEXT[0],
            {**_CLAUDE_RESULT, "is_error": True, "api_error_status": 401, "result": "bad key"},
        )
        + "#!exit 1\n",
    },
    "opencode": {
        "text": _lines(_oc_text("Hello world"), _OC_STEP),
        "long": _lines(_oc_text("a"), _oc_text("b"), _oc_text("c"), _oc_text("d")) + "#!hang\n",
        "error": _lines(
            {
                "type": "error",
                **_OC,
                "error": {"name": "APIError", "data": {"message": "no", "statusCode": 401}},
            }
        )
        + "#!exit 1\n",
    },
    "codex": {
        "text": _lines(
            {"type": "thread.started", "thread_id": "t"}, _cx_text("Hello world"), _CX_DONE
        ),
        "long": _lines(_cx_text("a"), _cx_text("b"), _cx_text("c"), _cx_text("d")) + "#!hang\n",
        "error": _lines(
            {"type": "turn.failed", "error": {"message": "status 401 Unauthorized: no"}}
        )
        + "#!exit 1\n",
    },
}


class _CliConformance(ProviderConformance):
    kind: ClassVar[str] = ""
    provider_cls: ClassVar[type[Any]]
    spec_cls: ClassVar[type[Any]]
    expected_error_kind = "authentication"

    @pytest.fixture
    async def provider(self, tmp_path: Path) -> AsyncIterator[Provider]:
        folder = tmp_path / "scenarios"
        folder.mkdir()
        self.pids = tmp_path / "pids"
        self.pids.mkdir()
        for name, text in SCENARIOS[self.kind].items():
            (folder / f"{name}.txt").write_text(f"#!piddir {self.pids}\n{text}")
        cli = fake_cli(tmp_path)
        spec = self.spec_cls(
            kind=self.kind,
            env={"FAKE_SCENARIO_DIR": str(folder)},
            kill_grace=0.5,
            model="some-model",
        )
        ctx = make_context(spec, name=f"fake-{self.kind}", cli_path=cli, metrics=Metrics())
        self.instance = self.provider_cls(ctx)
        yield self.instance
        await self.instance.aclose()

    def text_request(self) -> Request:
        return Request("text please")

    def long_request(self) -> Request:
        return Request("long please")

    def error_request(self) -> Request:
        return Request("error please")

    async def assert_released(self, provider: Provider) -> None:
        running = [p.name for p in self.pids.iterdir() if not process_gone(int(p.name))]
        assert running == [], f"CLI processes still running: {running}"
        assert self.instance.inflight == 0


class TestClaudeCodeConformance(_CliConformance):
    """claude-code with a fake claude."""

    kind = "claude-code"
    provider_cls = ClaudeCodeProvider
    spec_cls = ClaudeCodeSpec


class TestOpenCodeConformance(_CliConformance):
    """opencode with a fake opencode."""

    kind = "opencode"
    provider_cls = OpenCodeProvider
    spec_cls = OpenCodeSpec


class TestCodexConformance(_CliConformance):
    """codex with a fake codex."""

    kind = "codex"
    provider_cls = CodexProvider
    spec_cls = CodexSpec
