"""How figures read: times with units, rates, ratios, and the sparkline of a trend."""

from __future__ import annotations

import math
from collections.abc import Sequence

from provcfg.bench._stats import Estimate

__all__ = ["duration", "rate", "ratio", "sparkline"]

_BARS = "▁▂▃▄▅▆▇█"


def duration(seconds: float) -> str:
    """``123 ns``, ``4.56 us``, ``7.89 ms``, ``1.23 s``."""
    if not math.isfinite(seconds):
        return "-"
    size = abs(seconds)
    if size < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if size < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    if size < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def rate(seconds: float, unit: str) -> str:
    """``1 / seconds`` in ``unit`` (``12,345 chunks/s``)."""
    if not (math.isfinite(seconds) and seconds > 0):
        return "-"
    return f"{1 / seconds:,.0f} {unit}"


def ratio(estimate: Estimate, as_rate: bool = False) -> str:
    """``0.63x [0.60-0.67]``; for rates the inverse (higher is better)."""
    if not math.isfinite(estimate.median):
        return "-"
    if as_rate:
        med, low, high = (1 / estimate.median, 1 / estimate.high, 1 / estimate.low)
    else:
        med, low, high = estimate.median, estimate.low, estimate.high
    digits = 3 if med < 10 else 1
    return f"{med:.{digits}f}x [{low:.{digits}f}-{high:.{digits}f}]"


def sparkline(values: Sequence[float]) -> str:
    """One block character per value, scaled between the smallest and largest."""
    clean = [v for v in values if math.isfinite(v)]
    if not clean:
        return ""
    low, high = min(clean), max(clean)
    span = high - low
    out = []
    for v in values:
        if not math.isfinite(v):
            out.append(" ")
        elif span == 0:
            out.append(_BARS[3])
        else:
            out.append(_BARS[min(7, int((v - low) / span * 8))])
    return "".join(out)
