"""The bounded in-memory LRU backend and memory regions built from specs."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from dogpile.cache import make_region
from dogpile.cache.api import NO_VALUE, CachedValue

from provcfg._cache import BoundedMemoryBackend, build_region, close_region
from provcfg._manifest import MemoryRegionSpec
from provcfg._metrics import Metrics


def _backend(max_size: int, sink: list[tuple[str, Any]] | None = None) -> BoundedMemoryBackend:
    on_discard = None if sink is None else (lambda key, value: sink.append((key, value)))
    return BoundedMemoryBackend({"max_size": max_size, "on_discard": on_discard})


def _memory(max_size: int = 16, ttl: float | None = None) -> MemoryRegionSpec:
    return MemoryRegionSpec(backend="memory", max_size=max_size, ttl=ttl)


def test_lru_holds_at_most_max_size_and_evicts_least_recently_used() -> None:
    """Beyond max_size the least recently *used* (not inserted) entry leaves first."""
    gone: list[tuple[str, Any]] = []
    backend = _backend(3, gone)
    for key in "abc":
        backend.set(key, key.upper())
    assert backend.get("a") == "A"  # a becomes most recent: order b, c, a
    backend.set("d", "D")
    assert len(backend) == 3
    assert backend.get("b") is NO_VALUE
    assert backend.keys() == ["c", "a", "d"]
    assert gone == [("b", "B")]


def test_set_multi_get_multi_delete_multi() -> None:
    """The _multi forms store, read in order with NO_VALUE gaps, and remove with on_discard."""
    gone: list[tuple[str, Any]] = []
    backend = _backend(10, gone)
    backend.set_multi({"a": 1, "b": 2, "c": 3})
    assert backend.get_multi(["c", "x", "a"]) == [3, NO_VALUE, 1]
    backend.delete_multi(["a", "x", "c"])
    assert backend.keys() == ["b"]
    assert gone == [("a", 1), ("c", 3)]


def test_set_multi_beyond_bound_evicts_oldest() -> None:
    """A set_multi larger than the room left evicts the oldest entries, each reported once."""
    gone: list[tuple[str, Any]] = []
    backend = _backend(2, gone)
    backend.set_multi({"a": 1, "b": 2, "c": 3, "d": 4})
    assert backend.keys() == ["c", "d"]
    assert gone == [("a", 1), ("b", 2)]


def test_on_discard_on_replace_but_not_for_the_same_object() -> None:
    """Replacing a value by another object discards the old one; re-setting it does not."""
    gone: list[tuple[str, Any]] = []
    backend = _backend(4, gone)
    first, second = object(), object()
    backend.set("k", CachedValue(first, {"ct": 1.0, "v": 2}))
    backend.set("k", CachedValue(first, {"ct": 2.0, "v": 2}))  # same payload, new wrapper
    assert gone == []
    backend.set("k", CachedValue(second, {"ct": 3.0, "v": 2}))
    assert gone == [("k", first)]  # the payload, unwrapped from CachedValue


def test_on_discard_on_delete_and_clear() -> None:
    """delete and clear hand every removed value to on_discard; deleting a missing key does not."""
    gone: list[tuple[str, Any]] = []
    backend = _backend(4, gone)
    backend.set_multi({"a": 1, "b": 2, "c": 3})
    backend.delete("b")
    backend.delete("missing")
    backend.clear()
    assert gone == [("b", 2), ("a", 1), ("c", 3)]
    assert len(backend) == 0


def test_failing_on_discard_does_not_break_the_cache() -> None:
    """An on_discard that raises is logged and swallowed; the write it happened in still lands."""

    def explode(key: str, value: Any) -> None:
        raise RuntimeError("close failed")

    backend = BoundedMemoryBackend({"max_size": 1, "on_discard": explode})
    backend.set("a", 1)
    backend.set("b", 2)
    assert backend.get("b") == 2
    assert backend.get("a") is NO_VALUE


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_rejects_a_bad_max_size(bad: object) -> None:
    """max_size must be an int >= 1."""
    with pytest.raises(ValueError, match="max_size"):
        BoundedMemoryBackend({"max_size": bad})


def test_registered_with_dogpile_by_name() -> None:
    """dogpile's public registry knows provcfg.memory_lru, so a plain make_region can use it."""
    region = make_region().configure("provcfg.memory_lru", arguments={"max_size": 2})
    for key in "abc":
        region.set(key, key)
    assert isinstance(region.backend, BoundedMemoryBackend)
    assert [region.get(k) for k in "abc"] == [NO_VALUE, "b", "c"]


