"""Hot reload against real files and real watchfiles: save styles, bursts, failures, diffs."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

import pytest
import structlog

import provcfg._reload
from provcfg._errors import ManifestError, RuntimeClosedError
from provcfg._manifest import AnthropicApiSpec
from provcfg._reload import LiveRuntime, watch
from provcfg.plugin import BaseProvider, KindRegistry, ProviderKind
from tests.support_reload import (
    SAVE_STYLES,
    api_manifest,
    configmap_update,
    configmap_write,
    os_replace,
    read_text,
    settled,
    until,
    until_event,
    write_in_place,
)

TWO = {"api": 100, "local": 100}


def _max_tokens(live: LiveRuntime, name: str = "api") -> int:
    return int(live.runtime.manifest.providers[name].max_tokens)


@pytest.fixture
def manifest_path(tmp_path: Path) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(api_manifest(TWO))
    return path


@pytest.mark.parametrize("style", list(SAVE_STYLES))
async def test_each_save_style_reloads_and_keeps_hearing(manifest_path: Path, style: str) -> None:
    """Every editor's way of saving is heard, twice in a row (an atomic save does not deafen)."""
    save = SAVE_STYLES[style]
    async with watch(manifest_path, environ={}) as live:
        first = live.runtime
        await settled(live)  # heard by the watch, not by the start-up re-check
        save(manifest_path, api_manifest({"api": 200, "local": 100}))
        second = await live.wait_for_generation(2)
        assert second is not first
        assert dict(second.changes) == {"api": "rebuilt", "local": "unchanged"}
        assert _max_tokens(live) == 200
        save(manifest_path, api_manifest({"api": 300, "local": 100}))
        await live.wait_for_generation(3)
        assert _max_tokens(live) == 300
        assert live.last_error is None


async def test_truncate_then_write_keeps_last_good_while_empty(manifest_path: Path) -> None:
    """An empty file seen mid-save is "not yet": the last good runtime stays, then recovers."""
    async with watch(manifest_path, environ={}) as live:
        first = live.runtime
        with open(manifest_path, "w"):
            pass  # truncated, nothing written yet
        event = await until_event(live, lambda e: not e.ok)
        assert "empty" in event.error
        assert live.runtime is first and not first.closed
        assert isinstance(live.last_error, ManifestError)
        write_in_place(manifest_path, api_manifest({"api": 222, "local": 100}))
        await live.wait_for_generation(2)
        assert _max_tokens(live) == 222
        assert live.last_error is None


async def test_delete_then_recreate(manifest_path: Path) -> None:
    """A deleted file keeps the last good runtime; re-creating it reloads."""
    async with watch(manifest_path, environ={}) as live:
        first = live.runtime
        os.unlink(manifest_path)
        event = await until_event(live, lambda e: not e.ok)
        assert "not found" in event.error
        assert live.runtime is first and live.generation == 1
        write_in_place(manifest_path, api_manifest({"api": 100, "local": 100, "new": 5}))
        runtime = await live.wait_for_generation(2)
        assert runtime.changes["new"] == "added"
        assert live.last_error is None


async def test_recreated_with_the_live_content_clears_the_error(manifest_path: Path) -> None:
    """Re-creating the file with the content already live clears last_error without a rebuild."""
    text = read_text(manifest_path)
    async with watch(manifest_path, environ={}) as live:
        os.unlink(manifest_path)
        await until_event(live, lambda e: not e.ok)
        write_in_place(manifest_path, text)
        event = await until_event(live, lambda e: e.ok)
        assert event.generation == 1 and dict(event.changes) == {}
        assert live.last_error is None
        values = live.runtime.metrics.snapshot()["values"]
        assert values["config_last_reload_successful"] == 1


async def test_configmap_symlink_layout(tmp_path: Path) -> None:
    """A ConfigMap update renames only ..data; the watcher hears it and reloads, every time."""
    path = configmap_write(tmp_path, "providers.yaml", api_manifest(TWO), "2026_01_01_00_00_00.1")
    async with watch(path, environ={}) as live:
        await settled(live)
        configmap_update(
            tmp_path, "providers.yaml", api_manifest({"api": 2, "local": 100}), "2026_01_01.2"
        )
        await live.wait_for_generation(2)
        assert _max_tokens(live) == 2
        configmap_update(
            tmp_path, "providers.yaml", api_manifest({"api": 3, "local": 100}), "2026_01_01.3"
        )
        runtime = await live.wait_for_generation(3)
        assert dict(runtime.changes) == {"api": "rebuilt", "local": "unchanged"}


