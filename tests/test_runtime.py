"""Runtime: cached providers, single-flight creation, init policies, reuse, model table."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from provcfg._errors import (
    CLINotFoundError,
    RuntimeClosedError,
    UnknownModelError,
    UnknownProviderError,
)
from provcfg._runtime import Runtime
from provcfg.plugin import ProviderContext
from tests.support_runtime import EchoProvider, echo_registry, manifest


@pytest.fixture(autouse=True)
def _reset_echo() -> None:
    EchoProvider.reset()


def build(providers: dict[str, dict[str, Any]], **extra: Any) -> Runtime:
    return Runtime.build(manifest(providers, **extra), registry=echo_registry())


async def test_provider_is_cached_and_default_resolves() -> None:
    """rt.provider(name) returns one object per spec; rt.provider() gives default_provider."""
    rt = build({"a": {}, "b": {}}, default_provider="b")
    try:
        a = rt.provider("a")
        assert rt.provider("a") is a
        assert rt.provider() is rt.provider("b")
        assert rt.provider("b") is not a
        assert EchoProvider.created == 2
    finally:
        await rt.aclose()


async def test_lazy_provider_creates_nothing_until_used() -> None:
    """With init: lazy, load creates no instance and prepares nothing."""
    rt = build({"a": {"init": "lazy"}})
    try:
        assert EchoProvider.log == []
        text = (await rt.provider("a").complete("hello lazy world")).text
        assert text == "hellolazyworld"
        assert EchoProvider.log == [("create", "a"), ("prepare", "a")]
    finally:
        await rt.aclose()


async def test_eager_provider_is_prepared_by_build() -> None:
    """init: eager creates and prepares the provider before build returns."""
    rt = build({"e": {"init": "eager"}, "l": {}})
    try:
        assert ("prepare", "e") in EchoProvider.log
        assert ("create", "l") not in EchoProvider.log
    finally:
        await rt.aclose()


async def test_eager_failure_fails_build_and_closes_what_it_built() -> None:
    """An eager provider that cannot prepare makes build raise, and its instance is closed."""
    EchoProvider.fail_prepare = {"e"}
    with pytest.raises(OSError, match="prepare of e failed"):
        build({"e": {"init": "eager"}})
    assert ("close", "e") in EchoProvider.log


async def test_background_init_reports_failures_per_provider() -> None:
    """init: background runs after build returns; warmup reports each provider's outcome."""
    EchoProvider.fail_prepare = {"bad"}
    rt = build({"good": {"init": "background"}, "bad": {"init": "background"}})
    try:
        report = await rt.warmup()
        assert report["good"] is None
        assert isinstance(report["bad"], OSError)
        assert ("prepare", "good") in EchoProvider.log
    finally:
        await rt.aclose()


def test_fifty_threads_create_exactly_one_instance() -> None:
    """50 concurrent first calls from real threads create one instance and all get it."""
    gate = threading.Event()

    def slow_factory(ctx: ProviderContext) -> EchoProvider:
        gate.wait(5)
        return EchoProvider(ctx)

    rt = Runtime.build(manifest({"a": {}}), registry=echo_registry(slow_factory))
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(rt.provider("a"))) for _ in range(50)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert len(got) == 50
    assert len({id(p) for p in got}) == 1
    assert EchoProvider.created == 1
    asyncio.run(rt.aclose())


def test_failed_creation_shared_and_not_cached() -> None:
    """A failing creation raises the same error to every waiter once, and is retried later."""
    gate = threading.Event()
    attempts = 0

    def failing(ctx: ProviderContext) -> EchoProvider:
        nonlocal attempts
        attempts += 1
        gate.wait(5)
        if attempts == 1:
            raise OSError("factory exploded")
        return EchoProvider(ctx)

    rt = Runtime.build(manifest({"a": {}}), registry=echo_registry(failing))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            rt.provider("a")
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert attempts == 1
    assert len(errors) == 20 and len({id(e) for e in errors}) == 1
    assert isinstance(rt.provider("a").instance(), EchoProvider)  # not cached: a new one
    assert attempts == 2
    asyncio.run(rt.aclose())


async def test_concurrent_tasks_share_one_instance() -> None:
    """50 asyncio tasks streaming at once use one provider instance, prepared once."""
    rt = build({"a": {}})
    try:

        async def one() -> str:
            return (await rt.provider("a").complete("x y")).text

        texts = await asyncio.gather(*(one() for _ in range(50)))
        assert set(texts) == {"xy"}
        assert EchoProvider.created == 1
        assert EchoProvider.log.count(("prepare", "a")) == 1
    finally:
        await rt.aclose()


