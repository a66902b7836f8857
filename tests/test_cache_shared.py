"""Shared regions (file, redis, memcached) against real files and real servers.

Two real processes share one region; entries are keyed by the namespace (a digest
of what the region depends on), so processes with other inputs never disturb each
other; a dead server degrades to a miss (or raises CacheBackendError on request)
and never shows the password; a server that answers with an error is not an outage.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog
from dogpile.cache.api import NO_VALUE
from pydantic import TypeAdapter

from provcfg._cache import build_region, close_region
from provcfg._errors import CacheBackendError, ProvcfgError
from provcfg._manifest import RegionSpec
from provcfg._metrics import Metrics
from tests.support_services import (
    held_port,
    held_port_number,
    memcached_server,
    redis_server,
    start_redis,
)
from tests.support_workers import JsonWorker

__all__ = ["memcached_server", "redis_server"]  # fixtures used by the tests below

_SPEC = TypeAdapter(RegionSpec)

# One process holding one region; it answers JSON commands on stdin, one per line.
WORKER = r"""
import json, sys
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
from dogpile.cache.api import NO_VALUE
from pydantic import TypeAdapter
from provcfg._cache import build_region, close_region
from provcfg._manifest import RegionSpec
from provcfg._metrics import Metrics

spec = TypeAdapter(RegionSpec).validate_python(json.loads(sys.argv[1]))
name = sys.argv[2]
region = None
for line in sys.stdin:
    cmd = json.loads(line)
    out = None
    if cmd["op"] == "build":
        if region is not None:
            close_region(region)
        region = build_region(name, spec, namespace=cmd["namespace"], metrics=Metrics())
    elif cmd["op"] == "get":
        value = region.get(cmd["key"])
        out = None if value is NO_VALUE else value
    elif cmd["op"] == "set":
        region.set(cmd["key"], cmd["value"])
    print(json.dumps(out), flush=True)
close_region(region)
"""


class Worker(JsonWorker):
    """A real Python process running WORKER on one region spec."""

    def __init__(self, spec: dict[str, Any], region: str) -> None:
        super().__init__(WORKER, json.dumps(spec), region)


@contextmanager
def workers(spec: dict[str, Any], region: str, count: int = 2) -> Iterator[list[Worker]]:
    started = [Worker(spec, region) for _ in range(count)]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["file", "redis", "memcached"])
def shared_spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Spec dict of one shared backend kind, pointing at a real file or server."""
    if request.param == "file":
        return {"backend": "file", "path": str(tmp_path / "shared.dbm"), "ttl": 600}
    if request.param == "redis":
        return {"backend": "redis", "url": request.getfixturevalue("redis_server"), "ttl": 600}
    return {"backend": "memcached", "url": request.getfixturevalue("memcached_server"), "ttl": 600}


def test_two_processes_see_each_others_entries(shared_spec: dict[str, Any]) -> None:
    """Two real processes on one shared region read what the other wrote."""
    region = _unique("share")
    with workers(shared_spec, region) as (one, two):
        one.call("build", namespace="gen1")
        two.call("build", namespace="gen1")
        one.call("set", key="a", value={"from": "one"})
        two.call("set", key="b", value=[2])
        assert two.call("get", key="a") == {"from": "one"}
        assert one.call("get", key="b") == [2]
        assert one.call("get", key="missing") is None


def test_processes_with_other_inputs_never_disturb_each_other(
    shared_spec: dict[str, Any],
) -> None:
    """Entries are keyed by content: a process that builds later from an older configuration
    neither hides a newer process's entries nor stops serving its own."""
    region = _unique("gen")
    with workers(shared_spec, region) as (old, new):
        new.call("build", namespace="gen2")  # the newer configuration builds first
        new.call("set", key="k", value="v2")
        old.call("build", namespace="gen1")  # an older one builds after it
        old.call("set", key="k", value="v1")
        assert new.call("get", key="k") == "v2"  # not superseded by the later, older build
        assert old.call("get", key="k") == "v1"  # and the old process still serves its own
        new.call("set", key="k3", value="new")
        assert old.call("get", key="k3") is None  # never another configuration's entries
        old.call("build", namespace="gen2")  # the old process reloads the newer configuration
        assert old.call("get", key="k") == "v2"
        assert old.call("get", key="k3") == "new"


def test_old_entries_stay_stored_under_their_own_namespace(redis_server: str) -> None:
    """A new namespace misses without deleting the old entries: a process still on them
    keeps its cache, and the server expires them by ttl."""
    name = _unique("ns")
    spec = _SPEC.validate_python({"backend": "redis", "url": redis_server, "ttl": 600})
    old = build_region(name, spec, namespace="gen1", metrics=Metrics())
    old.set("k", "v1")
    new = build_region(name, spec, namespace="gen2", metrics=Metrics())
    client = redis.Redis.from_url(redis_server)
    try:
        assert new.get("k") is NO_VALUE
        assert old.get("k") == "v1"
        assert client.exists(old.key_mangler("k")) == 1
        assert 0 < client.ttl(old.key_mangler("k")) <= 601
    finally:
        client.close()
        close_region(old)
        close_region(new)


