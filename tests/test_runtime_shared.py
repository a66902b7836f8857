"""Runtimes in separate real processes sharing cache regions: cli_paths and responses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from provcfg._errors import ProvcfgError, UnknownRegionError
from provcfg._runtime import load
from tests.support_services import redis_server
from tests.support_workers import JsonWorker

__all__ = ["redis_server"]  # fixture used by the tests below

# One process holding one Runtime; it answers JSON commands on stdin, one per line.
WORKER = r"""
import asyncio, json, sys
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
from dogpile.cache.api import NO_VALUE
import provcfg
from provcfg._loading import load_manifest
from provcfg._runtime import Runtime

rt = provcfg.load(sys.argv[1])
for line in sys.stdin:
    cmd = json.loads(line)
    out = None
    op = cmd["op"]
    if op == "cli_path":
        try:
            out = {"path": str(rt.cli_path(cmd["provider"]))}
        except provcfg.ProvcfgError as exc:
            out = {"error": type(exc).__name__}
        snap = rt.metrics.snapshot()
        out["counters"] = snap["counters"]
        scans = snap["latency"].get("cli_detect_seconds", {}).get("claude", {})
        out["scans"] = scans.get("count", 0)
    elif op == "get":
        value = rt.region(cmd["region"]).get(cmd["key"])
        out = None if value is NO_VALUE else value
    elif op == "set":
        rt.region(cmd["region"]).set(cmd["key"], cmd["value"])
    elif op == "reload":
        old = rt
        rt = Runtime.build(load_manifest(cmd["file"]), previous=old, file=cmd["file"])
        asyncio.run(old.aclose())
        out = rt.digest
    print(json.dumps(out), flush=True)
asyncio.run(rt.aclose())
"""


class Worker(JsonWorker):
    """A real Python process running WORKER on one manifest file."""

    def __init__(self, manifest: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(WORKER, str(manifest), env=env)


@contextmanager
def worker(manifest: Path, env: dict[str, str] | None = None) -> Iterator[Worker]:
    """One Worker for the duration of the block."""
    w = Worker(manifest, env)
    try:
        yield w
    finally:
        w.stop()


def write_manifest(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as a providers.yaml (version 1 added)."""
    path.write_text(yaml.safe_dump({"version": 1, **data}))
    return path


def make_exe(folder: Path, name: str = "claude") -> Path:
    """An executable shell script ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / name
    file.write_text("#!/bin/sh\necho hi\n")
    file.chmod(0o755)
    return file


def cli_manifest(tmp_path: Path, search: Path) -> Path:
    """A manifest with one claude-code provider and a file-backed cli_paths region."""
    return write_manifest(
        tmp_path / "providers.yaml",
        {
            "cache": {"cli_paths": {"backend": "file", "path": str(tmp_path / "cli.dbm")}},
            "providers": {"claude": {"kind": "claude-code", "search_paths": [str(search)]}},
        },
    )


def resolve_in_new_process(manifest: Path, path_env: str) -> dict[str, Any]:
    """Run one `rt.cli_path("claude")` in a fresh process; its answer and metrics."""
    with worker(manifest, {"PATH": path_env}) as w:
        answer: dict[str, Any] = w.call("cli_path", provider="claude")
    return answer


def shared(answer: dict[str, Any], counter: str) -> int:
    """One cli_path counter for claude from a worker's answer."""
    value: int = answer["counters"].get(counter, {}).get("claude", 0)
    return value


def test_a_file_cli_paths_region_carries_detection_across_processes(tmp_path: Path) -> None:
    """A second process reads the first one's detection from the file region: no scan."""
    on_path = make_exe(tmp_path / "bin")
    manifest = cli_manifest(tmp_path, tmp_path / "extra")

    first = resolve_in_new_process(manifest, str(on_path.parent))
    assert first["path"] == str(on_path)
    assert first["scans"] == 1
    assert shared(first, "cli_path_shared_hit") == 0

    second = resolve_in_new_process(manifest, str(on_path.parent))
    assert second["path"] == str(on_path)
    assert second["scans"] == 0
    assert shared(second, "cli_path_shared_hit") == 1


