"""Runtime lifecycle under expiry, concurrency and reload: who closes what, and when."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from provcfg._errors import RuntimeClosedError
from provcfg._runtime import Runtime
from provcfg.plugin import ProviderContext
from tests.support_reload import until
from tests.support_runtime import EchoProvider, echo_registry, manifest


@pytest.fixture(autouse=True)
def _reset_echo() -> None:
    EchoProvider.reset()


def build(providers: dict[str, dict[str, Any]], **extra: Any) -> Runtime:
    return Runtime.build(manifest(providers, **extra), registry=echo_registry())


async def settle() -> None:
    """Let scheduled close tasks run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_expired_instance_is_closed_and_replaced() -> None:
    """With a providers ttl, an expired instance is closed and the next call creates a new one."""
    # 250 ms leaves a loaded machine room for the "still the same instance" checks below.
    rt = build({"a": {}}, cache={"providers": {"backend": "memory", "ttl": "250ms"}})
    try:
        handle = rt.provider("a")
        first = handle.instance()
        assert rt.provider("a").instance() is first
        await asyncio.sleep(0.35)
        assert rt.provider("a") is handle  # the caller's object survives the expiry
        second = handle.instance()
        assert second is not first
        await settle()
        assert EchoProvider.log.count(("close", "a")) == 1
        assert first._closed and not second._closed  # type: ignore[attr-defined]
        assert (await handle.complete("still works")).text == "stillworks"
        assert rt.provider("a").instance() is second
    finally:
        await rt.aclose()


async def test_expired_instance_with_a_stream_in_flight_closes_after_it() -> None:
    """Expiry replaces the instance at once but closes the old one only when its stream ends."""
    rt = build({"a": {}}, cache={"providers": {"backend": "memory", "ttl": "50ms"}})
    try:
        first = rt.provider("a").instance()
        stream = first.stream("one two three")
        assert (await anext(stream)).text == "one"
        await asyncio.sleep(0.12)
        assert rt.provider("a").instance() is not first
        await asyncio.sleep(0.05)
        assert ("close", "a") not in EchoProvider.log
        assert [c.text async for c in stream][:2] == ["two", "three"]
        await until(lambda: ("close", "a") in EchoProvider.log, timeout=5)
    finally:
        await rt.aclose()


def test_aclose_racing_a_first_provider_call_closes_what_it_created() -> None:
    """An instance whose creation finishes after aclose() is closed and never served."""
    created = threading.Event()
    closed = threading.Event()
    made: list[EchoProvider] = []

    def slow_factory(ctx: ProviderContext) -> EchoProvider:
        created.set()
        assert closed.wait(10)
        made.append(EchoProvider(ctx))
        return made[-1]

    rt = Runtime.build(manifest({"a": {}}), registry=echo_registry(slow_factory))
    errors: list[BaseException] = []

    def first_call() -> None:
        try:
            rt.provider("a")
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=first_call)
    caller.start()
    assert created.wait(10)
    asyncio.run(rt.aclose())
    closed.set()
    caller.join(10)
    assert len(errors) == 1 and isinstance(errors[0], RuntimeClosedError)
    assert made and made[0]._closed
    with pytest.raises(RuntimeClosedError):
        rt.provider("a")


async def test_reload_back_to_a_spec_keeps_the_instance_the_old_generation_drains() -> None:
    """Closing generation 1 after generation 3 took its instance up again does not close it."""
    spec1, spec2 = {"a": {"model": "m-1"}}, {"a": {"model": "m-2"}}
    rt1 = build(spec1)
    p = rt1.provider("a")
    stream = p.stream("x y")
    await anext(stream)  # in flight: rt1's close waits for it
    rt2 = Runtime.build(manifest(spec2), previous=rt1, registry=echo_registry())
    closing = asyncio.create_task(rt1.aclose())
    await asyncio.sleep(0.03)
    rt3 = Runtime.build(manifest(spec1), previous=rt2, registry=echo_registry())
    assert rt3.provider("a") is p
    assert [c.text async for c in stream][:1] == ["y"]
    await closing
    await settle()
    assert not p._closed  # type: ignore[attr-defined]
    assert rt3.provider("a") is p
    await rt2.aclose()
    await rt3.aclose()
    assert p._closed  # type: ignore[attr-defined]


def test_close_scheduled_on_a_loop_that_ends_still_happens() -> None:
    """An eviction whose close task is cancelled by asyncio.run's shutdown is closed anyway."""
    rt = build({"a": {}, "b": {}}, cache={"providers": {"backend": "memory", "max_size": 1}})

    kept: list[Any] = []

    async def evict_and_leave() -> None:
        stream = rt.provider("a").stream("x y")
        kept.append(stream)
        await anext(stream)
        rt.provider("b")  # evicts a; its close waits for the stream, past this loop's end

    asyncio.run(evict_and_leave())  # cancels the waiting close task, then ends the stream
    assert rt._store.obj.closer_started  # handed to the closer thread
    asyncio.run(rt.aclose())
    assert ("close", "a") in EchoProvider.log
    assert ("close", "b") in EchoProvider.log


def test_aclose_on_one_loop_while_another_loop_closes_an_evicted_instance() -> None:
    """aclose() does not await close tasks of another running loop (that used to raise)."""
    rt = build({"a": {}, "b": {}}, cache={"providers": {"backend": "memory", "max_size": 1}})
    evicted = threading.Event()
    main_done = threading.Event()

    async def other_loop() -> None:
        stream = rt.provider("a").stream("x y")
        await anext(stream)
        rt.provider("b")  # evicts a: its close waits on this loop for the stream
        evicted.set()
        await asyncio.to_thread(main_done.wait, 10)
        async for _ in stream:
            pass

    thread = threading.Thread(target=asyncio.run, args=(other_loop(),))
    thread.start()
    try:
        assert evicted.wait(10)
        asyncio.run(rt.aclose())
    finally:
        main_done.set()
        thread.join(10)
    assert ("close", "a") in EchoProvider.log


async def test_failed_build_inside_a_running_loop_with_a_pending_close() -> None:
    """A build failing in async code, while this loop has a close pending, raises its own error."""
    old = build({"a": {}, "b": {}}, cache={"providers": {"backend": "memory", "max_size": 1}})
    old.provider("a")
    old.provider("b")  # a's close task is now pending on this loop
    EchoProvider.fail_prepare = {"c"}
    with pytest.raises(OSError, match="prepare of c failed"):
        Runtime.build(
            manifest(
                {"a": {}, "b": {}, "c": {"init": "eager"}},
                cache={"providers": {"backend": "memory", "max_size": 1}},
            ),
            previous=old,
            registry=echo_registry(),
        )
    await old.aclose()
    assert {("close", "a"), ("close", "b"), ("close", "c")} <= set(EchoProvider.log)


async def test_aclose_cancelled_while_draining_can_be_finished() -> None:
    """An aclose() cancelled while a stream runs refuses work; calling it again releases all."""
    rt = build({"a": {}, "b": {}})
    a = rt.provider("a")
    rt.provider("b")
    stream = a.stream("x y")
    await anext(stream)
    closing = asyncio.create_task(rt.aclose())
    await asyncio.sleep(0.05)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    with pytest.raises(RuntimeClosedError):
        rt.provider("a")
    assert [c.text async for c in stream][:1] == ["y"]
    async with asyncio.timeout(5):
        await rt.aclose()
    assert a._closed  # type: ignore[attr-defined]
    assert EchoProvider.log.count(("close", "a")) == 1
    assert EchoProvider.log.count(("close", "b")) == 1
    assert len(rt._holdings) == 0