def test_threads_hammering_keep_the_bound_and_report_every_discard_once() -> None:
    """8 threads mixing set/get/delete keep len <= max_size and every value leaves exactly once."""
    gone: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def record(key: str, value: Any) -> None:
        with lock:
            gone.append((key, value))

    backend = BoundedMemoryBackend({"max_size": 32, "on_discard": record})
    stored: list[object] = []
    start = threading.Barrier(8)
    over_bound = []

    def work(worker: int) -> None:
        start.wait()
        for i in range(3000):
            key = f"k{(i * 7 + worker) % 97}"
            value = (worker, i)
            with lock:
                stored.append(value)
            backend.set(key, value)
            backend.get(f"k{i % 97}")
            if i % 11 == 0:
                backend.delete(f"k{(i + worker) % 97}")
            if len(backend) > 32:
                over_bound.append(len(backend))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    backend.clear()
    assert not over_bound
    assert sorted(v for _, v in gone) == sorted(stored)  # nothing lost, nothing twice


def test_memory_region_counts_hits_and_misses_once_per_call() -> None:
    """get and get_or_create count one hit or miss per call; dogpile reads twice on a miss."""
    metrics = Metrics()
    region = build_region("mem", _memory(), namespace="gen1", metrics=metrics)
    assert region.get("a") is NO_VALUE
    assert region.get_or_create("a", lambda: 1) == 1
    assert region.get_or_create("a", lambda: 2) == 1
    assert region.get("a") == 1
    assert region.get_multi(["a", "b"]) == [1, NO_VALUE]
    assert metrics.counter("cache_miss", "mem") == 3
    assert metrics.counter("cache_hit", "mem") == 3
    assert metrics.snapshot()["gauges"]["cache_entries.mem"] == 1
    close_region(region)
    assert "cache_entries.mem" not in metrics.snapshot()["gauges"]


def test_memory_region_keys_carry_region_and_namespace() -> None:
    """The backend stores keys as provcfg:{region}:{namespace}:{key}, seen by on_discard."""
    gone: list[tuple[str, Any]] = []
    region = build_region(
        "providers",
        _memory(max_size=1),
        namespace="d1g35t",
        metrics=Metrics(),
        on_discard=lambda key, value: gone.append((key, value)),
    )
    region.set("api", "instance-1")
    region.set("cli", "instance-2")
    assert gone == [("provcfg:providers:d1g35t:api", "instance-1")]
    close_region(region)
    assert gone[-1] == ("provcfg:providers:d1g35t:cli", "instance-2")


def test_ttl_expires_entries() -> None:
    """An entry older than the region's ttl reads as a miss and get_or_create recreates it."""
    region = build_region("ttl", _memory(ttl=60.0), namespace="gen1", metrics=Metrics())
    region.set("fresh", "f")
    # Age an entry through the public backend API instead of sleeping a minute.
    stored_key = region.key_mangler("old")
    region.backend.set(stored_key, CachedValue("o", {"ct": time.time() - 61, "v": 2}))
    assert region.get("fresh") == "f"
    assert region.get("old") is NO_VALUE
    assert region.get_or_create("old", lambda: "new") == "new"


def test_tiny_ttl_expires_for_real() -> None:
    """With ttl 300 ms, dogpile's own clock expires the entry after it has passed."""
    # Long enough that the first read cannot miss on a loaded machine; the sleep lets the
    # clock pass the ttl (it synchronises with nothing).
    region = build_region("tiny", _memory(ttl=0.3), namespace="gen1", metrics=Metrics())
    region.set("k", "v")
    assert region.get("k") == "v"
    time.sleep(0.35)
    assert region.get("k") is NO_VALUE


def test_ttl_zero_means_never_served() -> None:
    """ttl 0 expires at once (dogpile alone would read 0 as 'never expire')."""
    region = build_region("zero", _memory(ttl=0.0), namespace="gen1", metrics=Metrics())
    region.set("k", "v")
    assert region.get("k") is NO_VALUE
