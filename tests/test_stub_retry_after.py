"""Retry-after faults: seconds alone, an HTTP date, milliseconds alone, or both, on 429/529/503."""

from __future__ import annotations

import email.utils
import math
import time

import anthropic
import httpx2
import pytest

from provcfg._providers._api_errors import parse_retry_after
from provcfg.stub import StubServer
from tests.support_stub import stub  # noqa: F401

BODY = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
PATHS = ["/v1/messages", "/v1/responses", "/v1/chat/completions"]


async def _fault(stub: StubServer, path: str, spec: str) -> httpx2.Response:  # noqa: F811
    async with httpx2.AsyncClient(timeout=20) as http:
        return await http.post(stub.base_url + path, json={**BODY, "model": f"stub-{spec}"})


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("status", [429, 529, 503])
@pytest.mark.parametrize(
    ("words", "after", "after_ms"),
    [
        ("retry-after-2.5", "2.5", "2500"),
        ("retry-after-seconds-3", "3", None),
        ("retry-after-seconds-0.25", "0.25", None),
        ("retry-after-ms-1500", None, "1500"),
        ("retry-after-seconds-4-retry-after-ms-900", "4", "900"),
    ],
)
async def test_retry_after_forms(
    stub: StubServer,  # noqa: F811
    path: str,
    status: int,
    words: str,
    after: str | None,
    after_ms: str | None,
) -> None:
    """Each form sends exactly its headers, on every route and retryable status."""
    response = await _fault(stub, path, f"{status}-{words}")
    assert response.status_code == status
    assert response.headers.get("retry-after") == after
    assert response.headers.get("retry-after-ms") == after_ms
    expected = int(after_ms) / 1000 if after_ms else float(after or "nan")
    assert parse_retry_after(response.headers) == pytest.approx(expected)


@pytest.mark.parametrize("status", [429, 529, 503])
async def test_retry_after_date(stub: StubServer, status: int) -> None:  # noqa: F811
    """retry-after-date-S sends only an HTTP date S seconds from now, rounded up to a second."""
    before = time.time()
    response = await _fault(stub, "/v1/messages", f"{status}-retry-after-date-30")
    after = time.time()
    assert response.status_code == status
    assert "retry-after-ms" not in response.headers
    value = response.headers["retry-after"]
    assert value.endswith(" GMT")
    moment = email.utils.parsedate_to_datetime(value).timestamp()
    assert math.floor(before + 30) <= moment <= math.ceil(after + 30)
    assert moment == int(moment)
    assert parse_retry_after(response.headers) is not None


async def test_retry_after_in_the_queue_and_default(stub: StubServer) -> None:  # noqa: F811
    """The queue and the default fault carry retry-after words; later sources win per header."""
    stub.set_default_fault("529-retry-after-ms-700")
    stub.enqueue_fault("retry-after-seconds-9")
    first = await _fault(stub, "/v1/messages", "fault")
    second = await _fault(stub, "/v1/messages", "fault")
    stub.set_default_fault(None)
    assert (first.status_code, first.headers["retry-after"], first.headers["retry-after-ms"]) == (
        529,
        "9",
        "700",
    )
    assert "retry-after" not in second.headers
    assert second.headers["retry-after-ms"] == "700"


async def test_retry_after_without_a_status_is_a_400(stub: StubServer) -> None:  # noqa: F811
    """A retry-after word with no status to go with is refused rather than silently ignored."""
    response = await _fault(stub, "/v1/messages", "retry-after-date-5")
    assert response.status_code == 400
    assert "needs an HTTP status word" in response.json()["error"]["message"]


async def test_the_sdk_waits_as_the_stub_says(stub: StubServer) -> None:  # noqa: F811
    """The anthropic SDK retries a 429 carrying retry-after-ms and then gets the answer."""
    stub.enqueue_fault("429-retry-after-ms-10")
    async with httpx2.AsyncClient() as http:
        client = anthropic.AsyncAnthropic(
            base_url=stub.base_url, api_key="k", http_client=http, max_retries=1
        )
        message = await client.messages.create(**BODY)  # type: ignore[call-overload]
    assert message.content[0].text
    assert [r.status for r in stub.requests] == [429, 200]
