"""Suite-wide fixtures: the stub server and the real services, registered once.

Test modules use ``stub``, ``stub_thread``, ``stub_process``, ``redis_server`` and
``memcached_server`` by name; they live in the support modules listed here.
"""

from __future__ import annotations

pytest_plugins = ("tests.support_stub", "tests.support_services")
