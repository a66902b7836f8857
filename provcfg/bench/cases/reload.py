"""Hot reload: save-to-live latency beside its floor, and how cost grows to 5,000 providers.

``reload.save-to-live``: a 10-provider manifest saved with temp file + ``os.replace``;
the reference is watchfiles used directly (the same step and debounce) seeing the
save, then read + parse + ``Runtime.build``; the floor is the read + parse + build
alone; the subject is the wall time from the save to the new generation being live
under ``provcfg.watch``'s defaults; watchfiles' own defaults and a burst of
writes beside them. Each timed save is made half a watcher step after a check the
watcher was seen to make (:func:`_mid_step`), the average wait of a save made at a
random moment, so the wait is the same every round and the ratio shows the work. Each round also
checks that one change rebuilds exactly one provider and keeps the other nine
instances.

``scale.providers-N``: ``load()`` of N lazy providers, and the rebuild after one of
them changed, against parsing the same YAML with libyaml's CSafeLoader (linear in N).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provcfg.bench._case import Budget, Case, CaseContext, Contender, Role, Sample, TimeFunc
from provcfg.bench.cases._fixtures import scratch

if TYPE_CHECKING:
    from provcfg._reload import LiveRuntime

NAMES = [f"p{i}" for i in range(10)]


def manifest(count: int, changed: int) -> str:
    """``count`` anthropic-api providers; provider 3's max_tokens encodes ``changed``."""
    lines = ["version: 1", "providers:"]
    for i in range(count):
        tokens = 1000 + changed if i == 3 else 1000
        lines.append(
            f"  p{i}: {{kind: anthropic-api, base_url: 'http://127.0.0.1:9', api_key: stub, "
            f"transport: fast, max_tokens: {tokens}}}"
        )
    return "\n".join(lines) + "\n"


