"""Error mapping and the retry policy of the anthropic-api kind, on plain values."""

from __future__ import annotations

import email.utils
import time

import httpx2
import pytest

from provcfg._errors import ProviderError
from provcfg._providers._api_errors import ErrorMapper, parse_retry_after
from provcfg._providers._retry import RetryPolicy

SECRET = "sk-test-SECRET123"
MAPPER = ErrorMapper("api", "http://127.0.0.1:9/v1/messages", (SECRET,))


def _body(kind: str, message: str) -> dict[str, object]:
    return {"type": "error", "error": {"type": kind, "message": message}}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, _body("authentication_error", "bad key"), "authentication"),
        (403, _body("permission_error", "no"), "permission"),
        (404, _body("not_found_error", "model: claude-x"), "model_not_found"),
        (404, _body("not_found_error", "no such route"), "invalid_request"),
        (400, _body("invalid_request_error", "max_tokens"), "invalid_request"),
        (413, _body("request_too_large", "big"), "invalid_request"),
        (422, "unprocessable", "invalid_request"),
        (429, _body("rate_limit_error", "slow"), "rate_limit"),
        (529, _body("overloaded_error", "busy"), "overloaded"),
        (500, _body("api_error", "oops"), "server_error"),
        (502, "<html>bad gateway</html>", "server_error"),
        (504, "", "server_error"),
        (200, _body("overloaded_error", "busy"), "overloaded"),
        (200, _body("api_error", "oops"), "server_error"),
    ],
)
def test_status_and_body_map_to_kinds(status: int, body: object, kind: str) -> None:
    """HTTP statuses and error types map to the documented kinds, with a place and a fix."""
    error = MAPPER.from_body(status, body)
    assert error.kind == kind
    assert "POST http://127.0.0.1:9/v1/messages" in str(error)
    assert error.status == (status if status >= 400 else None)


def test_retry_after_only_for_rate_limit_and_overloaded() -> None:
    """retry_after is kept for 429/529 and dropped for other kinds."""
    headers = {"retry-after": "3"}
    assert MAPPER.from_body(429, _body("rate_limit_error", "x"), headers).retry_after == 3.0
    assert MAPPER.from_body(529, _body("overloaded_error", "x"), headers).retry_after == 3.0
    assert MAPPER.from_body(500, _body("api_error", "x"), headers).retry_after is None


def test_secret_is_scrubbed_everywhere() -> None:
    """A key echoed by a server or a library never reaches str, repr or details."""
    error = MAPPER.from_body(401, _body("authentication_error", f"key {SECRET} invalid"))
    net = MAPPER.from_transport(httpx2.ConnectError(f"failed {SECRET}"), streaming=False)
    for e in (error, net):
        assert SECRET not in str(e)
        assert SECRET not in repr(e)
        assert "**********" in str(e)


def test_transport_errors() -> None:
    """Pool timeouts, timeouts, refused connections and mid-stream breaks get distinct kinds."""
    assert MAPPER.from_transport(httpx2.PoolTimeout("p"), streaming=False).kind == "pool_exhausted"
    assert MAPPER.from_transport(httpx2.ReadTimeout("r"), streaming=True).kind == "timeout"
    assert MAPPER.from_transport(httpx2.ConnectTimeout("c"), streaming=False).kind == "timeout"
    assert MAPPER.from_transport(httpx2.ConnectError("c"), streaming=False).kind == "network"
    broken = MAPPER.from_transport(httpx2.RemoteProtocolError("peer closed"), streaming=True)
    assert broken.kind == "stream_incomplete"


def test_parse_retry_after_forms() -> None:
    """retry-after-ms wins; retry-after takes seconds or an HTTP date; junk gives None."""
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "-4"}) == 0.0
    date = email.utils.formatdate(time.time() + 60, usegmt=True)
    value = parse_retry_after({"retry-after": date})
    assert value is not None
    assert 50 < value <= 60
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def _err(kind: str, retry_after: float | None = None) -> ProviderError:
    return ProviderError("x", kind, retry_after=retry_after)  # type: ignore[arg-type]


def test_policy_retries_only_retryable_kinds_up_to_max() -> None:
    """rate_limit, overloaded, server_error and network retry; others and exhausted ones don't."""
    policy = RetryPolicy(max_retries=2, max_wait=30.0)
    for kind in ("rate_limit", "overloaded", "server_error", "network"):
        assert policy.delay(_err(kind), 0) is not None
        assert policy.delay(_err(kind), 2) is None
    for kind in ("timeout", "pool_exhausted", "stream_incomplete", "authentication"):
        assert policy.delay(_err(kind), 0) is None


def test_policy_honours_and_caps_retry_after() -> None:
    """A server's retry-after is used as is, but never beyond max_wait."""
    policy = RetryPolicy(max_retries=3, max_wait=5.0)
    assert policy.delay(_err("rate_limit", 2.0), 0) == 2.0
    assert policy.delay(_err("rate_limit", 120.0), 0) == 5.0


def test_policy_backoff_grows_with_jitter_and_cap() -> None:
    """Without retry-after the wait doubles per attempt, jittered in [half, full], capped."""
    policy = RetryPolicy(max_retries=10, max_wait=3.0, base_wait=0.5)
    for attempt, full in [(0, 0.5), (1, 1.0), (2, 2.0), (5, 3.0)]:
        waits = [policy.delay(_err("overloaded"), attempt) for _ in range(50)]
        assert all(w is not None and full / 2 <= w <= full for w in waits)
        assert len(set(waits)) > 1
