"""Each real CLI transcript in tests/transcripts/ parses through its provider, replayed by a fake.

Transcripts are captured from the real claude, opencode and codex against the stub;
the file name's prefix says which CLI wrote it (claude*, opencode*, codex*). A
transcript with ``error`` in its name must raise the ProviderError kind listed in
:data:`ERROR_KINDS`; any other must give text and end with one result chunk, with no
unknown event types.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provcfg._errors import ProviderError
from provcfg._manifest import ClaudeCodeSpec, CodexSpec, OpenCodeSpec
from provcfg._providers.claude_code import ClaudeCodeProvider
from provcfg._providers.codex import CodexProvider
from provcfg._providers.opencode import OpenCodeProvider
from tests.support_fake_cli import make_provider

TRANSCRIPTS = sorted((Path(__file__).parent / "transcripts").glob("*.ndjson"))
KINDS: dict[str, tuple[type[Any], type[Any], str]] = {
    "claude": (ClaudeCodeProvider, ClaudeCodeSpec, "claude-code"),
    "opencode": (OpenCodeProvider, OpenCodeSpec, "opencode"),
    "codex": (CodexProvider, CodexSpec, "codex"),
}

# What each captured failure must become (see tests/transcripts/README.md).
ERROR_KINDS: dict[str, str] = {
    "claude-error-401": "authentication",
    "claude-error-429": "rate_limit",
    "claude-error-529": "overloaded",
    "claude-error-dropped": "network",  # api_error_status null, "... lost (ECONNRESET)"
    "claude-error-no-key": "authentication",  # api_error_status null, "Not logged in"
    "codex-error-401": "authentication",
    "codex-error-429": "rate_limit",
    "codex-error-500": "overloaded",  # "We're currently experiencing high demand"
    "codex-error-dropped": "stream_incomplete",  # "stream disconnected before completion"
    "codex-error-no-key": "authentication",  # "Missing environment variable"
    "opencode-error-401": "authentication",
}
# Transcripts whose tool really ran: every tool_result must be a success.
REAL_TOOLS = {"claude-tool-read", "codex-tool-use"}


def _kind(path: Path) -> tuple[type[Any], type[Any], str]:
    for prefix, kind in KINDS.items():
        if path.name.startswith(prefix):
            return kind
    raise AssertionError(f"transcript {path.name} does not start with claude, opencode or codex")


def _replayable(path: Path) -> str:
    lines = path.read_text().splitlines()
    return "".join(ln + "\n" for ln in lines if not ln.startswith("#!"))


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.name for p in TRANSCRIPTS])
async def test_transcript_parses(tmp_path: Path, path: Path) -> None:
    """The transcript's events become text and one final result (or the mapped error)."""
    cls, spec_cls, kind = _kind(path)
    script = _replayable(path)
    if "error" in path.name:
        script += "#!exit 1\n"
    partial = {"partial_messages": True} if "partial" in path.name and kind == "claude-code" else {}
    provider, _ = make_provider(cls, spec_cls, kind, tmp_path, script, **partial)
    if "error" in path.name:
        with pytest.raises(ProviderError) as caught:
            await provider.complete("hi")
        assert caught.value.kind == ERROR_KINDS[path.stem], str(caught.value)
        assert caught.value.exit_code == 1
        return
    chunks = [c async for c in provider.stream("hi")]
    assert [c.type for c in chunks].count("result") == 1 and chunks[-1].type == "result"
    assert "".join(c.text for c in chunks if c.type == "text")
    if path.stem in REAL_TOOLS:
        results = [c.data for c in chunks if c.type == "tool_result" and c.data is not None]
        assert results and not any(r["is_error"] for r in results), results
        assert "provcfg notes" in str(results[0]["content"])
    counters = provider.ctx.metrics.snapshot()["counters"]
    assert "cli_unknown_event" not in counters, counters
