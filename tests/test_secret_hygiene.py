"""No secret escapes: dumps, exception chains, echoed headers, third-party loggers.

Planted sentinel credentials (an API key, a base_url ``user:password``, a CLI's env
value) must appear in none of: the repr/str/dumps of the Manifest and of a spec; any
ProviderError's text, details or exception chain (``__cause__``/``__context__`` are
None on every path that raises one); an error built from a server that echoes the
request's headers back, in any spelling (plain, base64 of ``user:password``,
URL-encoded); the records of httpx2's, httpcore2's and the anthropic SDK's loggers at
DEBUG. Servers are real loopback sockets; CLIs are real processes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

import provcfg
from provcfg._errors import ProviderError
from provcfg._manifest import AnthropicApiSpec, ClaudeCodeSpec
from provcfg._providers.claude_code import ClaudeCodeProvider
from provcfg._render import render_manifest
from provcfg.testing import make_context
from tests.support_fake_cli import make_provider
from tests.support_hostile_servers import (
    KEY,
    TRANSPORTS,
    Answer,
    HostileServer,
    Seen,
    failure,
    head,
    outcome,
    pool_of,
    pooled,
    sse_events,
    whole,
)
from tests.support_manifest import load_text
from tests.support_services import held_port

USER = "svc-user"
PASSWORD = "pw-Sentinel/4711+x"  # URL-encodes to something else: every spelling is tested
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SPELLINGS = (
    KEY,
    PASSWORD,
    BASIC,
    base64.urlsafe_b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    quote(PASSWORD, safe=""),
    quote_plus(PASSWORD),
    quote(KEY, safe=""),
    KEY[:14],  # a secret cut by a length limit must not leave its prefix behind
    PASSWORD[:10],
)
THIRD_PARTY = ("httpx2", "httpcore2", "anthropic")
CREDENTIAL_HEADERS = ("authorization", "x-api-key")


def _url(port: int) -> str:
    return f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"


def _leaks(*texts: str) -> list[str]:
    return [s for s in SPELLINGS for text in texts if s in text]


def _chain(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(found) < 20:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def assert_clean(error: ProviderError) -> None:
    """Nothing chained, and no spelling of a sentinel in any text the error carries."""
    assert error.__cause__ is None, error.__cause__
    assert error.__context__ is None, error.__context__
    assert _chain(error) == [error]
    texts = (str(error), repr(error), error.message, repr(error.details), error.stderr_tail)
    assert _leaks(*texts) == [], texts


# ----------------------------------------------------------------------------- dumps


MANIFEST = f"""
version: 1
providers:
  api:
    kind: anthropic-api
    base_url: "http://{USER}:{quote(PASSWORD, safe="")}@127.0.0.1:9/gateway"
    api_key: "{KEY}"
    model: claude-haiku-4-5
