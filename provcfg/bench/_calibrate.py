"""``provcfg bench --calibrate``: the gate's measured power and false-alarm rate.

For each case with a subject: one run makes a baseline (as the committed one was
made); then ``runs`` runs on unchanged code (arm A) and ``runs`` runs with a real
slowdown inserted (arm B), alternating A, B, A, B so both arms see the same machine.
The slowdown is a :class:`~provcfg.bench._spin.Spin`: CPU work run *inside* every
subject's timed operation, first sized to take ``slowdown`` (15 %) of the case's first
subject's median operation time in the baseline run (for CPU-timed cases rescaled
once, by at most 2x, when a short A/B pair measured it adding less than 1/1.6 or more
than 1.6 times that). It is a fixed amount of work, so it keeps its share when the
machine's speed moves between runs. What drifts is the operation's own cost (a heap
that grows over a case's runs); so after each pair the work is corrected by what the
spin really added per second of spin in the last pairs (:class:`SpinSizer`: their
median, so one noisy pair does not move it). The slowdown each run really caused is
reported beside the counts: a detection rate means little without it.
Each run is compared with the baseline by the gate at the case's threshold (or
``--gate``, whichever is wider).

Reported per case: detections (B runs whose first subject is a ``regression``), false
alarms (A runs where any subject is a ``regression``), both out of ``runs``, and the
slowdown the spin really caused (median of B's ratio over the A ratio of the same
pair). A case whose threshold is wider than 10 % is calibrated with 1.5 times its
threshold as the slowdown, since a gate at 25 % cannot be asked to catch 15 %.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from provcfg.bench._case import Case, CaseContext
from provcfg.bench._gate import compare
from provcfg.bench._results import BaselineEntry, CaseResult, RunResult
from provcfg.bench._runner import run_case_sync
from provcfg.bench._spin import Spin

__all__ = ["CaseCalibration", "SpinSizer", "calibrate"]


@dataclass
class CaseCalibration:
    """The experiment's outcome for one case."""

    case: str
    subject: str
    threshold: float
    slowdown: float
    runs: int
    detections: int = 0
    false_alarms: int = 0
    measured_slowdowns: list[float] = field(default_factory=list)
    spin_seconds: float = 0.0
    error: str | None = None
    baseline: float | None = None
    unchanged: list[tuple[float, float, float]] = field(default_factory=list)
    slowed: list[tuple[float, float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        measured = self.measured_slowdowns
        return {
            "case": self.case,
            "subject": self.subject,
            "threshold": self.threshold,
            "slowdown": self.slowdown,
            "runs": self.runs,
            "detections": self.detections,
            "false_alarms": self.false_alarms,
            "spin_seconds": self.spin_seconds,
            "measured_slowdown": statistics.median(measured) if measured else None,
            "error": self.error,
            "baseline": self.baseline,
            # Each run's ratio of the subject as (median, low, high) of its 95 % interval,
            # divided by the baseline's median: the gate fails a run whose low end is
            # above 1 + threshold. The widths say which threshold a case can resolve.
            "unchanged": self.unchanged,
            "slowed": self.slowed,
        }


class SpinSizer:
    """The spin's size for each slowed run of a calibration: fixed work, corrected by the
    slowdown the spin really caused in the last pairs.

    Sizing each spin on the operation time of the unchanged run just before it followed
    that one run's noise: the slowdowns it inserted scattered 2-4 times as widely (a
    standard deviation of 0.10-0.17 in the slowed/unchanged ratio where 0.04-0.08 with a
    spin sized once), and the misses measured the scatter. Sized once, the spin came out
    at 0.7-0.8x of the size asked for ten streams, whose own cost grows over a run. So:
    the work stays fixed, and after each pair the slowdown it caused per second of spin
    is kept; the next spin is ``size`` over the median of the last ``window`` of those,
    within ``bound`` times the first spin either way. The first sizing counts as
    ``prior`` readings, so the first pairs cannot move the spin by their noise alone
    (one reading would be its own median); every reading is kept, high or low, so
    the median is not pushed one way; a median at or below zero (a spin lost in the
    noise) asks for the largest spin.
    """

    def __init__(
        self, size: float, first: float, *, window: int = 7, bound: float = 2.0, prior: int = 2
    ) -> None:
        """``size``: the slowdown asked (0.15 for 15 %); ``first``: the first spin's seconds."""
        if size <= 0 or first <= 0:
            raise ValueError("a spin size and a first spin need positive values")
        self.size = size
        self.first = first
        self.window = window
        self.bound = bound
        self._per_second: list[float] = [size / first] * prior

    def seconds(self) -> float:
        """The spin (CPU seconds, as :class:`Spin` takes them) for the next slowed run."""
        unit = statistics.median(self._per_second[-self.window :])
        if unit <= 0:
            return self.first * self.bound
        return min(self.first * self.bound, max(self.first / self.bound, self.size / unit))

    def record(self, spin_seconds: float, caused: float) -> None:
        """The slowdown ``caused`` (slowed / unchanged ratio - 1) by a spin of ``spin_seconds``."""
        if spin_seconds > 0:
            self._per_second.append(caused / spin_seconds)


def _entries(result: CaseResult) -> dict[str, BaselineEntry]:
    run = RunResult(suite="", started="", cases=[result])
    return run.ratio_entries()


def _regressions(
    result: CaseResult, base: dict[str, BaselineEntry], gate: float | None
) -> set[str]:
    return {
        c.key.split("/", 1)[1]
        for c in compare(_entries(result), base, gate)
        if c.gated and c.verdict == "regression"
    }


def calibrate(
    cases: Sequence[Case],
    suite: str,
    ctx: CaseContext,
    *,
    runs: int,
    slowdown: float,
    gate: float | None,
    report: Callable[[str], None] = lambda line: None,
    on_case: Callable[[list[CaseCalibration]], None] = lambda done: None,
) -> list[CaseCalibration]:
    """Run the experiment on every case of ``cases`` that has a subject; see the module doc."""
    out: list[CaseCalibration] = []
    for case in cases:
        first = run_case_sync(case, suite, ctx)
        subjects = [c.name for c in first.contenders if c.role == "subject"]
        threshold = max(case.threshold, gate or 0.0)
        if first.skipped or first.error or not subjects:
            why = first.skipped or first.error or "no subject"
            report(f"{case.name}: not calibrated ({why})")
            continue
        size = max(slowdown, 1.5 * threshold) if threshold > 0.10 + 1e-9 else slowdown
        target = subjects[0]
        op = statistics.median(first.contender(target).op_seconds)
        spin = Spin(size * op)
        # The spin's cost in place can differ grossly from its cost alone (statements
        # pasted into a timeit loop): one short A/B pair measures what it really adds,
        # and a spin off by more than 1.6x either way (a pasted 60 % loop adding 30 %) is
        # rescaled once. Not for less: the spin is CPU work calibrated in CPU time, and
        # an 8-round pair's own noise (a whole-stream case's 15 % read as 22 %) would
        # rescale it by that noise.
        a0 = run_case_sync(case, suite, ctx, rounds=(8, 8), seconds=0.0)
        b0 = run_case_sync(case, suite, ctx.with_spin(spin), rounds=(8, 8), seconds=0.0)
        if case.clock == "cpu" and target in a0.ratios and target in b0.ratios:
            # Only where a short pair measures precisely (CPU time): a noisy wall-clock
            # pair would rescale the spin by its noise.
            achieved = b0.ratios[target].median / a0.ratios[target].median - 1
            if achieved > 0.01 and not 1 / 1.6 <= size / achieved <= 1.6:
                spin = Spin(spin.seconds * min(2.0, max(0.5, size / achieved)))
        cal = CaseCalibration(
            case.name,
            target,
            threshold,
            size,
            runs,
            spin_seconds=spin.seconds,
            baseline=first.ratios[target].median if target in first.ratios else None,
        )
        base = _entries(first)
        sizer = SpinSizer(size, spin.seconds)
        spins: list[float] = []
        for i in range(runs):
            a = run_case_sync(case, suite, ctx)
            spin = Spin(sizer.seconds())
            spins.append(spin.seconds)
            cal.spin_seconds = statistics.median(spins)
            b = run_case_sync(case, suite, ctx.with_spin(spin))
            if a.error or b.error:
                cal.error = a.error or b.error
                break
            cal.false_alarms += bool(_regressions(a, base, gate))
            cal.detections += target in _regressions(b, base, gate)
            ref = cal.baseline
            if ref:
                for result, kept in ((a, cal.unchanged), (b, cal.slowed)):
                    est = result.ratios.get(target)
                    if est is not None:
                        kept.append((est.median / ref, est.low / ref, est.high / ref))
            if target in a.ratios and target in b.ratios:
                caused = b.ratios[target].median / a.ratios[target].median - 1
                cal.measured_slowdowns.append(caused)
                sizer.record(spin.seconds, caused)
            measured = cal.measured_slowdowns or [math.nan]
            report(
                f"{case.name}: run {i + 1}/{runs}: detections {cal.detections}, "
                f"false alarms {cal.false_alarms}, slowdown measured "
                f"{statistics.median(measured) * 100:+.1f} %"
            )
        out.append(cal)
        on_case(out)
    return out
