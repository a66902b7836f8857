"""Region lifecycle: no leaked file descriptors, and clear errors for missing extras."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from provcfg._cache import build_region, close_region
from provcfg._manifest import RegionSpec
from provcfg._metrics import Metrics
from tests.support_services import memcached_server, redis_server

__all__ = ["memcached_server", "redis_server"]  # fixtures used by the tests below

_SPEC = TypeAdapter(RegionSpec)


def _open_fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def _spec_for(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if kind == "memory":
        return _SPEC.validate_python({"backend": "memory", "max_size": 4})
    if kind == "file":
        return _SPEC.validate_python({"backend": "file", "path": str(tmp_path / "c.dbm")})
    if kind == "redis":
        return _SPEC.validate_python(
            {"backend": "redis", "url": request.getfixturevalue("redis_server")}
        )
    url = request.getfixturevalue("memcached_server")
    return _SPEC.validate_python({"backend": "memcached", "url": url})


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["memory", "file", "redis", "memcached"])
def test_a_thousand_build_use_close_cycles_leak_no_fd(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """1,000 cycles of build, set, get, close leave the open file-descriptor count flat."""
    spec = _spec_for(kind, request, tmp_path)
    metrics = Metrics()
    # Closed regions stay referenced, so garbage collection cannot close for close_region.
    kept = []

    def cycle(n: int) -> None:
        region = build_region("leak", spec, namespace=f"gen{n % 3}", metrics=metrics)
        region.set("k", n)
        assert region.get("k") == n
        close_region(region)
        kept.append(region)

    for n in range(20):  # warm up imports and lazily created module state
        cycle(n)
    before = _open_fds()
    for n in range(1000):
        cycle(n)
    after = _open_fds()
    assert after <= before, f"{kind}: {after - before} file descriptors leaked"


def test_close_region_twice_is_harmless(redis_server: str) -> None:
    """close_region is idempotent, and a closed shared region answers misses instead of raising."""
    spec = _SPEC.validate_python({"backend": "redis", "url": redis_server})
    region = build_region("twice", spec, namespace="gen1", metrics=Metrics())
    region.set("k", "v")
    close_region(region)
    closed = _open_fds()
    close_region(region)
    assert not region.get("k")
    region.set("k", "again")  # dropped, no reconnect
    assert _open_fds() == closed


_MISSING = """
import sys
sys.modules[{module!r}] = None  # makes `import {module}` raise ImportError
from pydantic import TypeAdapter
from provcfg._cache import build_region
from provcfg._errors import BackendUnavailableError
from provcfg._manifest import RegionSpec
from provcfg._metrics import Metrics
spec = TypeAdapter(RegionSpec).validate_python({spec!r})
try:
    build_region("r", spec, namespace="gen1", metrics=Metrics())
except BackendUnavailableError as exc:
    print(f"{{exc.extra}}|{{exc}}")
"""


@pytest.mark.parametrize(
    ("module", "spec", "extra"),
    [
        ("redis", {"backend": "redis", "url": "redis://127.0.0.1:1/0"}, "redis"),
        ("pymemcache", {"backend": "memcached", "url": "memcached://127.0.0.1:1"}, "memcached"),
    ],
)
def test_missing_optional_package_names_the_extra(
    module: str, spec: dict[str, Any], extra: str
) -> None:
    """Without the client package, build_region raises BackendUnavailableError naming the extra."""
    code = _MISSING.format(module=module, spec=spec)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    got_extra, _, message = result.stdout.strip().partition("|")
    assert got_extra == extra
    assert f"pip install 'provcfg[{extra}]'" in message
    assert "Traceback" not in result.stderr


def test_importing_provcfg_cache_imports_no_client_library() -> None:
    """Importing provcfg._cache pulls in neither redis nor pymemcache (they load on first use)."""
    code = (
        "import sys, provcfg._cache; "
        "print(sorted(m for m in ('redis', 'pymemcache') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