def test_redis_ttl_also_expires_keys_on_the_server(redis_server: str) -> None:
    """ttl becomes dogpile's expiration_time and a redis expiry a little longer, never none."""
    name = _unique("ttl")
    spec = _SPEC.validate_python({"backend": "redis", "url": redis_server, "ttl": "90s"})
    region = build_region(name, spec, namespace="gen1", metrics=Metrics())
    client = redis.Redis.from_url(redis_server)
    try:
        region.set("k", "v")
        assert 90 < client.ttl(region.key_mangler("k")) <= 91
        assert region.expiration_time == 90
    finally:
        client.close()
        close_region(region)


def test_redis_gets_are_timed_and_counted(redis_server: str) -> None:
    """Remote gets record cache_get_seconds; hits and misses are counted per region."""
    name = _unique("timed")
    metrics = Metrics()
    spec = _SPEC.validate_python({"backend": "redis", "url": redis_server})
    region = build_region(name, spec, namespace="gen1", metrics=metrics)
    try:
        assert region.get_or_create("k", lambda: 41) == 41
        assert region.get_or_create("k", lambda: 42) == 41
        summary = metrics.summary("cache_get_seconds", name)
        assert summary is not None and summary.count >= 3
        assert metrics.counter("cache_hit", name) == 1
        assert metrics.counter("cache_miss", name) == 1
    finally:
        close_region(region)


def test_memcached_round_trip(memcached_server: str) -> None:
    """A memcached region stores and returns Python values and deletes them."""
    name = _unique("mc")
    spec = _SPEC.validate_python({"backend": "memcached", "url": memcached_server, "ttl": 60})
    region = build_region(name, spec, namespace="gen1", metrics=Metrics())
    try:
        region.set("k", {"nested": [1, 2.5, "x"]})
        assert region.get("k") == {"nested": [1, 2.5, "x"]}
        region.delete("k")
        assert region.get("k") is NO_VALUE
    finally:
        close_region(region)


# ----------------------------------------------------------------------------- outages

_PASSWORD = "s3cr3t-Pa55"


def _dead_spec(backend: str, port: int) -> Any:
    if backend == "redis":
        url = f"redis://user:{_PASSWORD}@127.0.0.1:{port}/0"
        return _SPEC.validate_python({"backend": "redis", "url": url, "socket_timeout": 1})
    return _SPEC.validate_python({"backend": "memcached", "url": f"memcached://127.0.0.1:{port}"})


@pytest.mark.parametrize("backend", ["redis", "memcached"])
def test_dead_server_degrades_to_a_miss_with_one_warning(backend: str) -> None:
    """Against a dead server get misses, set is dropped, cache_error counts, one warning logs."""
    name = _unique("dead")
    metrics = Metrics()
    with held_port() as port, structlog.testing.capture_logs() as logs:
        region = build_region(name, _dead_spec(backend, port), namespace="gen1", metrics=metrics)
        try:
            region.set("k", "v")
            assert region.get("k") is NO_VALUE
            assert region.get_or_create("k", lambda: "made") == "made"
        finally:
            close_region(region)
    assert metrics.counter("cache_error", name) >= 1
    warnings = [e for e in logs if e["event"] == "cache_backend_unavailable"]
    assert len(warnings) == 1
    assert warnings[0]["server"] == f"127.0.0.1:{port}"
    assert _PASSWORD not in repr(logs)


def test_dead_redis_raises_cache_backend_error_on_request() -> None:
    """With on_error='raise' the first use of a dead server raises, naming region and host:port.

    Building alone touches no server (load() never waits on one).
    """
    name = _unique("raise")
    with held_port() as port:
        region = build_region(
            name, _dead_spec("redis", port), namespace="gen1", metrics=Metrics(), on_error="raise"
        )
        with pytest.raises(ProvcfgError) as caught:
            region.get("k")
        close_region(region)
    error = caught.value
    assert isinstance(error, CacheBackendError)
    assert error.region == name and error.server == f"127.0.0.1:{port}"
    assert f"127.0.0.1:{port}" in str(error) and name in str(error)
    assert _PASSWORD not in str(error) and _PASSWORD not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_redis_dying_under_a_region_raises_on_get_when_asked() -> None:
    """A region built against a live redis raises CacheBackendError on get once the server dies."""
    name = _unique("dies")
    with start_redis() as url:
        spec = _SPEC.validate_python({"backend": "redis", "url": url, "socket_timeout": 1})
        region = build_region(name, spec, namespace="gen1", metrics=Metrics(), on_error="raise")
        region.set("k", "v")
        assert region.get("k") == "v"
    try:
        with pytest.raises(CacheBackendError, match=r"get failed: ConnectionError"):
            region.get("k")
    finally:
        close_region(region)