def save(path: Path, text: str) -> None:
    """Replace ``path`` atomically, as editors do."""
    tmp = path.with_name(".providers.yaml.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _Watched:
    """One contender's own folder and manifest (watchers never see each other's saves)."""

    def __init__(self, root: Path, name: str) -> None:
        self.folder = root / name
        self.folder.mkdir()
        self.path = self.folder / "providers.yaml"
        self.saves = 0
        save(self.path, manifest(10, 0))

    def next_save(self) -> None:
        self.saves += 1
        save(self.path, manifest(10, self.saves))


async def _mid_step(checked_at: Callable[[], float | None], since: float, step: float) -> None:
    """Wait for a watcher's first check after ``since``, then until half a step after it.

    watchfiles checks for changes every ``step`` and reports them one step after the
    first check that saw them, so a save waits between one and two steps, a saw-tooth
    of the moment it lands: the same pause after each reload put every save at the
    same point of it, and that point sat a few ms before a check, so a slower build
    pushed the next save past the check and shortened its wait by as much as it
    added (the slowdown vanished; a larger one jumped a whole step). Even counted
    from the reload, the step clock moves: each check waits for the GIL, which a
    reload running in another thread can hold for a switch interval (5 ms). So each
    timed save is made half a step after a check *seen* to happen, where a save made
    at a random moment waits on average, far from either edge.
    """
    limit = max(2.0, 40 * step)
    try:
        async with asyncio.timeout(limit):
            while True:
                checked = checked_at()
                if checked is not None and checked > since:
                    delay = checked + step / 2 - time.perf_counter()
                    if delay > 0.001:
                        await asyncio.sleep(delay)
                        return
                    since = checked  # seen too late: the next check
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise RuntimeError(
            f"the watcher made no check for {limit:g} s (it checks every {step * 1000:g} ms): "
            "stopped, or its thread is starved"
        ) from None


@asynccontextmanager
async def _save_to_live(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import watchfiles

    from provcfg._loading import parse_manifest_text
    from provcfg._reload import DEFAULT_DEBOUNCE, DEFAULT_STEP, LiveRuntime
    from provcfg._runtime import Runtime
    from provcfg._watchfs import _StopSignal

    async with contextlib.AsyncExitStack() as stack:
        root = stack.enter_context(scratch())

        def build_after(target: _Watched, previous: Any) -> Any:
            m = parse_manifest_text(target.path.read_bytes(), file=str(target.path), environ={})
            return Runtime.build(m, previous, file=str(target.path))

        floor_file = _Watched(root, "floor")
        floor_rt: list[Any] = [None]

        async def floor(loops: int) -> Sample:
            elapsed = 0.0
            for _ in range(loops):
                floor_file.next_save()
                start = time.perf_counter()
                rt = build_after(floor_file, floor_rt[0])
                elapsed += time.perf_counter() - start
                if floor_rt[0] is not None:
                    await floor_rt[0].aclose()
                floor_rt[0] = rt
            return Sample(elapsed / loops)

        # The reference: watchfiles itself (provcfg's step and debounce) seeing the save,
        # then read, parse and build: the least any reloader does. Like provcfg's
        # watcher it waits for the next save again before it builds.
        direct_file = _Watched(root, "direct")
        # provcfg's own stop event for watchfiles: it keeps when it was last polled,
        # once per step, as the watch checks for changes.
        direct_checks = _StopSignal(asyncio.get_running_loop(), on_ready=lambda: None)
        changes = watchfiles.awatch(
            direct_file.folder,
            debounce=int(DEFAULT_DEBOUNCE * 1000),
            step=int(DEFAULT_STEP * 1000),
            stop_event=direct_checks,
        )
        pending: list[Any] = [asyncio.ensure_future(anext(changes))]
        direct_rt: list[Any] = [None]

        async def direct_once() -> float:
            """One save seen and built: seconds from the save to the build done."""
            start = time.perf_counter()
            direct_file.next_save()
            await pending[0]
            pending[0] = asyncio.ensure_future(anext(changes))
            rt = build_after(direct_file, direct_rt[0])
            elapsed = time.perf_counter() - start
            if direct_rt[0] is not None:
                await direct_rt[0].aclose()
            direct_rt[0] = rt
            return elapsed

        async def direct(loops: int) -> Sample:
            elapsed = 0.0
            for _ in range(loops):
                await direct_once()
                await _mid_step(lambda: direct_checks.checked_at, time.perf_counter(), DEFAULT_STEP)
                elapsed += await direct_once()
            return Sample(elapsed / loops)

        async def close_direct() -> None:
            pending[0].cancel()
            with contextlib.suppress(BaseException):
                await pending[0]
            await changes.aclose()
            for rt in (direct_rt[0], floor_rt[0]):
                if rt is not None:
                    await rt.aclose()

        stack.push_async_callback(close_direct)

        async def open_live(
            name: str, debounce: float, step: float, role: Role
        ) -> tuple[_Watched, LiveRuntime]:
            spin = ctx.slowed(role)

            # The bench lives in the package and reaches into the watch on purpose: a
            # subclass to put the spin in the build, the watcher for its last check.
            class Slowed(LiveRuntime):
                """provcfg.watch with the calibration's spin inside each reload's build
                (the first load's and skipped attempts' too: untimed, harmless)."""

                def _read_and_build(self, previous: Any) -> Any:
                    if spin is not None:
                        spin()
                    return super()._read_and_build(previous)

            target = _Watched(root, name)
            live = Slowed(target.path, environ={}, debounce=debounce, step=step)
            await stack.enter_async_context(live)
            return target, live

        def live_run(target: _Watched, live: LiveRuntime, step: float) -> TimeFunc:
            def checked_at() -> float | None:
                return None if live._watcher is None else live._watcher.checked_at

            async def once() -> tuple[float, Any]:
                """One save until its generation is live: (seconds, the event)."""
                waiting = asyncio.ensure_future(live.reload_event(timeout=10))
                await asyncio.sleep(0)
                start = time.perf_counter()
                target.next_save()
                event = await waiting
                return time.perf_counter() - start, event

            async def run(loops: int) -> Sample:
                elapsed = reported = 0.0
                rebuilt = kept = 0
                for _ in range(loops):
                    await once()
                    await _mid_step(checked_at, time.perf_counter(), step)
                    before = {n: live.runtime.provider(n) for n in NAMES}
                    seconds, event = await once()
                    elapsed += seconds
                    reported += event.latency_s or 0.0
                    rt = live.runtime
                    rebuilt += sum(1 for s in rt.changes.values() if s == "rebuilt")
                    kept += sum(1 for n in NAMES if n != "p3" and rt.provider(n) is before[n])
                extra = {
                    "event_latency": reported / loops,
                    "rebuilt": rebuilt / loops,
                    "kept_of_9": kept / loops,
                }
                return Sample(elapsed / loops, extra)

            return run

        ours, ours_live = await open_live("provcfg", DEFAULT_DEBOUNCE, DEFAULT_STEP, "subject")
        theirs, theirs_live = await open_live("defaults", 1.6, 0.05, "other")
        burst_file, burst_live = await open_live("burst", DEFAULT_DEBOUNCE, DEFAULT_STEP, "other")

        async def burst(loops: int) -> Sample:
            elapsed = 0.0
            for _ in range(loops):
                for _ in range(50):
                    burst_file.next_save()
                target = 1000 + burst_file.saves
                start = time.perf_counter()
                while _max_tokens(burst_live, "p3") != target:
                    await burst_live.reload_event(timeout=10)
                elapsed += time.perf_counter() - start
            return Sample(elapsed / loops)

        await asyncio.sleep(0.2)  # every watcher is up before the first save
        yield [
            Contender(
                "watchfiles-direct",
                "reference",
                direct,
                "watchfiles.awatch (same step/debounce) sees the save, then read + parse + build",
            ),
            Contender(
                "save-to-live",
                "subject",
                live_run(ours, ours_live, DEFAULT_STEP),
                "save -> new generation live, provcfg defaults (step 30 ms)",
            ),
            Contender(
                "floor", "floor", floor, "read + hash + parse + validate + Runtime.build alone"
            ),
            Contender(
                "watchfiles-defaults",
                "other",
                live_run(theirs, theirs_live, 0.05),
                "the same with watchfiles' defaults (debounce 1.6 s, step 50 ms)",
            ),
            Contender("burst-50", "other", burst, "50 back-to-back saves: last save -> live"),
        ]


def _max_tokens(live: LiveRuntime, name: str) -> object:
    return getattr(live.runtime.manifest.providers[name], "max_tokens", None)


def _scale(count: int) -> Case:
    @asynccontextmanager
    async def build(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
        import yaml

        import provcfg
        from provcfg._loading import parse_manifest_text
        from provcfg._runtime import Runtime

        n = min(count, 50) if ctx.smoke else count
        with scratch() as folder:
            path = folder / "providers.yaml"
            text = manifest(n, 0)
            save(path, text)
            changed = manifest(n, 1).encode()
            spin = ctx.slowed("subject")
            clock = ctx.clock

            async def parse(loops: int) -> Sample:
                start = clock()
                for _ in range(loops):
                    yaml.load(text, Loader=yaml.CSafeLoader)
                return Sample((clock() - start) / loops)

            async def load(loops: int) -> Sample:
                elapsed = 0.0
                for _ in range(loops):
                    start = clock()
                    rt = provcfg.load(path)
                    if spin is not None:
                        spin()
                    elapsed += clock() - start
                    await rt.aclose()
                return Sample(elapsed / loops)

            async def rebuild_one(loops: int) -> Sample:
                elapsed = 0.0
                for _ in range(loops):
                    old = provcfg.load(path)
                    start = clock()
                    m = parse_manifest_text(changed, file=str(path), environ={})
                    new = Runtime.build(m, old, file=str(path))
                    if spin is not None:
                        spin()
                    elapsed += clock() - start
                    await old.aclose()
                    await new.aclose()
                return Sample(elapsed / loops)

            yield [
                Contender(
                    "yaml-CSafeLoader",
                    "reference",
                    parse,
                    f"yaml.load of the same {n}-provider text (libyaml, no checks)",
                ),
                Contender("load", "subject", load, f"provcfg.load() of {n} lazy providers"),
                Contender(
                    "rebuild-one",
                    "subject",
                    rebuild_one,
                    f"parse + Runtime.build after one of {n} providers changed",
                ),
            ]

    return Case(
        name=f"scale.providers-{count}",
        title=f"{count:,} providers: load() and a one-provider reload vs parsing the YAML",
        build=build,
        threshold=0.25,  # at 10 %: 15/15 of +15 %, but +5.9 % cross-session drift
        gc_off=True,
        clock="cpu",
        sample_seconds=0.01,
        repeats=3,
        rounds={"quick": (6, 30), "full": (10, 60)},
        seconds={"quick": 4.0, "full": 20.0},
        suites=("quick", "full") if count == 100 else ("full",),
        note="linear in the number of providers: compare the ratio across sizes",
    )


CASES = [
    Case(
        name="reload.save-to-live",
        title="save -> new config live vs watchfiles used directly + read, parse, build",
        build=_save_to_live,
        sample_seconds=0.0,
        rounds={"quick": (6, 20), "full": (30, 60)},
        seconds={"quick": 7.0, "full": 40.0},
        # Each timed save lands half a step after a check the watcher was seen to make
        # (see _mid_step), so the wait is the same every round; calibration in
        # docs/performance.md.
        threshold=0.10,
        budgets=(Budget("save-to-live", "<= 300 ms", max_seconds=0.3),),
        note="each timed save lands mid-step (30 ms), where a save at a random moment waits "
        "on average; each round checks 1 rebuilt, 9/9 kept",
    ),
    *(_scale(n) for n in (10, 100, 1000, 5000)),
]
