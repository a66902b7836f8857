"""The gate end to end on a real, cheap case: an inserted slowdown fails it, identical code passes.

The case times a small pure-Python statement against a copy of itself; the slowdown
is a calibrated :class:`~provcfg.bench.Spin` pasted into the subject's timed statement
(a real 60 % of the operation's time: generous, so one run decides). Behaviour is
asserted (the verdicts), never a time.
"""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from provcfg.bench import Case, CaseContext, Contender, RunResult, Spin, statement_contender
from provcfg.bench._gate import compare, gate_failed
from provcfg.bench._runner import run_case_sync

_STMT = "sorted(data)"


@asynccontextmanager
async def _build(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    names = {"data": list(range(300, 0, -1))}
    yield [
        statement_contender("reference", "reference", _STMT, names, ctx),
        statement_contender("subject", "subject", _STMT, names, ctx),
    ]


CASE = Case(
    name="synthetic.sorted",
    title="sorted() vs itself",
    build=_build,
    sample_seconds=0.002,
    repeats=3,
    clock="cpu",
    rounds={"quick": (25, 25), "full": (25, 25)},
    seconds={"quick": 0.0, "full": 0.0},
)


def _run(ctx: CaseContext) -> RunResult:
    result = run_case_sync(CASE, "quick", ctx)
    assert result.error is None, result.error
    return RunResult(suite="quick", started="t", cases=[result])


@pytest.mark.timeout(300)
def test_gate_fails_on_an_inserted_slowdown_and_passes_on_identical_code() -> None:
    """With a 60 % spin inside the subject the gate reports a regression; unchanged, it does not."""
    ctx = CaseContext()
    baseline_run = _run(ctx)
    baseline = baseline_run.ratio_entries()
    assert set(baseline) == {"synthetic.sorted/subject"}
    op = statistics.median(baseline_run.cases[0].contender("subject").samples)

    slowed = _run(ctx.with_spin(Spin(0.6 * op)))
    failing = compare(slowed.ratio_entries(), baseline, 0.10)
    assert [c.verdict for c in failing] == ["regression"]
    assert gate_failed(failing)
    assert slowed.cases[0].spin_seconds is not None

    unchanged = _run(ctx)
    passing = compare(unchanged.ratio_entries(), baseline, 0.10)
    assert not gate_failed(passing), [(c.verdict, c.current) for c in passing]


def test_spin_slows_only_subjects() -> None:
    """The context hands the spin to subjects and never to the reference or controls."""
    ctx = CaseContext().with_spin(Spin(1e-6))
    assert ctx.slowed("subject") is ctx.spin
    for role in ("reference", "control", "floor", "other"):
        assert ctx.slowed(role) is None  # type: ignore[arg-type]
    block, names = Spin(50e-9).inline()
    assert "_spin_v" in block and names == {}


@pytest.mark.timeout(300)
def test_calibrate_counts_what_the_gate_catches_and_the_slowdown_it_caused() -> None:
    """`--calibrate`'s experiment on the cheap case: two unchanged runs and two with a
    real 60 % spin, alternated: the slowed runs are caught, the unchanged ones pass, and
    each run's ratio to the baseline and the slowdown the spin caused are kept."""
    from provcfg.bench._calibrate import calibrate

    (cal,) = calibrate([CASE], "quick", CaseContext(), runs=2, slowdown=0.6, gate=None)
    assert cal.error is None
    assert (cal.runs, cal.detections, cal.false_alarms) == (2, 2, 0)
    assert cal.unchanged is not None and cal.slowed is not None
    assert len(cal.unchanged) == len(cal.slowed) == 2
    assert min(s[0] for s in cal.slowed) > max(u[0] for u in cal.unchanged)
    assert cal.measured_slowdowns is not None
    assert statistics.median(cal.measured_slowdowns) > 0.3


def test_a_spin_is_work_not_a_deadline() -> None:
    """A spin runs a fixed number of loop steps, set when it is made, and calls nothing
    while it runs (no clock): when the machine later runs faster or slower, the spin
    keeps its share of the operation it sits in (a deadline would not)."""
    import sys

    short, long = Spin(0.5e-3), Spin(2e-3)
    assert 3.0 < len(long._range) / len(short._range) < 5.0
    calls: list[str] = []

    def profile(frame: object, event: str, arg: object) -> None:
        if event == "c_call":
            calls.append(getattr(arg, "__name__", repr(arg)))

    block, names = long.inline()
    code = compile(block, "<spin>", "exec")
    sys.setprofile(profile)
    try:
        long()
        exec(code, dict(names))  # the spin's own statement, as pasted into a case
    finally:
        sys.setprofile(None)
    assert calls == ["exec", "setprofile"], calls  # ours: running the block, then stopping


def test_the_spin_sizer_corrects_the_work_by_what_the_pairs_measured() -> None:
    """The calibration's spin is fixed work until pairs measure what it adds; then the
    next spin is the size asked over the median slowdown per spin-second of the last
    pairs, the first sizing counting as two readings: one noisy first pair does not
    move it, a drift in the operation's own cost is followed, readings high and low
    both count, only the last `window` pairs count, and the correction is bounded
    (2x either way) so a run of noise cannot run away with it."""
    from provcfg.bench._calibrate import SpinSizer

    sizer = SpinSizer(0.375, 0.010)  # the first sizing: 37.5 per spin-second
    assert sizer.seconds() == pytest.approx(0.010)
    sizer.record(0.010, 0.90)  # one wild first pair: the prior outvotes it
    assert sizer.seconds() == pytest.approx(0.010)
    # The operation got dearer: 10 ms of spin now adds 25 %, not 37.5 %.
    for _ in range(4):
        sizer.record(0.010, 0.25)
    assert sizer.seconds() == pytest.approx(0.015)
    # A low reading counts as much as a high one: [.., 25, 25, 25, 25, 90] + one low.
    sizer = SpinSizer(0.375, 0.010, prior=0)
    for caused in (0.25, 0.60):
        sizer.record(0.010, caused)
    sizer.record(0.010, -0.0133)
    assert sizer.seconds() == pytest.approx(0.015)  # median 25 per spin-second
    # Only the last `window` pairs count: the operation got cheaper again.
    windowed = SpinSizer(0.375, 0.010, window=3, prior=0)
    for caused in (0.25, 0.25, 0.25, 0.50, 0.50, 0.50):
        windowed.record(0.010, caused)
    assert windowed.seconds() == pytest.approx(0.0075)
    # Bounded both ways, and a spin lost in the noise asks for the largest one.
    wild = SpinSizer(0.15, 0.010, prior=0)
    wild.record(0.010, 0.015)  # 10x too little: at most 2x the first spin
    assert wild.seconds() == pytest.approx(0.020)
    strong = SpinSizer(0.15, 0.010, prior=0)
    strong.record(0.010, 1.5)  # 10x too much: at least half the first spin
    assert strong.seconds() == pytest.approx(0.005)
    lost = SpinSizer(0.15, 0.010, prior=0)
    lost.record(0.010, -0.02)
    assert lost.seconds() == pytest.approx(0.020)
    with pytest.raises(ValueError):
        SpinSizer(0.0, 0.01)


async def test_save_to_live_times_each_save_half_a_step_after_a_check_it_saw(
    tmp_path: Path,
) -> None:
    """reload.save-to-live waits for the watcher's first check after the last reload
    (older ones do not count), then half a step more: watchfiles reports a save one
    step after the first check that sees it, so a save there waits 1.5 steps, the
    average. The checks are seen where they happen: provcfg's watcher, and the same
    stop event handed to watchfiles directly, keep the time of the last poll."""
    import asyncio
    import time

    import watchfiles

    import provcfg
    from provcfg._watchfs import _StopSignal
    from provcfg.bench.cases.reload import _mid_step, manifest

    seen: list[float | None] = []
    since = time.perf_counter()
    script = iter([None, since - 1.0, since - 0.5])

    def checks() -> float | None:
        # After the old and missing values: a check "now", each time it is asked (a
        # slow machine that sees one too late still gets a later one).
        value = next(script, time.perf_counter())
        seen.append(value)
        return value

    async with asyncio.timeout(5):
        await _mid_step(checks, since, 0.02)
    assert seen[:3] == [None, since - 1.0, since - 0.5] and len(seen) >= 4
    last = seen[-1]
    assert last is not None and last > since
    assert time.perf_counter() >= last + 0.01  # half a step after the check it used

    # A check seen too late to be half a step before the next: wait for the next one.
    stale = since - 0.05
    late = iter([stale, stale])
    used: list[float] = []

    def late_checks() -> float:
        used.append(next(late, time.perf_counter()))
        return used[-1]

    async with asyncio.timeout(5):
        await _mid_step(late_checks, since - 0.06, 0.02)
    assert used[0] == stale and used[-1] > stale
    assert time.perf_counter() >= used[-1] + 0.01

    # A watcher that never checks: an error naming it, not a hang.
    with pytest.raises(RuntimeError, match="made no check for 2 s"):
        await _mid_step(lambda: None, since, 0.02)

    path = tmp_path / "providers.yaml"
    path.write_text(manifest(1, 0))

    async def a_check_after(checked_at: Callable[[], float | None], moment: float) -> None:
        async with asyncio.timeout(10):
            while (checked_at() or 0.0) <= moment:
                await asyncio.sleep(0.005)

    async with provcfg.watch(path, environ={}, step=0.01) as live:
        watcher = live._watcher
        assert watcher is not None and watcher.checked_at is not None  # polled once: ready
        await a_check_after(lambda: watcher.checked_at, time.perf_counter())

    assert watcher.checked_at is None  # closed: no stale check time

    stop = _StopSignal(asyncio.get_running_loop(), on_ready=lambda: None)
    watching = watchfiles.awatch(tmp_path, step=10, stop_event=stop)
    task = asyncio.ensure_future(anext(watching))
    try:
        await a_check_after(lambda: stop.checked_at, since)
    finally:
        stop.set()
    with pytest.raises(StopAsyncIteration):
        await task