async def test_burst_of_50_writes_ends_with_the_last_content_live(manifest_path: Path) -> None:
    """Fifty writes in a row, mixed styles: the last content is what ends up live."""
    styles: list[Callable[[Path, str], None]] = [write_in_place, os_replace]
    async with watch(manifest_path, environ={}) as live:
        for i in range(1, 51):
            styles[i % 2](manifest_path, api_manifest({"api": 1000 + i, "local": 100}))
        await until_event(live, lambda e: e.ok and _max_tokens(live) == 1050)
        assert live.last_error is None
        assert 2 <= live.generation <= 51
        counters = live.runtime.metrics.snapshot()["counters"]
        assert counters["reload_success"]["_"] == live.generation - 1


async def test_bad_then_good(manifest_path: Path) -> None:
    """A bad save keeps the last good runtime, reports file:line, counts; a good save recovers."""
    async with watch(manifest_path, environ={}) as live:
        first = live.runtime
        with structlog.testing.capture_logs() as logs:
            os_replace(
                manifest_path, "version: 1\nproviders:\n  api: {kind: anthropic-api, x: 1}\n"
            )
            event = await until_event(live, lambda e: not e.ok)
        assert event.generation == 1
        assert event.problems and all(p.startswith(f"{manifest_path}:3:") for p in event.problems)
        assert live.runtime is first and not first.closed
        failures = [entry for entry in logs if entry["event"] == "config_reload_failed"]
        assert len(failures) == 1 and failures[0]["problems"] == list(event.problems)
        snapshot = live.runtime.metrics.snapshot()
        assert snapshot["counters"]["reload_failure"]["_"] == 1
        assert snapshot["values"]["config_last_reload_successful"] == 0
        assert str(manifest_path) in snapshot["values"]["config_last_reload_error"]

        os_replace(manifest_path, api_manifest({"api": 7, "local": 100}))
        await live.wait_for_generation(2)
        snapshot = live.runtime.metrics.snapshot()
        assert live.last_error is None
        assert snapshot["values"]["config_last_reload_successful"] == 1
        assert snapshot["values"]["config_last_reload_error"] == ""
        assert snapshot["values"]["config_generation"] == 2
        assert snapshot["counters"]["reload_success"]["_"] == 1
        assert snapshot["latency"]["reload_seconds"]["_"]["count"] == 1


async def test_failure_text_holds_no_secret(manifest_path: Path) -> None:
    """A failed reload's event, metric value and log line never hold a secret's value."""
    secret = "sk-ant-very-secret-value-123"
    good = api_manifest(TWO).replace("api_key: stub", f"api_key: '{secret}'")
    write_in_place(manifest_path, good)
    async with watch(manifest_path, environ={"MY_API_KEY": "other-secret-456"}) as live:
        bad = good.replace("max_tokens: 100", f"max_tokens: '{secret}'", 1)
        bad += "monitoring: {alerts: [{metric: nope, note: other-secret-456}]}\n"
        with structlog.testing.capture_logs() as logs:
            os_replace(manifest_path, bad)
            event = await until_event(live, lambda e: not e.ok)
        texts = [event.error, *event.problems, str(live.runtime.metrics.snapshot()), str(logs)]
        for text in texts:
            assert secret not in text
            assert "other-secret-456" not in text


async def test_missing_variable_keeps_last_good(manifest_path: Path) -> None:
    """A ${VAR} that is not set fails the reload with its place; the old runtime stays."""
    async with watch(manifest_path, environ={}) as live:
        os_replace(manifest_path, api_manifest(TWO).replace("api_key: stub", "api_key: '${NOPE}'"))
        event = await until_event(live, lambda e: not e.ok)
        assert any("NOPE" in p and p.startswith(f"{manifest_path}:") for p in event.problems)
        assert live.generation == 1


async def test_identical_content_does_not_reload(manifest_path: Path) -> None:
    """Saving the same bytes again (or touching the file) builds nothing."""
    async with watch(manifest_path, environ={}) as live:
        metrics = live.runtime.metrics
        # The re-check after the watcher starts finds the content unchanged.
        await until(lambda: metrics.counter("reload_unchanged") >= 1)
        before = metrics.counter("reload_unchanged")
        os_replace(manifest_path, read_text(manifest_path))
        await until(lambda: metrics.counter("reload_unchanged") > before)
        os.utime(manifest_path)
        await until(lambda: metrics.counter("reload_unchanged") > before + 1)
        assert live.generation == 1
        assert metrics.counter("reload_success") == 0


