"""Credentials never cross origins: redirects and cookies against real loopback servers.

Each test runs an anthropic-api provider (both transports) on a real provcfg pool
against a hostile server that redirects, and a second listening server (another
loopback port, so another origin) that records every request it receives. A redirect
that leaves the origin must end as a ProviderError naming the masked target and the fix,
with nothing at all sent to the target; one within the origin is followed, as the
anthropic SDK's own default client follows it.
"""

from __future__ import annotations

import asyncio
import base64

import pytest

from provcfg._errors import ProviderError
from tests.support_hostile_servers import (
    KEY,
    TRANSPORTS,
    HostileServer,
    Seen,
    failure,
    outcome,
    pool_of,
    pooled,
    sse_events,
    whole,
)

STATUSES = (301, 302, 303, 307, 308)
USER, PASSWORD = "gateway-user", "gw-Pa55word-9f8e7d"
# Every spelling of a credential that must never reach another origin.
CREDENTIALS = (
    KEY,
    PASSWORD,
    base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
)


async def _answer_text(seen: Seen, writer: asyncio.StreamWriter) -> None:
    writer.write(whole(200, sse_events("from the target")))


def _redirecting(status: int, location: str) -> HostileServer:
    """A server that redirects /v1/messages to ``location`` and answers anything else."""

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if seen.path.startswith("/v1/messages"):
            writer.write(whole(status, b"", {"location": location}))
        else:
            writer.write(whole(200, sse_events("moved")))

    return HostileServer(answer)


def _leaked(seen: list[Seen]) -> list[str]:
    """Credentials found in what a server received (any header, any spelling)."""
    text = repr([(s.headers, s.body) for s in seen])
    return [c for c in CREDENTIALS if c in text]


def _credentialed(server: HostileServer) -> str:
    return f"http://{USER}:{PASSWORD}@127.0.0.1:{server.port}"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", STATUSES)
async def test_a_redirect_to_another_port_is_refused_before_anything_is_sent(
    transport: str, status: int
) -> None:
    """A 3xx to another loopback port is a ProviderError naming target and fix; the target
    (listening, recording) receives no request at all, so no key, password or cookie."""
    async with HostileServer(_answer_text) as target:
        location = f"{target.base_url}/v1/messages?beta=true"
        async with (
            _redirecting(status, location) as origin,
            pooled(_credentialed(origin), transport) as provider,
        ):
            error = await failure(provider.stream("hi"))
    assert target.requests == []
    assert error.kind == "invalid_request"
    assert error.status == status
    assert f"127.0.0.1:{target.port}" in error.message
    assert f"providers.api.base_url to the final URL ({target.base_url})" in error.message
    assert not [c for c in CREDENTIALS if c in str(error)]
    assert len(origin.requests) == 1  # tried once: the refusal is not retried


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "form", ["scheme-relative", "other-host-name", "https-upgrade", "userinfo-in-target"]
)
async def test_every_spelling_of_another_origin_is_refused(transport: str, form: str) -> None:
    """Scheme-relative, another host name for the same address, an http->https upgrade
    (which httpx2 itself would send Authorization to) and a target with its own userinfo
    all count as another origin; a target's own password is masked in the message."""
    async with HostileServer(_answer_text) as target:
        locations = {
            "scheme-relative": f"//127.0.0.1:{target.port}/v1/messages",
            "other-host-name": f"http://localhost:{target.port}/v1/messages",
            "https-upgrade": "https://127.0.0.1:{origin}/v1/messages",
            "userinfo-in-target": f"http://evil:hunter2-target-pw@127.0.0.1:{target.port}/x",
        }

        async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
            location = locations[form].replace("{origin}", str(origin.port))
            writer.write(whole(307, b"", {"location": location}))

        async with (
            HostileServer(answer) as origin,
            pooled(_credentialed(origin), transport) as provider,
        ):
            error = await failure(provider.stream("hi"))
    assert target.requests == []
    assert error.kind == "invalid_request"
    assert "another origin" in error.message
    assert "hunter2-target-pw" not in str(error)
    assert not [c for c in CREDENTIALS if c in str(error)]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", STATUSES)
async def test_a_redirect_within_the_origin_is_followed(transport: str, status: int) -> None:
    """A 3xx to a path of the same origin is followed (as the SDK's default client does)
    and the answer there streams as usual."""
    async with (
        _redirecting(status, "/moved/v1/messages") as origin,
        pooled(origin.base_url, transport) as provider,
    ):
        result = await outcome(provider.stream("hi"))
    assert not isinstance(result, ProviderError), result
    assert "".join(c.text for c in result if c.type == "text") == "moved"
    assert [s.path for s in origin.requests] == ["/v1/messages", "/moved/v1/messages"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_chain_that_leaves_the_origin_later_is_refused_at_that_hop(
    transport: str,
) -> None:
    """Same-origin hops are followed until one leaves the origin: that one is refused and
    the target still receives nothing."""
    async with HostileServer(_answer_text) as target:

        async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
            if seen.path == "/v1/messages":
                writer.write(whole(308, b"", {"location": "/hop/v1/messages"}))
            else:
                writer.write(whole(302, b"", {"location": f"{target.base_url}/v1/messages"}))

        async with (
            HostileServer(answer) as origin,
            pooled(_credentialed(origin), transport) as provider,
        ):
            error = await failure(provider.stream("hi"))
    assert [s.path for s in origin.requests] == ["/v1/messages", "/hop/v1/messages"]
    assert target.requests == []
    assert error.kind == "invalid_request"
    assert error.status == 302


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_cookie_set_by_one_server_never_reaches_another(transport: str) -> None:
    """Two providers on one pool, two servers on two ports of one host: a cookie the
    first server sets is sent to neither (the pooled clients keep no cookies)."""
    cookie = "session=cookie-SECRET-4711; Path=/"

    async def setter(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(whole(200, sse_events("a"), {"set-cookie": cookie}))

    pool = pool_of()
    try:
        async with (
            HostileServer(setter) as first,
            HostileServer(_answer_text) as second,
            pooled(first.base_url, transport, pool=pool, name="a") as a,
            pooled(second.base_url, transport, pool=pool, name="b") as b,
        ):
            for provider in (a, b, a):
                result = await outcome(provider.stream("hi"))
                assert not isinstance(result, ProviderError), result
    finally:
        await pool.aclose()
    received = first.requests + second.requests
    assert len(received) == 3
    assert [s.headers.get("cookie") for s in received] == [None, None, None]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_credentials_go_only_to_the_configured_origin(transport: str) -> None:
    """Against a well-behaved server the key and the base_url's user:password arrive (as
    x-api-key or Authorization, and HTTP Basic), so the tests above prove a refusal."""
    async with (
        HostileServer(_answer_text) as server,
        pooled(_credentialed(server), transport) as provider,
    ):
        result = await outcome(provider.stream("hi"))
    assert not isinstance(result, ProviderError), result
    assert set(_leaked(server.requests)) >= {KEY, CREDENTIALS[2]}
    assert all("@" not in s.headers.get("host", "") for s in server.requests)