def test_a_stale_shared_entry_is_verified_rescanned_and_replaced(tmp_path: Path) -> None:
    """A shared entry whose binary was removed is rejected, rescanned and replaced for all."""
    on_path = make_exe(tmp_path / "bin")
    fallback_dir = tmp_path / "extra"
    manifest = cli_manifest(tmp_path, fallback_dir)
    path_env = str(on_path.parent)
    assert resolve_in_new_process(manifest, path_env)["path"] == str(on_path)

    on_path.unlink()
    fallback = make_exe(fallback_dir)
    stale = resolve_in_new_process(manifest, path_env)
    assert stale["path"] == str(fallback)
    assert shared(stale, "cli_path_shared_stale") == 1
    assert stale["scans"] == 1

    fresh = resolve_in_new_process(manifest, path_env)
    assert fresh["path"] == str(fallback)
    assert (fresh["scans"], shared(fresh, "cli_path_shared_hit")) == (0, 1)

    fallback.unlink()
    gone = resolve_in_new_process(manifest, path_env)
    assert gone["error"] == "CLINotFoundError"
    # The stale entry was deleted: the next process does not have to reject it again.
    make_exe(on_path.parent)
    again = resolve_in_new_process(manifest, path_env)
    assert again["path"] == str(on_path)
    assert (shared(again, "cli_path_shared_stale"), again["scans"]) == (0, 1)


def responses_manifest(tmp_path: Path, url: str, name: str, ttl: str = "10m") -> Path:
    """A manifest with a redis responses region (``ttl`` varies it to change the digest)."""
    return write_manifest(
        tmp_path / name,
        {
            "cache": {"responses": {"backend": "redis", "url": url, "ttl": ttl}},
            "providers": {"api": {"kind": "anthropic-api", "api_key": "stub"}},
        },
    )


def test_two_runtimes_share_a_redis_region_and_a_change_keeps_them_apart(
    tmp_path: Path, redis_server: str
) -> None:
    """Processes on one manifest see each other's entries via rt.region; after one changes the
    region's spec, each reads only entries written under its own configuration."""
    # The session's redis is shared with other tests: fresh keys keep this one independent.
    key = f"k-{uuid.uuid4().hex[:8]}"
    manifest = responses_manifest(tmp_path, redis_server, "providers.yaml")
    changed = responses_manifest(tmp_path, redis_server, "changed.yaml", ttl="11m")
    with worker(manifest) as one, worker(manifest) as two:
        one.call("set", region="responses", key=key, value={"from": "one"})
        assert two.call("get", region="responses", key=key) == {"from": "one"}
        two.call("set", region="responses", key=key + "b", value=[2])
        assert one.call("get", region="responses", key=key + "b") == [2]

        one.call("reload", file=str(changed))  # the region's spec changed in this process
        assert one.call("get", region="responses", key=key) is None
        one.call("set", region="responses", key=key + "c", value="new")
        assert two.call("get", region="responses", key=key + "c") is None  # not its config's
        assert two.call("get", region="responses", key=key + "b") == [2]  # its own stay

        two.call("reload", file=str(changed))  # it picks up the same new configuration
        assert two.call("get", region="responses", key=key + "c") == "new"


async def test_region_accessor_names_the_declared_regions(tmp_path: Path) -> None:
    """rt.region returns the configured region, and an unknown name suggests the closest one."""
    manifest = write_manifest(
        tmp_path / "providers.yaml",
        {
            "cache": {"responses": {"backend": "memory", "max_size": 4}},
            "providers": {"api": {"kind": "anthropic-api", "api_key": "stub"}},
        },
    )
    rt = load(manifest)
    try:
        region = rt.region("responses")
        region.set("a", 1)
        assert rt.region("responses").get("a") == 1
        with pytest.raises(UnknownRegionError, match=r"did you mean 'responses'") as info:
            rt.region("responsess")
        assert isinstance(info.value, ProvcfgError)
        with pytest.raises(UnknownRegionError):
            rt.region("providers")  # not declared: the implicit store is not a user region
    finally:
        await rt.aclose()
    with pytest.raises(ProvcfgError):
        rt.region("responses")