async def test_rejected_content_is_not_retried_until_it_changes(manifest_path: Path) -> None:
    """Touching a file whose content was rejected does not log the same failure again."""
    async with watch(manifest_path, environ={}) as live:
        metrics = live.runtime.metrics
        os_replace(manifest_path, "version: 1\n")
        await until_event(live, lambda e: not e.ok)
        before = metrics.counter("reload_unchanged")
        os.utime(manifest_path)
        await until(lambda: metrics.counter("reload_unchanged") > before)
        assert metrics.counter("reload_failure") == 1


async def test_changing_one_of_ten_providers_rebuilds_exactly_that_one(
    manifest_path: Path,
) -> None:
    """Nine unchanged providers keep their very instances; the changed one is new."""
    ten = {f"p{i}": 100 for i in range(10)}
    write_in_place(manifest_path, api_manifest(ten))
    async with watch(manifest_path, environ={}) as live:
        old = {name: live.runtime.provider(name) for name in ten}
        os_replace(manifest_path, api_manifest({**ten, "p3": 333}))
        runtime = await live.wait_for_generation(2)
        assert [n for n, state in runtime.changes.items() if state != "unchanged"] == ["p3"]
        assert runtime.changes["p3"] == "rebuilt"
        for name in ten:
            assert (runtime.provider(name) is old[name]) == (name != "p3"), name
        await live.drain()
        assert old["p3"]._closed is True
        assert not any(old[n]._closed for n in ten if n != "p3")


async def test_added_and_removed_providers_are_reported(manifest_path: Path) -> None:
    """changes names providers added and removed by a save."""
    async with watch(manifest_path, environ={}) as live:
        os_replace(manifest_path, api_manifest({"api": 100, "fresh": 1}))
        runtime = await live.wait_for_generation(2)
        assert dict(runtime.changes) == {"api": "unchanged", "fresh": "added", "local": "removed"}


async def test_events_iterator_and_closing(manifest_path: Path) -> None:
    """events() yields each outcome in order and ends when the watch closes; the runtime closes."""
    live = watch(manifest_path, environ={})
    async with live:
        stream = live.events()
        os_replace(manifest_path, api_manifest({"api": 1, "local": 100}))
        event = await anext(stream)
        assert event.ok and event.generation == 2
        assert event.latency_s is not None and event.latency_s >= 0
        # provcfg's own share: noticed -> live, inside the save -> live latency.
        assert event.build_s is not None and 0 <= event.build_s <= event.latency_s
        assert "api rebuilt" in event.summary()
        os_replace(manifest_path, "nope: [")
        event = await anext(stream)
        assert not event.ok and "stays live" in event.summary()
    assert live.runtime.closed
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    with pytest.raises(RuntimeClosedError):
        await live.reload_event()


async def test_build_s_is_provcfgs_share_not_the_wait_before_it(manifest_path: Path) -> None:
    """latency_s counts from the save (the file's mtime), build_s from provcfg noticing
    it: for a file saved half a second before reload() is called, the first holds the
    half second and the second does not."""
    async with watch(manifest_path, environ={}, step=1.0, debounce=1.0) as live:
        # The first outcome, whoever gets there first: reload() now, or the slow watcher
        # (one-second steps) on a machine too loaded to call reload() before it.
        first = asyncio.ensure_future(live.reload_event(timeout=10))
        os_replace(manifest_path, api_manifest({"api": 7, "local": 100}))
        saved = time.time() - 0.5
        os.utime(manifest_path, (saved, saved))
        await live.reload()
        event = await first
        assert event.ok and event.generation == 2
        assert event.latency_s is not None and event.latency_s >= 0.5
        assert event.build_s is not None and event.build_s < event.latency_s - 0.4


async def test_invalid_file_at_start_raises(tmp_path: Path) -> None:
    """Entering the watch with an invalid file raises ManifestError and leaves nothing running."""
    path = tmp_path / "providers.yaml"
    path.write_text("version: 1\nproviders: {}\n")
    with pytest.raises(ManifestError) as caught:
        async with watch(path, environ={}):
            pass
    assert caught.value.problems[0].file == str(path)