def test_redis_recovers_after_the_outage() -> None:
    """A region whose redis died misses quietly, then serves again once a server is back."""
    name = _unique("recover")
    metrics = Metrics()
    with start_redis() as url:
        port = int(url.rsplit(":", 1)[1].removesuffix("/0"))
        spec = _SPEC.validate_python({"backend": "redis", "url": url, "socket_timeout": 1})
        region = build_region(name, spec, namespace="gen1", metrics=metrics)
        region.set("k", "v")
    try:
        with structlog.testing.capture_logs() as logs:
            with held_port_number(port):  # nothing else may listen there during the outage
                assert region.get("k") is NO_VALUE  # server gone: a miss, not an exception
            with start_redis(port):
                # Writes are dropped until the backoff window (0.5 s) has passed: poll, bounded.
                deadline = time.monotonic() + 10
                while region.get("k") != "again":
                    assert time.monotonic() < deadline, "region never served again"
                    region.set("k", "again")
                    time.sleep(0.05)
        events = [e["event"] for e in logs if e["event"].startswith("cache_backend")]
        assert events == ["cache_backend_unavailable", "cache_backend_recovered"]
        assert metrics.counter("cache_error", name) == 1
    finally:
        close_region(region)


def test_redis_password_works_and_never_leaks(redis_server: str) -> None:
    """A password URL authenticates, and neither region, backend, logs nor errors show it."""
    admin = redis.Redis.from_url(redis_server)
    user = _unique("user")
    admin.acl_setuser(
        user, enabled=True, passwords=[f"+{_PASSWORD}"], keys=["*"], commands=["+@all"]
    )
    host_port = redis_server.removeprefix("redis://").removesuffix("/0")
    good = f"redis://{user}:{_PASSWORD}@{host_port}/0"
    bad = f"redis://{user}:wrong-{_PASSWORD}@{host_port}/0"
    name = _unique("auth")
    try:
        with structlog.testing.capture_logs() as logs:
            region = build_region(
                name, _SPEC.validate_python({"backend": "redis", "url": good}),
                namespace="gen1", metrics=Metrics(),
            )  # fmt: skip
            region.set("k", "v")
            assert region.get("k") == "v"
            texts = [repr(region), repr(region.backend), repr(region.actual_backend)]
            close_region(region)
            rejected = build_region(
                name, _SPEC.validate_python({"backend": "redis", "url": bad}),
                namespace="gen1", metrics=Metrics(), on_error="raise",
            )  # fmt: skip
            with pytest.raises(CacheBackendError) as caught:
                rejected.get("k")
            close_region(rejected)
            degraded = build_region(
                name, _SPEC.validate_python({"backend": "redis", "url": bad}),
                namespace="gen1", metrics=Metrics(),
            )  # fmt: skip
            assert degraded.get("k") is NO_VALUE
            close_region(degraded)
        texts += [str(caught.value), repr(caught.value), repr(logs)]
        assert "AuthenticationError" in str(caught.value)
        for text in texts:
            assert _PASSWORD not in text
    finally:
        admin.acl_deluser(user)
        admin.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"redis://u:{_PASSWORD}@127.0.0.1:notaport/0", "port"),
        (f"redis://u:{_PASSWORD}@127.0.0.1:99999/0", "port"),
    ],
)
def test_bad_redis_url_names_the_fix_not_the_password(url: str, problem: str) -> None:
    """A malformed redis URL raises CacheBackendError that says how to write it, without the URL."""
    spec = _SPEC.validate_python({"backend": "redis", "url": url})
    with pytest.raises(CacheBackendError) as caught:
        build_region("bad", spec, namespace="gen1", metrics=Metrics())
    text = str(caught.value)
    assert problem in text and "redis://[:password@]host:port/db" in text
    assert _PASSWORD not in text


def test_file_region_in_a_missing_folder_names_the_fix(tmp_path: Path) -> None:
    """A dbm path in a missing folder raises CacheBackendError naming the region's path key."""
    spec = _SPEC.validate_python({"backend": "file", "path": str(tmp_path / "nope" / "c.dbm")})
    with pytest.raises(CacheBackendError, match=r"cache\.files\.path"):
        build_region("files", spec, namespace="gen1", metrics=Metrics())


def test_a_server_that_answers_with_an_error_is_not_an_outage() -> None:
    """redis refusing a write (out of memory) is logged as rejected with its own words, not
    as 'is redis running?', and the region does not back off: the next call reaches it."""
    name = _unique("oom")
    with start_redis() as url:
        client = redis.Redis.from_url(url)
        try:
            client.config_set("maxmemory", 1)
            client.config_set("maxmemory-policy", "noeviction")
            spec = _SPEC.validate_python({"backend": "redis", "url": url})
            metrics = Metrics()
            region = build_region(name, spec, namespace="gen1", metrics=metrics)
            with structlog.testing.capture_logs() as logs:
                region.set("k", "v")  # refused: OOM command not allowed
                region.set("k2", "v2")  # tried again at once, refused again
            events = [e["event"] for e in logs]
            assert events.count("cache_backend_rejected") == 2, logs
            assert "cache_backend_unavailable" not in events
            rejected = next(e for e in logs if e["event"] == "cache_backend_rejected")
            assert "maxmemory" in rejected["error"]  # the server's own words
            assert metrics.counter("cache_error", name) == 2
            client.config_set("maxmemory", 0)  # the server recovers: no back-off to wait out
            region.set("k3", "v3")
            assert region.get("k3") == "v3"
            close_region(region)
        finally:
            client.close()
