"""Reloads drop a region's entries only when what the region depends on changed (targeted).

By default a region depends on its own spec; ``invalidate_on`` adds provider names
or ``any``. Checked on memory regions and on a real redis shared by two real processes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from dogpile.cache.api import NO_VALUE

from provcfg import ManifestError
from provcfg._runtime import Runtime
from tests.support_runtime import echo_registry, manifest
from tests.support_services import redis_server
from tests.support_workers import JsonWorker

__all__ = ["redis_server"]


def _build(cache: dict[str, Any], b_timeout: str, previous: Runtime | None = None) -> Runtime:
    providers = {"a": {}, "b": {"timeout": b_timeout}}
    return Runtime.build(
        manifest(providers, cache=cache), previous=previous, registry=echo_registry()
    )


@pytest.mark.parametrize(
    ("invalidate_on", "kept"),
    [((), True), (["a"], True), (["b"], False), ("any", False)],
)
async def test_reload_changing_only_b_keeps_or_drops_a_memory_region(
    invalidate_on: Any, kept: bool
) -> None:
    """Changing only provider b keeps 'responses' unless it names b (or any) in invalidate_on."""
    spec: dict[str, Any] = {"backend": "memory"}
    if invalidate_on:
        spec["invalidate_on"] = invalidate_on
    cache = {"responses": spec}
    rt1 = _build(cache, "10s")
    rt1.region("responses").set("k", "v")
    rt2 = _build(cache, "20s", previous=rt1)
    try:
        assert rt2.changes == {"a": "unchanged", "b": "rebuilt"}
        value = rt2.region("responses").get("k")
        assert value == ("v" if kept else NO_VALUE)
    finally:
        await rt1.aclose()
        await rt2.aclose()


async def test_changing_the_region_itself_always_drops_it() -> None:
    """A change of the region's own spec (its ttl) gives a fresh region."""
    rt1 = _build({"responses": {"backend": "memory", "ttl": "1h"}}, "10s")
    rt1.region("responses").set("k", "v")
    rt2 = _build({"responses": {"backend": "memory", "ttl": "2h"}}, "10s", previous=rt1)
    try:
        assert rt2.region("responses").get("k") is NO_VALUE
    finally:
        await rt1.aclose()
        await rt2.aclose()


def test_invalidate_on_an_unknown_provider_is_a_positioned_problem() -> None:
    """invalidate_on names are validated like every other reference, with did-you-mean."""
    from provcfg import parse_manifest_text

    text = (
        b"version: 1\nproviders:\n  alpha: {kind: anthropic-api, model: claude-x-1}\n"
        b"cache:\n  responses: {backend: memory, invalidate_on: [alhpa]}\n"
    )
    with pytest.raises(ManifestError) as caught:
        parse_manifest_text(text, file="m.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.loc) == (5, "cache.responses.invalidate_on.0")
    assert "did you mean 'alpha'" in problem.message


# Two processes, each building a runtime from its own manifest text, on one redis region.
WORKER = r"""
import json, sys
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
from dogpile.cache.api import NO_VALUE
from provcfg import parse_manifest_text
from provcfg._runtime import Runtime

rt = None
for line in sys.stdin:
    cmd = json.loads(line)
    out = None
    if cmd["op"] == "build":
        manifest = parse_manifest_text(cmd["text"].encode(), file="m.yaml")
        rt = Runtime.build(manifest, previous=rt)
    elif cmd["op"] == "get":
        value = rt.region("responses").get(cmd["key"])
        out = None if value is NO_VALUE else value
    elif cmd["op"] == "set":
        rt.region("responses").set(cmd["key"], cmd["value"])
    print(json.dumps(out), flush=True)
"""


def _text(url: str, region: str, b_timeout: str, invalidate_on: str = "[]") -> str:
    return (
        "version: 1\n"
        "providers:\n"
        "  a: {kind: anthropic-api, base_url: 'http://127.0.0.1:9', model: claude-x-1}\n"
        f"  b: {{kind: anthropic-api, base_url: 'http://127.0.0.1:9', model: claude-x-1,"
        f" timeout: {b_timeout}}}\n"
        "cache:\n"
        f"  responses: {{backend: redis, url: {json.dumps(url)}, ttl: 10m,"
        f" invalidate_on: {invalidate_on}}}\n"
        f"# region {region}\n"
    )


def test_two_processes_share_a_redis_region_across_unrelated_config_changes(
    redis_server: str,
) -> None:
    """Processes whose manifests differ only in provider b share the region's entries; with
    invalidate_on: [b] they keep apart, and neither disturbs the other."""
    region = uuid.uuid4().hex[:8]
    one = JsonWorker(WORKER)
    two = JsonWorker(WORKER)
    try:
        one.call("build", text=_text(redis_server, region, "10s"))
        two.call("build", text=_text(redis_server, region, "20s"))  # other b, built later
        one.call("set", key=f"k-{region}", value="from one")
        assert two.call("get", key=f"k-{region}") == "from one"

        one.call("build", text=_text(redis_server, region, "10s", "[b]"))
        two.call("build", text=_text(redis_server, region, "20s", "[b]"))
        assert one.call("get", key=f"k-{region}") is None  # a new namespace: empty
        one.call("set", key=f"j-{region}", value="one's")
        two.call("set", key=f"j-{region}", value="two's")
        assert one.call("get", key=f"j-{region}") == "one's"  # never the other's entry
        assert two.call("get", key=f"j-{region}") == "two's"
    finally:
        one.stop()
        two.stop()
