"""How the CLI kinds read an error's HTTP status and kind out of the text a CLI printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provcfg._errors import ProviderError
from provcfg._manifest import ClaudeCodeSpec, CodexSpec, OpenCodeSpec
from provcfg._providers._cli import error_kind, kind_for_text, status_in_text
from provcfg._providers.claude_code import ClaudeCodeProvider
from provcfg._providers.codex import CodexProvider
from provcfg._providers.opencode import OpenCodeProvider
from tests.support_fake_cli import make_provider


@pytest.mark.parametrize(
    ("text", "status"),
    [
        # codex 0.171.0 (captured in tests/transcripts/codex-error-*.ndjson)
        ("unexpected status 401 Unauthorized: stub fault: HTTP 401, url: http://h/v1", 401),
        ("exceeded retry limit, last status: 429 Too Many Requests", 429),
        ("unexpected status 500 Internal Server Error: x", 500),
        # Claude Code 2.1.197 result texts
        ("Failed to authenticate. API Error: 401 stub fault: HTTP 401", 401),
        ("API Error: Request rejected (429) · stub fault: HTTP 429", 429),
        ("API Error: 529 stub fault: HTTP 529. This is a server-side issue", 529),
        # a reason phrase with nothing after it, or only a word boundary: the old bug
        ("429 Too Many Requests", 429),
        ("got 503 Service Unavailable", 503),
        ("upstream said 502 Bad Gateway.", 502),
        ("504 Gateway Time-out", 504),
        ("413 Request Entity Too Large; shorten the prompt", 413),
        # what HTTP libraries and SDKs inside the CLIs write
        ("Error code: 429 - {'type': 'error'}", 429),
        ("HTTP 503", 503),
        ("received HTTP/1.1 502 from the proxy", 502),
        ("statusCode: 404", 404),
        ("status code 400", 400),
        ("Request failed with status code 403", 403),
    ],
)
def test_status_in_text_finds_the_status(text: str, status: int) -> None:
    """Each realistic CLI error text yields the HTTP status it names."""
    assert status_in_text(text) == status


@pytest.mark.parametrize(
    "text",
    [
        "stream disconnected before completion: connection closed",
        "We\u2019re currently experiencing high demand, which may cause temporary errors.",
        "API Error: Connection to the API was lost (ECONNRESET)",
        "processed 200 Files in 3 Seconds",
        "read 1024 bytes (300)",
        "Not logged in · Please run /login",
        "",
    ],
)
def test_status_in_text_finds_none_where_there_is_none(text: str) -> None:
    """Texts without a status (or with numbers that are not one) yield None."""
    assert status_in_text(text) is None


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # Claude Code 2.1.197 (api_error_status null); strings from its bundle
        ("API Error: Connection to the API was lost (ECONNRESET). Try again.", "network"),
        ("API Error: Connection to the API was lost (ETIMEDOUT).", "timeout"),
        ("API Error: socket hang up", "network"),
        ("API Error: Unable to connect to API (ECONNREFUSED)", "network"),
        ("Request timed out", "timeout"),
        ("Not logged in · Please run /login", "authentication"),
        ("Invalid API key · Fix external API key", "authentication"),
        ("OAuth token revoked · Please run /login", "authentication"),
        ("Credit balance is too low", "permission"),
        ("API Error: Repeated 529 Overloaded errors. The API is at capacity", "overloaded"),
        ("Prompt is too long", "invalid_request"),
        # codex 0.171.0; strings from its binary
        (
            "We\u2019re currently experiencing high demand, which may cause temporary errors.",
            "overloaded",
        ),
        ("Selected model is at capacity. Please try a different model.", "overloaded"),
        ("Quota exceeded. Check your plan and billing details.", "permission"),
        ("You\u2019ve hit your usage limit. Try again at 3:00 PM.", "rate_limit"),
        ("Missing environment variable: `OPENAI_API_KEY`.", "authentication"),
        ("Connection failed: error sending request for url (http://127.0.0.1:9/v1)", "network"),
        (
            "stream disconnected before completion: Transport error: network error: "
            "error decoding response body",
            "stream_incomplete",
        ),
        ("Codex ran out of room in the model's context window.", "invalid_request"),
        # nothing known
        ("Reached maximum number of turns (1)", None),
        ("tool failed: exit status 2", None),
    ],
)
def test_kind_for_text(text: str, kind: str | None) -> None:
    """Well-known status-less failure texts of the pinned CLIs map to their kind; others to None."""
    assert kind_for_text(text) == kind


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (None, "exceeded retry limit, last status: 429 Too Many Requests", "rate_limit"),
        (429, "Request timed out", "rate_limit"),  # a reported status wins over words
        (None, "429 Too Many Requests; socket hang up", "rate_limit"),  # a named status too
        (418, "Not logged in", "authentication"),  # an unmapped status: the words decide
        (None, "something odd", "cli_failed"),
    ],
)
def test_error_kind_prefers_the_status(status: int | None, text: str, kind: str) -> None:
    """error_kind: the reported status, then a status named in the text, then the words."""
    assert error_kind(status, text) == kind


# ------------------------------------------------------- through each provider (fake CLIs)

SECRET = "sk-provcfg-leaky-0123456789"


def _line(event: dict[str, Any]) -> str:
    return json.dumps(event) + "\n"


async def _failure(
    cls: type[Any], spec_cls: type[Any], kind: str, tmp_path: Path, script: str
) -> ProviderError:
    # The CLI also writes the secret to stderr: the error keeps a tail, masked.
    script += f"#!stderr_text connect failed; key was {SECRET}\n#!exit 1\n"
    provider, _ = make_provider(cls, spec_cls, kind, tmp_path, script, env={"KEY": SECRET})
    with pytest.raises(ProviderError) as caught:
        await provider.complete("hi")
    error = caught.value
    assert error.exit_code == 1
    assert "connect failed; key was **********" in error.stderr_tail
    for text in (str(error), repr(error), error.message, error.stderr_tail):
        assert SECRET not in text
    return error


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("API Error: socket hang up", "network"),
        ("API Error: Connection to the API was lost (ETIMEDOUT).", "timeout"),
        ("Invalid API key · Fix external API key", "authentication"),
    ],
)
async def test_claude_status_less_result_is_mapped(tmp_path: Path, text: str, kind: str) -> None:
    """A Claude Code is_error result with api_error_status null gets its kind from its text."""
    script = _line({"type": "system", "subtype": "init", "session_id": "s", "model": "m"}) + _line(
        {
            "type": "result",
            "subtype": "success",
            "is_error": True,
            "api_error_status": None,
            "result": text,
            "session_id": "s",
        }
    )
    error = await _failure(ClaudeCodeProvider, ClaudeCodeSpec, "claude-code", tmp_path, script)
    assert error.kind == kind and text in error.message


async def test_codex_status_less_turn_failure_is_mapped(tmp_path: Path) -> None:
    """A codex turn.failed without a status ("at capacity") is overloaded, not cli_failed."""
    message = "Selected model is at capacity. Please try a different model."
    script = _line({"type": "thread.started", "thread_id": "t"}) + _line(
        {"type": "turn.failed", "error": {"message": message}}
    )
    error = await _failure(CodexProvider, CodexSpec, "codex", tmp_path, script)
    assert error.kind == "overloaded"


async def test_opencode_status_less_error_is_mapped(tmp_path: Path) -> None:
    """An opencode error line without statusCode gets its kind from its message."""
    script = _line(
        {
            "type": "error",
            "error": {"name": "UnknownError", "data": {"message": "socket hang up"}},
        }
    )
    error = await _failure(OpenCodeProvider, OpenCodeSpec, "opencode", tmp_path, script)
    assert error.kind == "network"
