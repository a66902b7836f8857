"""Suite-wide fixtures: the stub server and the real services, registered once.

Test modules use ``stub``, ``stub_thread``, ``stub_process``, ``redis_server`` and
``memcached_server`` by name; they live in the support modules listed here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

pytest_plugins = ("tests.support_stub", "tests.support_services")


@pytest.fixture(autouse=True, scope="session")
def _provcfg_logs_enabled() -> Iterator[None]:
    """provcfg logs through ``logging`` and skips events nobody listens to; the tests that
    capture events (``structlog.testing.capture_logs``) listen to every level."""
    logger = logging.getLogger("provcfg")
    before = logger.level
    logger.setLevel(logging.DEBUG)
    yield
    logger.setLevel(before)