async def test_wait_for_generation_times_out_with_the_last_error(manifest_path: Path) -> None:
    """wait_for_generation gives up with a TimeoutError that quotes the last failure."""
    async with watch(manifest_path, environ={}) as live:
        os_replace(manifest_path, "version: 1\n")
        await until_event(live, lambda e: not e.ok)
        with pytest.raises(TimeoutError, match="last error"):
            await live.wait_for_generation(2, timeout=0.2)


def test_public_names() -> None:
    """The module exports exactly its public API."""
    assert sorted(provcfg._reload.__all__) == [
        "LiveRuntime",
        "ReloadEvent",
        "watch",
    ]


class _EditOnPrepareSpec(AnthropicApiSpec):
    kind: Literal["edit-on-prepare"]  # type: ignore[assignment]


class _EditOnPrepare(BaseProvider):
    """An eager provider whose preparation edits the manifest: an edit during start-up."""

    edits: ClassVar[list[tuple[Path, str]]] = []

    def prepare(self) -> None:
        while self.edits:
            path, text = self.edits.pop()
            os_replace(path, text)


async def test_edit_made_during_start_up_is_not_lost(manifest_path: Path) -> None:
    """A save landing before the watcher listens is caught by the re-check once it does."""
    kinds = {kind.name: kind for kind in KindRegistry.discover().kinds()}
    kinds["edit-on-prepare"] = ProviderKind("edit-on-prepare", _EditOnPrepareSpec, _EditOnPrepare)
    eager = "  starter: {kind: edit-on-prepare, init: eager}\n"
    write_in_place(manifest_path, api_manifest(TWO) + eager)
    _EditOnPrepare.edits.append((manifest_path, api_manifest({"api": 9, "local": 100}) + eager))
    async with watch(manifest_path, environ={}, registry=KindRegistry(kinds)) as live:
        runtime = await live.wait_for_generation(2)
        assert runtime.changes["api"] == "rebuilt"
        assert runtime.changes["starter"] == "unchanged"


async def test_current_runtime_metrics_and_logs_after_good_and_bad_saves(
    manifest_path: Path,
) -> None:
    """The live runtime's snapshot holds generation, success flag, success time and failure
    detail after each save; log events carry FILE:LINE:COL problems and never the secret."""
    secret = "sk-ant-observable-secret-42"
    environ = {"ANTHROPIC_API_KEY": secret}
    good = api_manifest(TWO).replace("api_key: stub", "api_key: '${ANTHROPIC_API_KEY}'")
    write_in_place(manifest_path, good)
    async with watch(manifest_path, environ=environ) as live:
        await settled(live)
        saved = time.time()
        with structlog.testing.capture_logs() as logs:
            os_replace(manifest_path, good.replace("max_tokens: 100", "max_tokens: 5", 1))
            await live.wait_for_generation(2)
        values = live.runtime.metrics.snapshot()["values"]
        assert values["config_generation"] == 2
        assert values["config_last_reload_successful"] == 1
        assert saved <= values["config_last_reload_success_timestamp"] <= time.time()
        assert values["config_last_reload_error"] == ""
        (reloaded,) = [e for e in logs if e["event"] == "config_reloaded"]
        assert reloaded["generation"] == 2 and reloaded["file"] == str(manifest_path)
        assert reloaded["changes"] == {"api": "rebuilt", "local": "unchanged"}
        assert 0 <= reloaded["build_ms"] <= reloaded["latency_ms"]
        succeeded_at = values["config_last_reload_success_timestamp"]

        bad = good.replace("max_tokens: 100", "max_tokens: '${ANTHROPIC_API_KEY}'", 1)
        with structlog.testing.capture_logs() as logs:
            os_replace(manifest_path, bad)
            event = await until_event(live, lambda e: not e.ok)
        snapshot = live.runtime.metrics.snapshot()
        values = snapshot["values"]
        assert values["config_generation"] == 2
        assert values["config_last_reload_successful"] == 0
        assert values["config_last_reload_success_timestamp"] == succeeded_at
        assert values["config_last_reload_error"].startswith(f"{manifest_path}:3:")
        assert snapshot["counters"]["reload_failure"]["_"] == 1
        (failed,) = [e for e in logs if e["event"] == "config_reload_failed"]
        assert failed["log_level"] == "warning" and failed["generation"] == 2
        assert failed["problems"] == list(event.problems)
        assert all(p.startswith(f"{manifest_path}:3:") for p in failed["problems"])
        assert secret not in str(logs) and secret not in str(snapshot)
        assert secret not in repr(live.last_error)
