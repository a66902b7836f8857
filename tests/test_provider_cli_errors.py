"""How the CLI kinds read an error's HTTP status and kind out of the text a CLI printed."""

from __future__ import annotations

import pytest

from provcfg.providers._cli import status_in_text


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
