"""``provcfg bench --calibrate``: the gate's measured power and false-alarm rate.

For each case with a subject: one run makes a baseline (as the committed one was
made); then ``runs`` runs on unchanged code (arm A) and ``runs`` runs with a real
slowdown inserted (arm B), alternating A, B, A, B so both arms see the same machine.
The slowdown is a :class:`~provcfg.bench._spin.Spin`: the CPU work that takes
``slowdown`` (15 %) of the case's first subject's median operation time in the
unchanged run just before (sized again for every pair), run *inside* every subject's
timed operation. It is a fixed amount of work, so it keeps its share when the
machine's speed moves between runs; for CPU-timed cases it is rescaled once, by at
most 2x, when a short A/B pair measured it adding less than 1/1.6 or more than 1.6
times that. The slowdown each run really
caused is reported beside the counts: a detection rate means little without it.
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

__all__ = ["CaseCalibration", "calibrate"]


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
        # Each slowed run gets the spin sized on the unchanged run just before it: an
        # operation's cost drifts over a calibration (a shared VM's speed, a process's
        # heap), and a spin sized once on the first run then came out at 0.7x or 1.5x
        # of the size asked in later runs, which measured the drift, not the gate.
        scale = spin.seconds / (size * op)
        spins: list[float] = []
        for i in range(runs):
            a = run_case_sync(case, suite, ctx)
            ops = next((c.op_seconds for c in a.contenders if c.name == target), [])
            spin = Spin(size * statistics.median(ops) * scale) if ops else spin
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
                cal.measured_slowdowns.append(b.ratios[target].median / a.ratios[target].median - 1)
            measured = cal.measured_slowdowns or [math.nan]
            report(
                f"{case.name}: run {i + 1}/{runs}: detections {cal.detections}, "
                f"false alarms {cal.false_alarms}, slowdown measured "
                f"{statistics.median(measured) * 100:+.1f} %"
            )
        out.append(cal)
        on_case(out)
    return out
