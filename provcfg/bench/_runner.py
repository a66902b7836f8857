"""The side-by-side runner: contenders interleaved round by round, ratios to the reference.

For one case: build the contenders, warm each up, calibrate each one's loop count so
a sample lasts about ``case.sample_seconds``, then run rounds. A round runs every
contender once (``case.repeats`` times, interleaved, keeping each one's fastest);
the order rotates from round to round, so no contender always follows the same
other one. Rounds continue until the case's time budget is spent
(at least the minimum, at most the maximum number of rounds). Each contender's
ratio to the reference is the median of the per-round ratios, with a bootstrap
interval (:mod:`provcfg.bench._stats`).

Why not pyperf, pytest-benchmark or asv for this loop: all three time one benchmark
after another (pyperf in fresh worker processes), so a contender and its reference
never share a round; on a shared machine the drift between them is larger than the
differences measured here. What they do that fits is used instead: :mod:`timeit`
compiles micro statements into the timing loop, and the interval comes from
:func:`scipy.stats.bootstrap`. See docs/performance.md, "How provcfg bench measures".
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Protocol

from provcfg._logs import get_logger
from provcfg.bench._case import Case, CaseContext, Contender, Sample, call
from provcfg.bench._results import CaseResult, ContenderResult
from provcfg.bench._stats import paired_difference, paired_ratio

__all__ = ["Progress", "rotations", "run_case", "run_case_sync"]

log = get_logger(__name__)

_MAX_LOOPS = 10_000_000


class Progress(Protocol):
    """What the runner reports while a case runs (the terminal's progress bars)."""

    def case_started(self, case: Case) -> None:
        """The case is being built and warmed up."""

    def case_advanced(self, case: Case, rounds: int, fraction: float) -> None:
        """``rounds`` rounds are done; ``fraction`` (0..1) of the case's time is used."""

    def case_finished(self, case: Case, result: CaseResult) -> None:
        """The case is done (or skipped, or failed)."""


class _Quiet:
    def case_started(self, case: Case) -> None:
        pass

    def case_advanced(self, case: Case, rounds: int, fraction: float) -> None:
        pass

    def case_finished(self, case: Case, result: CaseResult) -> None:
        pass


def rotations(names: Sequence[str], rounds: int) -> list[list[str]]:
    """The contender order of each round: ``names`` rotated by one more each round."""
    n = len(names)
    return [[*names[i % n :], *names[: i % n]] for i in range(rounds)]


def _check_roles(case: Case, contenders: Sequence[Contender]) -> Contender:
    references = [c for c in contenders if c.role == "reference"]
    names = [c.name for c in contenders]
    if len(references) != 1:
        raise ValueError(f"case {case.name}: needs exactly one reference contender, has {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"case {case.name}: contender names repeat: {names}")
    return references[0]


async def _calibrate_loops(case: Case, contender: Contender) -> int:
    first = await call(contender.run, 1)
    for _ in range(case.warmup - 1):
        first = await call(contender.run, 1)
    if case.sample_seconds <= 0:
        return 1
    per_op = first.op_seconds or first.seconds
    if not per_op > 0 or not math.isfinite(per_op):
        return 1
    loops = max(1, min(_MAX_LOOPS, math.ceil(case.sample_seconds / per_op)))
    if loops > 1:
        trial = await call(contender.run, loops)
        per_op = trial.op_seconds or trial.seconds
        if per_op > 0 and math.isfinite(per_op):
            loops = max(1, min(_MAX_LOOPS, math.ceil(case.sample_seconds / per_op)))
    return loops


async def _sample(contender: Contender, loops: int, gc_off: bool) -> Sample:
    if not gc_off:
        return await call(contender.run, loops)
    gc.disable()
    try:
        return await call(contender.run, loops)
    finally:
        gc.enable()


def _record(result: ContenderResult, sample: Sample) -> None:
    result.samples.append(sample.seconds)
    result.op_seconds.append(sample.op_seconds if sample.op_seconds is not None else sample.seconds)
    for key, value in sample.extra.items():
        result.extras.setdefault(key, []).append(float(value))


def _blank(case: Case) -> CaseResult:
    return CaseResult(
        name=case.name,
        title=case.title,
        group=case.group,
        threshold=case.threshold,
        rate_unit=case.rate_unit,
        note=case.note,
        budgets=[asdict(b) for b in case.budgets],
    )


async def run_case(
    case: Case,
    suite: str,
    ctx: CaseContext,
    progress: Progress | None = None,
    *,
    rounds: tuple[int, int] | None = None,
    seconds: float | None = None,
) -> CaseResult:
    """Run ``case`` with ``suite``'s round and time budget and return its result.

    ``rounds`` / ``seconds`` override the case's own budget (tests, calibration). A
    case that cannot run here is returned with ``skipped`` set; one that fails with
    ``error`` set (the type and message; the traceback goes to the debug log).
    """
    progress = progress or _Quiet()
    result = _blank(case)
    progress.case_started(case)
    reason = case.requires(ctx) if case.requires is not None else None
    if reason:
        result.skipped = reason
        progress.case_finished(case, result)
        return result
    if case.clock == "cpu":
        ctx = replace(ctx, clock=time.process_time)
    low, high = rounds or ((2, 2) if ctx.smoke else case.rounds.get(suite, (8, 30)))
    budget = seconds if seconds is not None else (0.0 if ctx.smoke else case.seconds[suite])
    start = time.perf_counter()
    try:
        async with case.build(ctx) as contenders:
            reference = _check_roles(case, contenders)
            result.reference = reference.name
            loops = {c.name: await _calibrate_loops(case, c) for c in contenders}
            out = {
                c.name: ContenderResult(c.name, c.role, c.label, loops[c.name]) for c in contenders
            }
            by_name = {c.name: c for c in contenders}
            names = [c.name for c in contenders]
            gc.collect()
            loop_start = time.perf_counter()
            done = 0
            for order in rotations(names, high):
                best: dict[str, Sample] = {}
                if case.gc_off:
                    gc.collect()
                for _ in range(case.repeats):
                    for name in order:
                        sample = await _sample(by_name[name], loops[name], case.gc_off)
                        if name not in best or sample.seconds < best[name].seconds:
                            best[name] = sample
                for name in order:
                    _record(out[name], best[name])
                done += 1
                used = time.perf_counter() - loop_start
                fraction = max(done / high, min(done / low, used / budget if budget else 1.0))
                progress.case_advanced(case, done, min(1.0, fraction))
                if done >= low and used >= budget:
                    break
            result.contenders = list(out.values())
            result.rounds = done
            base = out[reference.name].samples
            for c in result.contenders:
                if c.name == reference.name:
                    continue
                result.ratios[c.name] = paired_ratio(c.samples, base)
                result.differences[c.name] = paired_difference(c.samples, base)
            if ctx.spin is not None:
                result.spin_seconds = ctx.spin.seconds
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        log.debug("bench.case_failed", case=case.name, traceback=traceback.format_exc())
    result.seconds = time.perf_counter() - start
    progress.case_finished(case, result)
    return result


def run_case_sync(
    case: Case,
    suite: str,
    ctx: CaseContext,
    progress: Progress | None = None,
    *,
    rounds: tuple[int, int] | None = None,
    seconds: float | None = None,
) -> CaseResult:
    """:func:`run_case` in a fresh event loop of its own (one per case, closed after)."""
    return asyncio.run(run_case(case, suite, ctx, progress, rounds=rounds, seconds=seconds))
