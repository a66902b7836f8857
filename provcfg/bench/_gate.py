"""The regression gate: each ratio of a run against the same ratio in a baseline.

A subject fails the gate when its ratio is worse than the baseline's by more than the
case's threshold **with confidence**: the whole confidence interval lies beyond
``baseline * (1 + threshold)``. Improvements are reported the same way (the interval
lies below ``baseline / (1 + threshold)``). A median past the line with an interval
that still reaches back is "slower?" (not failed: on a noisy machine that is what
a coin flip looks like). Controls, floors and others are compared and shown, never
gated. Ratios are times (lower is better); for rate cases a slower time ratio is a
lower rate. A ratio whose case changed its reference contender is ``changed``: not
comparable, never failed; regenerate the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from provcfg.bench._results import BaselineEntry

__all__ = ["MIN_ROUNDS", "Comparison", "Verdict", "compare", "gate_failed"]

MIN_ROUNDS = 6
"""Fewer rounds than this on either side give no confident verdict (a smoke run never fails)."""

Verdict = Literal[
    "regression", "slower?", "same", "faster?", "improvement", "new", "gone", "changed"
]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One ratio compared with its baseline."""

    key: str
    role: str
    threshold: float
    verdict: Verdict
    current: BaselineEntry | None
    baseline: BaselineEntry | None

    @property
    def change(self) -> float:
        """Current median / baseline median - 1 (NaN when either is missing)."""
        if self.current is None or self.baseline is None or self.baseline.estimate.median <= 0:
            return math.nan
        return self.current.estimate.median / self.baseline.estimate.median - 1

    @property
    def gated(self) -> bool:
        """Whether this ratio can fail the gate (subjects only)."""
        return self.role == "subject"


def _verdict(current: BaselineEntry, base: BaselineEntry, threshold: float) -> Verdict:
    ref = base.estimate.median
    est = current.estimate
    limit = ref * (1 + threshold)
    better = ref / (1 + threshold)
    confident = min(est.n, base.estimate.n) >= MIN_ROUNDS
    if confident and est.low > limit:
        return "regression"
    if confident and est.high < better:
        return "improvement"
    if est.median > limit:
        return "slower?"
    if est.median < better:
        return "faster?"
    return "same"


def compare(
    current: Mapping[str, BaselineEntry],
    baseline: Mapping[str, BaselineEntry],
    threshold: float | None = None,
) -> list[Comparison]:
    """Compare every ratio of ``current`` with ``baseline``.

    ``threshold``: the gate's ``--gate``; each case's own (wider) threshold wins when
    larger. Keys only in one side are ``new`` / ``gone``.
    """
    out: list[Comparison] = []
    for key in sorted(set(current) | set(baseline)):
        cur, base = current.get(key), baseline.get(key)
        role = (cur or base).role  # type: ignore[union-attr]
        own = (cur or base).threshold  # type: ignore[union-attr]
        limit = max(own, threshold) if threshold is not None else own
        if cur is None:
            out.append(Comparison(key, role, limit, "gone", None, base))
        elif base is None:
            out.append(Comparison(key, role, limit, "new", cur, None))
        elif cur.reference and base.reference and cur.reference != base.reference:
            # The case now measures against another contender: not the same ratio.
            out.append(Comparison(key, role, limit, "changed", cur, base))
        else:
            out.append(Comparison(key, role, limit, _verdict(cur, base, limit), cur, base))
    return out


def gate_failed(comparisons: list[Comparison]) -> list[Comparison]:
    """The gated comparisons that are regressions (the gate fails when this is not empty)."""
    return [c for c in comparisons if c.gated and c.verdict == "regression"]
