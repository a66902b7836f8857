"""The waits of anthropic-api requests share one loop timer per event loop (``_window.py``).

Real providers against a real loopback server that never answers: requests with
different limits at once each end by their own limit, in the order of their limits;
requests in a row leave no timer behind per request; two event loops in two threads
each keep their own watch; and the windows of finished requests are all dropped.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from typing import Any

import pytest

from provcfg._errors import ProviderError
from provcfg._providers._window import Limit, Watch, watch_of
from provcfg._providers.anthropic_api import AnthropicApiProvider
from provcfg._providers.base import BaseProvider
from tests.support_hostile_servers import (
    TRANSPORTS,
    HostileServer,
    Seen,
    failure,
    head,
    pooled,
    sse_events,
)


async def _never(seen: Seen, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


async def _answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
    body = sse_events("ok")
    writer.write(head(200, {"content-type": "text/event-stream", "content-length": len(body)}))
    writer.write(body)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_requests_with_different_limits_each_end_by_their_own(transport: str) -> None:
    """Five requests at once with deadlines from 0.5 s to 2.5 s (first_byte off) and one
    with only a first-byte limit of 1.2 s: each ends in ``timeout`` naming its own limit,
    and they end in the order of their limits (a shared timer set for the earliest
    must still reach the later ones, and a later window must not delay an earlier one)."""
    ended: list[str] = []

    async def run(label: str, stream: object) -> ProviderError:
        error = await failure(stream)  # type: ignore[arg-type]
        ended.append(label)
        return error

    async with (
        HostileServer(_never) as server,
        pooled(server.base_url, transport, first_byte_timeout=None) as total_only,
        pooled(
            server.base_url, transport, name="fb", first_byte_timeout=1.2, timeout=None
        ) as first_byte_only,
    ):
        await total_only.initialize()  # the SDK imported: these requests only wait on the server
        await first_byte_only.initialize()
        # started latest-ending first, so each new window ends before those already open
        order = [2.5, 2.0, 1.5, 1.0, 0.5]
        runs = [run(f"total {t}", total_only.stream("hi", timeout=t)) for t in order]
        runs.append(run("first_byte 1.2", first_byte_only.stream("hi")))
        errors = await asyncio.gather(*runs)
    for error in errors[:5]:
        assert error.kind == "timeout" and error.details["timeout"] == "total", error
    assert errors[5].kind == "timeout" and errors[5].details["timeout"] == "first_byte"
    assert ended == [
        "total 0.5",
        "total 1.0",
        "first_byte 1.2",
        "total 1.5",
        "total 2.0",
        "total 2.5",
    ]
    assert len(watch_of(asyncio.get_running_loop())) == 0  # every window dropped


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_requests_in_a_row_set_no_timer_each(transport: str) -> None:
    """Fifty successful requests in a row (each with a deadline, a first-byte limit and
    a drain) set provcfg's loop timer a couple of times in all, not once or more per
    request (the loop's ``call_at`` is recorded, whatever else sets timers too), and
    leave no window open."""
    loop = asyncio.get_running_loop()
    ours: list[str] = []
    call_at = loop.call_at

    def recording(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(callback, "__self__", None)
        if isinstance(owner, Watch) or "Timeout" in getattr(callback, "__qualname__", ""):
            ours.append(getattr(callback, "__qualname__", "?"))
        return call_at(when, callback, *args, **kwargs)

    async with (
        HostileServer(_answer, keep_alive=True) as server,
        pooled(server.base_url, transport, timeout=30.0) as provider,
    ):
        async for _chunk in provider.stream("warm"):
            pass
        loop.call_at = recording  # type: ignore[method-assign]
        try:
            for _ in range(50):
                chunks = [c.text async for c in provider.stream("hi") if c.type == "text"]
                assert "".join(chunks) == "ok"
        finally:
            loop.call_at = call_at  # type: ignore[method-assign]
    assert len(ours) <= 3, ours
    assert len(watch_of(loop)) == 0


def test_each_event_loop_keeps_its_own_watch() -> None:
    """Two threads, each with its own event loop, time out requests at once: each loop
    gets its own watch (the timer of one loop never cancels a task of the other)."""
    results: dict[str, object] = {}

    async def one(label: str) -> None:
        async with (
            HostileServer(_never) as server,
            pooled(server.base_url, "fast", first_byte_timeout=0.3) as provider,
        ):
            error = await failure(provider.stream("hi"))
            watch = watch_of(asyncio.get_running_loop())
            results[label] = (error.details.get("timeout"), id(watch))

    threads = [threading.Thread(target=asyncio.run, args=(one(str(n)),)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert set(results) == {"0", "1"}
    (kind_a, watch_a), (kind_b, watch_b) = results["0"], results["1"]  # type: ignore[misc]
    assert kind_a == kind_b == "first_byte"
    assert watch_a != watch_b


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_deadline_bounds_a_lazy_initialization_too(transport: str) -> None:
    """A request whose deadline passes while its provider still prepares (the sdk
    transport imports the SDK on first use: here a prepare that takes two seconds) ends
    in ``timeout`` at its deadline; the preparation goes on in its thread, and the next
    request, once it is done, goes through."""
    release = threading.Event()

    class SlowToPrepare(AnthropicApiProvider):
        """Prepares in a worker thread, as the sdk transport does while the SDK is not
        yet imported (this process has imported it already)."""

        async def initialize(self) -> None:
            await BaseProvider.initialize(self)

        def prepare(self) -> None:
            release.wait(10)
            super().prepare()

    async with (
        HostileServer(_answer, keep_alive=True) as server,
        pooled(server.base_url, transport, timeout=30.0) as template,
    ):
        provider = SlowToPrepare(template.ctx)
        error = await failure(provider.stream("hi", timeout=0.3))
        assert error.kind == "timeout" and error.details["timeout"] == "total"
        assert "0.3s" in error.message
        assert not provider._prepared  # still preparing in its thread
        release.set()
        text = "".join([c.text async for c in provider.stream("hi") if c.type == "text"])
        assert text == "ok"
        await provider.aclose()


def test_a_loop_is_not_kept_alive_by_its_watch() -> None:
    """A loop that used the shared timer and was closed is freed with its watch (a watch
    that held its loop kept a closed test loop, and whatever was left open on it, alive
    into the next test)."""
    loop = asyncio.new_event_loop()

    async def wait_briefly() -> None:
        limit = Limit()
        limit.start_at(limit.loop_time() + 60.0)  # the shared timer is set for a minute
        await asyncio.sleep(0)
        assert not limit.stop()

    loop.run_until_complete(wait_briefly())
    loop.close()
    ref = weakref.ref(loop)
    del loop
    gc.collect()
    assert ref() is None