"""


def test_dumps_of_the_manifest_and_the_spec_mask_the_base_url_password() -> None:
    """repr, str, model_dump and model_dump_json (of the Manifest and of the spec) and
    provcfg show hide the password; get_secret_value() is the one explicit way to it."""
    manifest = load_text(MANIFEST)
    spec = manifest.providers["api"]
    assert isinstance(spec, AnthropicApiSpec)
    texts = [
        repr(manifest),
        str(manifest),
        repr(manifest.model_dump()),
        manifest.model_dump_json(),
        repr(spec),
        str(spec),
        repr(spec.model_dump()),
        spec.model_dump_json(),
        str(spec.base_url),
        repr(spec.base_url),
        render_manifest(manifest),
        render_manifest(manifest, "json"),
    ]
    assert _leaks(*texts) == []
    assert json.loads(spec.model_dump_json())["base_url"] == (
        f"http://{USER}:**********@127.0.0.1:9/gateway"
    )
    assert quote(PASSWORD, safe="") in spec.base_url.get_secret_value()
    # A python-mode dump keeps the value (masked in its repr) and validates back whole.
    again = AnthropicApiSpec.model_validate(spec.model_dump())
    assert again.base_url.get_secret_value() == spec.base_url.get_secret_value()


# ----------------------------------------------------------------------------- echoes


def _echo(status: int, padding: int = 0) -> Answer:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        # The credential headers first, then all the others and the body; with padding,
        # where the message is cut to length (300 characters) falls inside a secret.
        first = [f"{k}={v}" for k, v in seen.headers.items() if k in ("authorization", "x-api-key")]
        rest = [
            f"{k}={v}" for k, v in seen.headers.items() if k not in ("authorization", "x-api-key")
        ]
        echoed = "x" * padding + " ".join(first + rest) + " " + seen.body.decode()
        if status == 200:  # an error event inside a stream
            data = json.dumps({"type": "error", "error": {"type": "api_error", "message": echoed}})
            writer.write(head(200, {"content-type": "text/event-stream", "connection": "close"}))
            writer.write(f"event: error\ndata: {data}\n\n".encode())
        else:
            body = {"type": "error", "error": {"type": "invalid_request_error", "message": echoed}}
            writer.write(whole(status, json.dumps(body).encode(), {"x-echo": echoed}))

    return answer


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [400, 401, 200])
@pytest.mark.parametrize("padding", [0, 280, 290])
async def test_a_server_echoing_the_request_headers_gets_no_secret_into_the_error(
    transport: str, status: int, padding: int
) -> None:
    """An error body (or error event) that quotes every request header back, whole, or
    with the secrets placed where the message is cut to length: no spelling of the key
    or the password (plain, base64 of user:password, URL-encoded), nor a prefix of one,
    reaches the error."""
    async with (
        HostileServer(_echo(status, padding)) as server,
        pooled(_url(server.port), transport) as provider,
    ):
        error = await failure(provider.stream("hi"))
    sent = repr(server.requests[0].headers)
    assert KEY in sent and BASIC in sent  # the echo did carry them
    if padding == 0:  # the whole echo fits the message: it was there, masked
        assert error.message.count("**********") >= 2, error.message
    assert_clean(error)


# ----------------------------------------------------------------------------- chains


async def _never(seen: Seen, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def _malformed(seen: Seen, writer: asyncio.StreamWriter) -> None:
    event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 7}}
    body = sse_events().split(b"event: content_block_delta")[0]
    body += f"event: content_block_delta\ndata: {json.dumps(event)}\n\n".encode()
    writer.write(head(200, {"content-type": "text/event-stream", "connection": "close"}) + body)


async def _cut(seen: Seen, writer: asyncio.StreamWriter) -> None:
    writer.write(head(200, {"content-type": "text/event-stream"}) + sse_events()[:200])


async def _redirect(seen: Seen, writer: asyncio.StreamWriter) -> None:
    writer.write(whole(307, b"", {"location": "http://127.0.0.1:9/v1/messages"}))


SERVER_FAULTS = {
    "first-byte-timeout": (_never, {"first_byte_timeout": 0.3}),
    "deadline": (_never, {"timeout": 0.3}),
    "malformed-event": (_malformed, {}),
    "stream-incomplete": (_cut, {}),
    "redirect-refused": (_redirect, {}),
    "echoing-401": (_echo(401), {}),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", sorted(SERVER_FAULTS))
async def test_no_provider_error_is_chained_whatever_failed(transport: str, fault: str) -> None:
    """Timeouts, a malformed event, a cut stream, a refused redirect, an error status:
    the ProviderError has no __cause__ or __context__ (no httpx2/SDK exception, whose
    request would carry the headers) and no secret in its text."""
    answer, spec = SERVER_FAULTS[fault]
    async with (
        HostileServer(answer) as server,
        pooled(_url(server.port), transport, **spec) as provider,
    ):
        error = await failure(provider.stream("hi"))
    assert_clean(error)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refused_connections_and_an_exhausted_pool_are_not_chained(transport: str) -> None:
    """A refused connection (network) and a pool with no free connection (pool_exhausted)."""
    with held_port() as port:
        async with pooled(_url(port), transport) as provider:
            error = await failure(provider.stream("hi"))
    assert error.kind == "network"
    assert_clean(error)

    async def slow(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, {"content-type": "text/event-stream", "connection": "close"}))
        await writer.drain()
        await asyncio.sleep(3600)

    pool = pool_of(max_connections=1)
    try:
        async with (
            HostileServer(slow) as server,
            pooled(_url(server.port), transport, pool=pool, timeout=0.5) as provider,
        ):
            holder = asyncio.create_task(outcome(provider.stream("first", timeout=30)))
            while not server.requests:
                await asyncio.sleep(0.01)
            error = await failure(provider.stream("second"))
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
    finally:
        await pool.aclose()
    assert error.kind == "pool_exhausted"
    assert_clean(error)


async def test_cli_errors_on_every_path_are_not_chained(tmp_path: Path) -> None:
    """A CLI that cannot be spawned, one whose lazy lookup fails, a timeout, a failure
    exit and a malformed event: every ProviderError arrives without a chain."""
    errors: list[ProviderError] = []
    missing = tmp_path / "missing-cli"
    spec = ClaudeCodeSpec(kind="claude-code", model="claude-x-1", kill_grace=0.5)
    spawn = ClaudeCodeProvider(make_context(spec, name="agent", cli_path=missing))
    errors.append(await failure(spawn.stream("hi")))
    await spawn.aclose()
    scripts = {
        "timeout": ("#!hang\n", {"timeout": 0.3}),
        "exit": ("#!stderr_text boom\n#!exit 3\n", {}),
        "malformed": ('{"type": "assistant", "message": {"content": 5}}\n', {}),
    }
    for name, (script, fields) in scripts.items():
        folder = tmp_path / name
        folder.mkdir()
        provider, _ = make_provider(
            ClaudeCodeProvider, ClaudeCodeSpec, "claude-code", folder, script, **fields
        )
        errors.append(await failure(provider.stream("hi")))
        await provider.aclose()
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        "version: 1\nproviders:\n  c: {kind: claude-code, command: no-such-agent-cli-x,"
        " model: claude-x-1}\n"
    )
    async with provcfg.load(manifest) as rt:  # lazy: the lookup fails on first use
        errors.append(await failure(rt.provider("c").stream("hi")))
    assert [e.kind for e in errors] == [
        "cli_not_found",
        "timeout",
        "cli_failed",
        "server_error",
        "cli_not_found",
    ]
    for error in errors:
        assert_clean(error)


async def test_a_cli_s_secret_is_scrubbed_in_every_spelling(tmp_path: Path) -> None:
    """A CLI that writes its env secret URL-encoded and as base64 to stderr and into an
    error line: the stderr tail and the error carry none of its spellings."""
    token = "tok/Sentinel+42 x"
    script = (
        f"#!stderr_text leaked {quote(token, safe='')} and {quote_plus(token)}\n"
        '{"type": "result", "subtype": "error", "is_error": true, '
        f'"result": "bad token {quote(token, safe="")}"}}\n'
        "#!exit 1\n"
    )
    provider, _ = make_provider(
        ClaudeCodeProvider, ClaudeCodeSpec, "claude-code", tmp_path, script, env={"TOKEN": token}
    )
    error = await failure(provider.stream("hi"))
    await provider.aclose()
    for spelling in (token, quote(token, safe=""), quote_plus(token)):
        assert spelling not in str(error) + error.stderr_tail + repr(error.details)


# ----------------------------------------------------------------------------- loggers


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_third_party_loggers_never_see_a_credential(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx2, httpcore2 and the anthropic SDK, logging at DEBUG through a successful and a
    failed request: no record holds the key, the password or the Basic credentials (the
    URL they are handed carries no userinfo; credentials go as auth)."""

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if seen.body and b"fail" in seen.body:
            body = b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}'
            writer.write(whole(529, body))
        else:
            writer.write(whole(200, sse_events("ok")))

    for name in THIRD_PARTY:
        caplog.set_level(logging.DEBUG, logger=name)
    async with HostileServer(answer) as server, pooled(_url(server.port), transport) as provider:
        ok = await outcome(provider.stream("hi"))
        error = await failure(provider.stream("fail"))
    assert not isinstance(ok, ProviderError), ok
    assert error.kind == "overloaded"
    records = [r for r in caplog.records if r.name.split(".")[0] in THIRD_PARTY]
    assert any(r.name.startswith("httpx2") for r in records)  # they did log the requests
    if transport == "sdk":
        assert any(r.name.startswith("anthropic") for r in records)
    texts = [f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in records]
    assert _leaks(caplog.text, *texts) == []
    assert any(f"127.0.0.1:{server.port}" in t for t in texts)


def test_a_base_url_without_a_password_is_shown_as_it_is() -> None:
    """Masking touches only userinfo: the host, port and path stay readable."""
    spec = AnthropicApiSpec(kind="anthropic-api", base_url="https://gateway.example/v1/anthropic")
    assert "https://gateway.example/v1/anthropic" in repr(spec)
    assert json.loads(spec.model_dump_json())["base_url"] == "https://gateway.example/v1/anthropic"


def test_a_failed_reload_s_text_is_scrubbed_of_every_spelling_of_a_url_password() -> None:
    """The reload worker's scrubber (what a rejected reload's event and last_error say)
    masks a base_url's password decoded, URL-encoded and as Basic credentials, not only
    the whole URL."""
    from provcfg._reloadevents import scrub

    manifest = load_text(MANIFEST)
    text = f"failed: {PASSWORD} / {quote(PASSWORD, safe='')} / Basic {BASIC} / {KEY}"
    scrubbed = scrub(text, manifest, environ={})
    assert _leaks(scrubbed) == [], scrubbed
    assert scrubbed.count("**********") == 4
