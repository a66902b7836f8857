"""Statistics of the side-by-side runner: paired ratios, their median and a bootstrap interval.

Every round runs each contender once, so round ``i`` gives one ratio
``subject[i] / reference[i]`` taken under the same machine conditions. The estimate
is the median of those paired ratios; its confidence interval comes from
:func:`scipy.stats.bootstrap` (percentile method, resampling rounds), seeded so that
the same samples always give the same interval. The paired *differences* (what the
subject adds per operation) get the same treatment.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CONFIDENCE", "Estimate", "paired_difference", "paired_ratio", "quantile"]

CONFIDENCE = 0.95
"""Two-sided confidence level of every interval (the gate uses its ends)."""

_RESAMPLES = 2000
_SEED = 20261127


@dataclass(frozen=True, slots=True)
class Estimate:
    """A median with its bootstrap confidence interval ``[low, high]`` over ``n`` rounds."""

    median: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        """JSON form."""
        return {"median": self.median, "low": self.low, "high": self.high, "n": self.n}

    @classmethod
    def from_dict(cls, data: dict[str, float | int]) -> Estimate:
        """Read the JSON form back."""
        return cls(float(data["median"]), float(data["low"]), float(data["high"]), int(data["n"]))


def _median_interval(values: Sequence[float]) -> Estimate:
    clean = [v for v in values if math.isfinite(v)]
    n = len(clean)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    med = statistics.median(clean)
    if n < 3 or min(clean) == max(clean):
        return Estimate(med, min(clean), max(clean), n)
    import numpy as np
    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        # A few identical values make some resamples degenerate; the interval is still right.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = bootstrap(
            (np.asarray(clean, dtype=float),),
            np.median,
            confidence_level=CONFIDENCE,
            n_resamples=_RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(_SEED),
            vectorized=True,
        )
    low = float(result.confidence_interval.low)
    high = float(result.confidence_interval.high)
    return Estimate(med, min(low, med), max(high, med), n)


def paired_ratio(subject: Sequence[float], reference: Sequence[float]) -> Estimate:
    """Median of ``subject[i] / reference[i]`` and its bootstrap interval.

    Raises:
        ValueError: the two sequences differ in length.
    """
    if len(subject) != len(reference):
        raise ValueError(f"paired samples differ in length: {len(subject)} vs {len(reference)}")
    return _median_interval(
        [s / r if r > 0 else math.nan for s, r in zip(subject, reference, strict=True)]
    )


def paired_difference(subject: Sequence[float], reference: Sequence[float]) -> Estimate:
    """Median of ``subject[i] - reference[i]`` and its bootstrap interval.

    Raises:
        ValueError: the two sequences differ in length.
    """
    if len(subject) != len(reference):
        raise ValueError(f"paired samples differ in length: {len(subject)} vs {len(reference)}")
    return _median_interval([s - r for s, r in zip(subject, reference, strict=True)])


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linear interpolation; NaN when empty."""
    clean = sorted(v for v in values if math.isfinite(v))
    if not clean:
        return math.nan
    pos = q * (len(clean) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(clean) - 1)
    return clean[lo] + (clean[hi] - clean[lo]) * (pos - lo)
