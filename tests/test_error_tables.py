"""One table per concern: every HTTP status and every httpx2 exception has a kind, the same one
for the API kind and the CLI kinds; pool_exhausted names the pool and is counted."""

from __future__ import annotations

import inspect
import typing

import httpx2
import pytest

from provcfg._errors import ErrorKind, ProviderError
from provcfg._pools import map_http_error
from provcfg._providers._api_errors import ErrorMapper
from provcfg._providers._cli import error_kind
from provcfg._providers._status import STATUS_KINDS, kind_for_status
from provcfg._runtime import Runtime
from provcfg._secrets import MASK
from provcfg.stub import StubServer
from tests.support_manifest import load_text

KINDS = frozenset(typing.get_args(ErrorKind))
MAPPER = ErrorMapper("api", "http://127.0.0.1:9/v1/messages", ())


@pytest.mark.parametrize("status", range(400, 600))
def test_every_error_status_has_a_kind_and_both_kinds_agree(status: int) -> None:
    """Each 4xx/5xx maps to a known kind; the API mapping and the CLI mapping give the same one
    wherever the table lists the status."""
    kind = kind_for_status(status)
    assert kind in KINDS
    api = MAPPER.from_body(status, {"error": {"message": "boom"}}).kind
    assert api == kind
    cli = error_kind(status, "boom")
    if status in STATUS_KINDS or status >= 500:
        assert cli == kind


@pytest.mark.parametrize(("status", "kind"), [(402, "permission"), (504, "server_error")])
def test_statuses_the_two_tables_used_to_disagree_on(status: int, kind: str) -> None:
    """402 and 504 once mapped differently for the API and the CLIs; now one table decides."""
    assert MAPPER.from_body(status, {"error": {"message": "x"}}).kind == kind
    assert error_kind(status, "x") == kind
    assert error_kind(None, f"API Error: {status} x") == kind


def test_a_404_naming_a_model_is_model_not_found_for_both() -> None:
    """The text refines a 404 the same way for the API body and a CLI's message."""
    text = "model: claude-nope not found"
    assert MAPPER.from_body(404, {"error": {"message": text}}).kind == "model_not_found"
    assert error_kind(404, text) == "model_not_found"
    assert error_kind(404, "no such route") == "invalid_request"


def _httpx2_errors() -> list[type[BaseException]]:
    return [
        cls
        for _, cls in inspect.getmembers(httpx2, inspect.isclass)
        if issubclass(cls, httpx2.TransportError)
    ]


@pytest.mark.parametrize("cls", _httpx2_errors(), ids=lambda c: c.__name__)
def test_every_httpx2_transport_exception_is_mapped(cls: type[BaseException]) -> None:
    """httpx's habit (test_httpcore_all_exceptions_mapped): no transport exception falls through."""
    error = map_http_error(cls("x"), provider="api")
    assert error is not None
    assert error.kind in KINDS


def test_one_mask_everywhere() -> None:
    """The mask is one constant: the modules that mask text use it rather than their own."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "provcfg"
    copies = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "_secrets.py" and f'"{MASK}"' in path.read_text()
    ]
    assert copies == []


async def test_pool_exhausted_through_the_runtime_names_the_pool_and_is_counted() -> None:
    """A provider built by the runtime maps errors with its pool: the message names pools.tiny
    and the pool_exhausted counter of that pool goes up."""
    async with StubServer() as stub:
        manifest = load_text(
            "version: 1\n"
            "pools:\n  tiny: {max_connections: 1, timeouts: {pool: 200ms}}\n"
            "providers:\n"
            f"  api: {{kind: anthropic-api, base_url: '{stub.base_url}', api_key: k,"
            " pool: tiny, transport: fast, model: claude-x-1, max_retries: 0}\n"
        )
        rt = Runtime.build(manifest)
        try:
            api = rt.provider("api")
            holder = api.stream("hi", model="stub-stall-1")
            assert (await anext(holder)).type == "text"
            with pytest.raises(ProviderError) as caught:
                await api.complete("second")
            assert caught.value.kind == "pool_exhausted"
            assert "pools.tiny.max_connections" in str(caught.value)
            assert "<pool>" not in str(caught.value)
            assert rt.metrics.counter("pool_exhausted", "tiny") == 1
            await holder.aclose()  # type: ignore[attr-defined]
        finally:
            await rt.aclose()
