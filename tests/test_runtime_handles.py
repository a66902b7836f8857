"""What rt.provider() returns outlives its instance's eviction and expiry, and holds no Runtime."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from provcfg import RuntimeClosedError
from provcfg._runtime import Runtime
from tests.support_runtime import EchoProvider, echo_registry, manifest


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    EchoProvider.reset()
    yield
    EchoProvider.reset()


def build(providers: dict[str, dict[str, Any]], **extra: Any) -> Runtime:
    return Runtime.build(manifest(providers, **extra), registry=echo_registry())


async def test_a_held_provider_survives_eviction_of_its_instance() -> None:
    """With 17 providers used in turn and room for 16 instances, every object a caller holds
    keeps streaming: eviction recycles the instance behind it, never the object."""
    names = [f"p{i}" for i in range(17)]
    rt = build({n: {} for n in names}, cache={"providers": {"backend": "memory", "max_size": 16}})
    try:
        held = {n: rt.provider(n) for n in names}  # the 17th evicts the first instance
        for _ in range(2):
            for n in names:
                assert (await held[n].complete("a b")).text == "ab"
                assert rt.provider(n) is held[n]
        assert ("close", "p0") in EchoProvider.log  # instances were recycled...
        assert all(not h.closed for h in held.values())  # ...the held objects were not
    finally:
        await rt.aclose()


async def test_a_stream_started_before_eviction_completes_on_its_instance() -> None:
    """An instance evicted mid-stream finishes that stream, then closes; the handle goes on."""
    rt = build({"a": {}, "b": {}}, cache={"providers": {"backend": "memory", "max_size": 1}})
    try:
        a = rt.provider("a")
        stream = a.stream("one two three")
        assert (await anext(stream)).text == "one"
        rt.provider("b")  # evicts a's instance while its stream runs
        assert [c.text async for c in stream][:2] == ["two", "three"]
        assert (await a.complete("again")).text == "again"
    finally:
        await rt.aclose()


async def test_reload_that_changes_a_provider_closes_the_old_handle_with_a_clear_error() -> None:
    """A handle of a spec no generation uses any more refuses work, naming the reload."""
    old = build({"a": {"model": "m-1"}})
    handle = old.provider("a")
    new = Runtime.build(manifest({"a": {"model": "m-2"}}), previous=old, registry=echo_registry())
    await old.aclose()
    try:
        with pytest.raises(RuntimeClosedError, match="removed or changed by a reload"):
            await handle.complete("x")
        assert new.provider("a") is not handle
        assert (await new.provider("a").complete("x")).text == "x"
    finally:
        await new.aclose()


async def test_old_runtime_is_freed_after_a_reload_that_reuses_its_provider() -> None:
    """No provider, handle or context holds the Runtime: once closed, the old one is garbage."""
    old = build({"a": {}, "b": {}})
    kept = old.provider("a")
    await kept.complete("warm up")
    new = Runtime.build(
        manifest({"a": {}, "b": {"model": "m-2"}}), previous=old, registry=echo_registry()
    )
    assert new.provider("a") is kept
    ref = weakref.ref(old)
    await old.aclose()
    del old
    gc.collect()
    try:
        assert ref() is None
        assert (await kept.complete("still alive")).text == "stillalive"
    finally:
        await new.aclose()


async def test_provider_lookup_is_the_same_object_across_instance_recycling() -> None:
    """ttl replaces the instance; the object rt.provider() returns stays the same."""
    rt = build({"a": {}}, cache={"providers": {"backend": "memory", "ttl": "100ms"}})
    try:
        handle = rt.provider("a")
        first = handle.instance()
        await asyncio.sleep(0.2)
        assert rt.provider("a") is handle
        assert handle.instance() is not first
    finally:
        await rt.aclose()


_SLOW_BACKGROUND = r"""
import asyncio, sys, time
sys.path.insert(0, sys.argv[1])
from provcfg._runtime import Runtime
from tests.support_runtime import EchoProvider, echo_registry, manifest

class Sleepy(EchoProvider):
    def prepare(self):
        if self.name == "bg":
            time.sleep(120)  # an SDK import that never ends

rt = Runtime.build(
    manifest({"bg": {"init": "background"}, "a": {}}), registry=echo_registry(Sleepy)
)
async def main():
    print((await rt.provider("a").complete("used a")).text, flush=True)
    await asyncio.wait_for(rt.aclose(), 10)  # never waits for the background init
    print("closed", flush=True)
asyncio.run(main())
"""


def test_background_init_never_delays_aclose_or_exit() -> None:
    """A background initialization still running is abandoned: aclose() returns and the
    interpreter exits without waiting for it (it used to join the init thread at exit)."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-c", _SLOW_BACKGROUND, root],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "useda" in lines and "closed" in lines
