"""Single-flight creation shared by concurrent threads."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from provcfg._singleflight import SingleFlight


def wait_for_waiters(flights: SingleFlight[Any], key: str, count: int) -> None:
    """Return once ``count`` callers block on the run of ``key`` (bounded: 10 s).

    A fixed sleep would let a thread that starts late find the run over and start its own.
    The future's condition is the one public-enough sign that a caller is waiting.
    """
    deadline = time.monotonic() + 10
    while True:
        future = flights._running.get(key)
        if future is not None and len(future._condition._waiters) >= count:  # type: ignore[attr-defined]
            return
        assert time.monotonic() < deadline, "callers never reached the flight"
        time.sleep(0.001)


def test_concurrent_callers_share_one_run() -> None:
    """50 threads asking for one key at once run the function exactly once and share its value."""
    flights: SingleFlight[object] = SingleFlight()
    calls = 0
    gate = threading.Event()

    def create() -> object:
        nonlocal calls
        calls += 1
        gate.wait(5)
        return object()

    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(flights.run("k", create))) for _ in range(50)
    ]
    for t in threads:
        t.start()
    wait_for_waiters(flights, "k", 49)
    gate.set()
    for t in threads:
        t.join(5)
    assert calls == 1
    assert len(results) == 50
    assert len({id(r) for r in results}) == 1


def test_failure_reaches_every_waiter_and_is_not_cached() -> None:
    """A failing run raises the same exception to all waiters once; the next call runs again."""
    flights: SingleFlight[int] = SingleFlight()
    calls = 0
    gate = threading.Event()
    boom = RuntimeError("creation failed")

    def failing() -> int:
        nonlocal calls
        calls += 1
        gate.wait(5)
        raise boom

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            flights.run("k", failing)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    wait_for_waiters(flights, "k", 19)
    gate.set()
    for t in threads:
        t.join(5)
    assert calls == 1
    assert len(errors) == 20
    assert all(e is boom for e in errors)
    assert flights.run("k", lambda: 7) == 7


def test_distinct_keys_do_not_wait_for_each_other() -> None:
    """A slow run for one key does not block a run for another key."""
    flights: SingleFlight[str] = SingleFlight()
    gate = threading.Event()
    t = threading.Thread(target=lambda: flights.run("slow", lambda: gate.wait(5) and "s"))
    t.start()
    try:
        assert flights.run("fast", lambda: "f") == "f"
    finally:
        gate.set()
        t.join(5)


@pytest.mark.parametrize("value", [{"a": 1}, ("x", 2.5, None)])
def test_digest_is_stable_across_processes(value: object) -> None:
    """spec_digest gives the same hex in a fresh interpreter (no per-process hash salt)."""
    import subprocess
    import sys

    from provcfg._digest import spec_digest

    code = f"from provcfg._digest import spec_digest; print(spec_digest({value!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == spec_digest(value)