async def test_unknown_provider_suggests_a_name() -> None:
    """A misspelt provider name raises UnknownProviderError with a did-you-mean."""
    rt = build({"claude": {}, "api": {}})
    try:
        with pytest.raises(UnknownProviderError, match="did you mean 'claude'"):
            rt.provider("claud")
    finally:
        await rt.aclose()


async def test_translate_model_tables_and_policies() -> None:
    """Per-provider aliases beat global ones; complete ids pass; unknown aliases suggest."""
    rt = build(
        {
            "a": {"models": {"sonnet": "my-sonnet-override"}},
            "b": {},
            "strict": {"unknown_models": "error"},
        },
        models={
            "sonnet": {"anthropic-api": "claude-sonnet-4-5-20250929"},
            "haiku": {"anthropic-api": "claude-haiku-4-5-20251001"},
        },
    )
    try:
        assert rt.translate_model("a", "sonnet") == "my-sonnet-override"
        assert rt.translate_model("b", "sonnet") == "claude-sonnet-4-5-20250929"
        assert rt.translate_model("b", "claude-opus-4-1") == "claude-opus-4-1"
        assert rt.translate_model("strict", "claude-haiku-4-5-20251001") == (
            "claude-haiku-4-5-20251001"
        )
        with pytest.raises(UnknownModelError, match="did you mean 'sonnet'"):
            rt.translate_model("b", "sonet")
        with pytest.raises(UnknownModelError):
            rt.translate_model("strict", "claude-opus-4-1")
        with pytest.raises(UnknownProviderError):
            rt.translate_model("nope", "sonnet")
        # The provider sees the translated id through its context.
        result = await rt.provider("b").complete("hi", model="haiku")
        assert result.model == "claude-haiku-4-5-20251001"
    finally:
        await rt.aclose()


async def test_cli_path_resolves_and_reports_missing(tmp_path: Path) -> None:
    """cli_path finds an executable in search_paths, and names where it looked when absent."""
    tool = tmp_path / "bin" / "fake-claude"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    m = manifest(
        {
            "c": {
                "kind": "claude-code",
                "command": "fake-claude",
                "search_paths": [str(tool.parent)],
            },
            "gone": {"kind": "claude-code", "command": "no-such-cli-here"},
        }
    )
    rt = Runtime.build(m, registry=echo_registry())
    try:
        assert rt.cli_path("c") == tool
        with pytest.raises(CLINotFoundError, match="no-such-cli-here") as info:
            rt.cli_path("gone")
        assert "@anthropic-ai/claude-code" in str(info.value)
    finally:
        await rt.aclose()


async def test_providers_on_one_pool_share_a_client() -> None:
    """Two providers naming the same pool get the same httpx2 client in one event loop."""
    rt = build(
        {"a": {"pool": "shared"}, "b": {"pool": "shared"}, "c": {"pool": "other"}},
        pools={"shared": {"max_connections": 10}, "other": {}},
    )
    try:
        ca = rt.provider("a").instance().ctx.http_client()  # type: ignore[attr-defined]
        cb = rt.provider("b").instance().ctx.http_client()  # type: ignore[attr-defined]
        cc = rt.provider("c").instance().ctx.http_client()  # type: ignore[attr-defined]
        assert ca is cb
        assert cc is not ca
    finally:
        await rt.aclose()
    assert ca.is_closed and cc.is_closed


