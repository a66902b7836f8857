"""Pytest fixtures that run the stub API server; import them where needed.

    from tests.support_stub import stub, stub_thread, stub_process  # noqa: F401

``stub``: a :class:`~provcfg.stub.StubServer` in the test's own event loop.
``stub_thread``: one in a background thread with its own loop (sync tests, or tests
whose loop must not host the server). ``stub_process``: a real ``python -m
provcfg.stub`` child (:class:`~provcfg.stub.process.StubProcess`), terminated with
SIGTERM and reaped afterwards. Each yields an object with ``base_url`` and ``port``;
the in-process ones also have ``requests``, ``enqueue_fault`` and ``reset``, and the
child is reachable through its ``/_stub/...`` control routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from provcfg.stub import StubServer
from provcfg.stub.process import StubProcess

__all__ = ["stub", "stub_process", "stub_thread"]


@pytest.fixture
async def stub() -> AsyncIterator[StubServer]:
    """A stub server on 127.0.0.1 (free port) in the test's event loop."""
    async with StubServer() as server:
        yield server


@pytest.fixture
def stub_thread() -> Iterator[StubServer]:
    """A stub server on 127.0.0.1 (free port) in a thread with its own event loop."""
    with StubServer().running_in_thread() as server:
        yield server


@pytest.fixture
def stub_process() -> Iterator[StubProcess]:
    """A ``python -m provcfg.stub`` child on a free loopback port, reaped afterwards."""
    with StubProcess() as process:
        yield process
