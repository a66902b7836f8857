"""The provider conformance suite run for the anthropic-api kind, both transports, on the stub."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from provcfg.plugin import Provider
from provcfg.stub.server import StubServer
from provcfg.testing import ProviderConformance, Request
from tests.support_anthropic import Handle, make, stub

__all__ = ["stub"]  # the module-scoped stub fixture, re-exported for pytest


class _AnthropicConformance(ProviderConformance):
    transport = ""
    expected_error_kind = "authentication"

    @pytest.fixture
    async def provider(self, stub: StubServer) -> AsyncIterator[Provider]:
        self.handle: Handle = make(stub.base_url, self.transport)
        yield self.handle.provider
        await self.handle.aclose()

    def text_request(self) -> Request:
        return Request("Say hello", {"model": "stub-text"})

    def long_request(self) -> Request:
        return Request("Say a lot", {"model": "stub-deltas-2000"})

    def error_request(self) -> Request:
        return Request("x", {"model": "stub-fault-401"})

    async def assert_released(self, provider: Provider) -> None:
        assert self.handle.busy() == 0, "a connection is still busy after the stream was left"
        assert self.handle.provider.inflight == 0


class TestAnthropicSdkConformance(_AnthropicConformance):
    """anthropic-api with transport: sdk."""

    transport = "sdk"


class TestAnthropicFastConformance(_AnthropicConformance):
    """anthropic-api with transport: fast."""

    transport = "fast"