def test_one_runtime_from_two_event_loops() -> None:
    """A Runtime used from two loops in two threads hands each loop its own client."""
    rt = build({"a": {"pool": "p"}}, pools={"p": {}})
    clients: dict[int, Any] = {}
    texts: list[str] = []

    def in_loop(i: int) -> None:
        async def main() -> None:
            provider = rt.provider("a")
            clients[i] = provider.instance().ctx.http_client()  # type: ignore[attr-defined]
            texts.append((await provider.complete(f"loop {i}")).text)

        asyncio.run(main())

    threads = [threading.Thread(target=in_loop, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(texts) == ["loop0", "loop1"]
    assert clients[0] is not clients[1]
    asyncio.run(rt.aclose())


async def test_rebuild_reuses_unchanged_and_rebuilds_changed() -> None:
    """build(previous=...) keeps unchanged instances and rebuilds exactly the changed one."""
    names = {f"p{i}": {"max_tokens": 100} for i in range(10)}
    old = build(names)
    before = {n: old.provider(n) for n in names}
    changed = dict(names, p3={"max_tokens": 200})
    new = Runtime.build(manifest(changed), previous=old, registry=echo_registry())
    try:
        assert new.generation == old.generation + 1
        assert new.changes == {n: ("rebuilt" if n == "p3" else "unchanged") for n in names}
        for n in names:
            if n == "p3":
                assert new.provider(n) is not before[n]
            else:
                assert new.provider(n) is before[n]
        await old.aclose()
        assert ("close", "p3") in EchoProvider.log
        assert EchoProvider.log.count(("close", "p3")) == 1
        assert sum(1 for e in EchoProvider.log if e[0] == "close") == 1
        assert (await new.provider("p1").complete("still works")).text == "stillworks"
    finally:
        await new.aclose()
    assert sum(1 for e in EchoProvider.log if e[0] == "close") == 11


async def test_failed_rebuild_leaves_previous_untouched() -> None:
    """If building the next generation fails, the previous runtime keeps serving."""
    old = build({"a": {}})
    first = old.provider("a")
    EchoProvider.fail_prepare = {"b"}
    with pytest.raises(OSError):
        Runtime.build(
            manifest({"a": {}, "b": {"init": "eager"}}), previous=old, registry=echo_registry()
        )
    assert old.provider("a") is first
    assert (await first.complete("ok then")).text == "okthen"
    await old.aclose()


async def test_lru_eviction_closes_the_evicted_provider() -> None:
    """With a providers region of max_size 2, using a third provider closes the oldest instance;
    the caller's object stays the same and gets a new instance."""
    rt = build(
        {"a": {}, "b": {}, "c": {}},
        cache={"providers": {"backend": "memory", "max_size": 2}},
    )
    try:
        handle = rt.provider("a")
        a = handle.instance()
        rt.provider("b")
        rt.provider("c")
        await asyncio.sleep(0)  # let the scheduled close run
        await asyncio.sleep(0)
        assert ("close", "a") in EchoProvider.log
        again = rt.provider("a")
        assert again is handle
        assert again.instance() is not a
    finally:
        await rt.aclose()


async def test_closed_runtime_refuses_work() -> None:
    """After aclose, provider() raises RuntimeClosedError and every instance was closed."""
    rt = build({"a": {}, "b": {}})
    rt.provider("a")
    await rt.aclose()
    await rt.aclose()  # idempotent
    with pytest.raises(RuntimeClosedError):
        rt.provider("a")
    assert ("close", "a") in EchoProvider.log


async def test_metrics_snapshot_is_json_with_counts() -> None:
    """The snapshot holds creation latency and cache hit/miss counts and serializes to JSON."""
    rt = build({"a": {}})
    try:
        rt.provider("a")
        rt.provider("a")
        snap = rt.metrics.snapshot()
        json.dumps(snap)
        assert snap["latency"]["provider_create_seconds"]["a"]["count"] == 1
        assert snap["counters"]["provider_cache_miss"]["a"] == 1
        assert "runtime_build_seconds" in snap["latency"]
    finally:
        await rt.aclose()


def test_lazy_runtime_imports_no_sdk(tmp_path: Path) -> None:
    """Building a runtime of lazy providers imports neither anthropic nor watchfiles."""
    code = (
        "import sys\n"
        "from provcfg._runtime import Runtime\n"
        "from provcfg._manifest import Manifest\n"
        "m = Manifest.model_validate({'version': 1, 'providers': {"
        "'a': {'kind': 'anthropic-api', 'pool': 'p'},"
        "'c': {'kind': 'claude-code'}}, 'pools': {'p': {}}})\n"
        "rt = Runtime.build(m)\n"
        "rt.provider('a'); rt.provider('c')\n"
        "print(sorted(n for n in ('anthropic', 'watchfiles', 'redis') if n in sys.modules))\n"
    )
    out = (
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PATH": os.environ.get("PATH", "")},
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out == "[]"


async def test_snapshot_has_a_state_gauge_per_pool_until_it_closes() -> None:
    """Each pool (named or default) reports its state in the snapshot; a closed pool stops."""
    rt = build(
        {"a": {"pool": "shared"}, "b": {}},
        pools={"shared": {"max_connections": 3}},
    )
    keys = {"pool", "max_connections", "connections", "in_use", "idle", "waiting", "clients"}
    gauges = rt.metrics.snapshot()["gauges"]
    assert keys <= set(gauges["pool.shared"]) and gauges["pool.shared"]["max_connections"] == 3
    assert keys <= set(gauges["pool._default"])
    json.dumps(gauges)
    new = Runtime.build(
        manifest({"a": {"pool": "shared"}}, pools={"shared": {"max_connections": 5}}),
        previous=rt,
        registry=echo_registry(),
    )
    await rt.aclose()
    gauges = new.metrics.snapshot()["gauges"]
    assert gauges["pool.shared"]["max_connections"] == 5  # the old pool did not remove it
    assert "pool._default" not in gauges
    await new.aclose()
    assert not [g for g in new.metrics.snapshot()["gauges"] if g.startswith("pool.")]
