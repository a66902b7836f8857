"""Small SVG charts drawn in Python: lines over time, dot strips, log-scale curves.

No JavaScript and nothing fetched: the report stays one offline file. Every drawn
data mark carries ``class="mark"`` (a test counts them) and a ``<title>`` (the
browser's own tooltip).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["PALETTE", "dot_strips", "line_chart"]

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
_W, _H = 640, 260
_L, _R, _T, _B = 64, 150, 16, 40


def _nice(low: float, high: float) -> tuple[float, float]:
    if not (math.isfinite(low) and math.isfinite(high)):
        return 0.0, 1.0
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.08
    return low - pad, high + pad


def _frame(
    title: str,
    y_label: str,
    ticks: Sequence[tuple[float, str]],
    x_ticks: Sequence[tuple[float, str]],
) -> list[str]:
    out = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" '
        f'width="{_W}" height="{_H}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{_L}" y="{_T}" width="{_W - _L - _R}" height="{_H - _T - _B}" '
        'fill="#fafafa" stroke="#ccc"/>',
        f'<text x="14" y="{(_H - _B + _T) / 2}" font-size="11" transform="rotate(-90 14 '
        f'{(_H - _B + _T) / 2})" text-anchor="middle">{escape(y_label)}</text>',
    ]
    for y, label in ticks:
        out.append(f'<line x1="{_L}" x2="{_W - _R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(
            f'<text x="{_L - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{escape(label)}</text>"
        )
    for x, label in x_ticks:
        out.append(
            f'<text x="{x:.1f}" y="{_H - _B + 14}" font-size="10" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    return out


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = _T + 12 + i * 16
        color = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{_W - _R + 10}" y="{y - 8}" width="10" height="10" fill="{color}"/>')
        out.append(
            f'<text x="{_W - _R + 24}" y="{y + 1}" font-size="10">{escape(name[:24])}</text>'
        )
    return out


def _y_scale(values: Sequence[float], log: bool) -> tuple[object, list[tuple[float, str]]]:
    clean = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
    low, high = (min(clean), max(clean)) if clean else (0.0, 1.0)
    if log:
        low, high = math.log10(low), math.log10(high)
    low, high = _nice(low, high)
    span = high - low

    def y(v: float) -> float:
        value = math.log10(v) if log else v
        return _H - _B - (value - low) / span * (_H - _T - _B)

    ticks = []
    for i in range(5):
        value = low + span * i / 4
        shown = 10**value if log else value
        ticks.append((_H - _B - (value - low) / span * (_H - _T - _B), f"{shown:.3g}"))
    return y, ticks


def line_chart(
    title: str,
    y_label: str,
    series: dict[str, list[tuple[float, float, str]]],
    x_labels: Sequence[tuple[float, str]] = (),
    *,
    log_x: bool = False,
    log_y: bool = False,
) -> str:
    """Lines with points; ``series``: name -> [(x, y, tooltip)]."""
    xs = [p[0] for pts in series.values() for p in pts]
    ys = [p[1] for pts in series.values() for p in pts]
    y, y_ticks = _y_scale(ys, log_y)
    tx = [math.log10(x) if log_x else x for x in xs] or [0.0]
    x_low, x_high = _nice(min(tx), max(tx))

    def x(v: float) -> float:
        value = math.log10(v) if log_x else v
        return _L + (value - x_low) / (x_high - x_low) * (_W - _L - _R)

    out = _frame(title, y_label, y_ticks, [(x(v), label) for v, label in x_labels])
    for i, (name, points) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        good = [p for p in points if math.isfinite(p[1]) and (p[1] > 0 or not log_y)]
        if len(good) > 1:
            path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py, _ in good)  # type: ignore[operator]
            out.append(
                f'<polyline class="mark" points="{path}" fill="none" stroke="{color}" '
                'stroke-width="1.5"/>'
            )
        for px, py, tip in good:
            out.append(
                f'<circle class="mark" cx="{x(px):.1f}" cy="{y(py):.1f}" r="3" '  # type: ignore[operator]
                f'fill="{color}"><title>{escape(name)}: {escape(tip)}</title></circle>'
            )
    out += _legend(list(series))
    out.append("</svg>")
    return "\n".join(out)


def dot_strips(
    title: str, y_label: str, strips: dict[str, list[float]], *, log_y: bool = False
) -> str:
    """One column of dots per name (every round's value) with its median as a bar."""
    values = [v for vs in strips.values() for v in vs]
    y, y_ticks = _y_scale(values, log_y)
    names = list(strips)
    step = (_W - _L - _R) / max(len(names), 1)
    out = _frame(
        title, y_label, y_ticks, [(_L + step * (i + 0.5), n[:14]) for i, n in enumerate(names)]
    )
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        center = _L + step * (i + 0.5)
        good = sorted(v for v in strips[name] if math.isfinite(v) and (v > 0 or not log_y))
        for j, v in enumerate(good):
            jitter = ((j * 7919) % 21 - 10) / 10 * min(step * 0.3, 18)
            out.append(
                f'<circle class="mark" cx="{center + jitter:.1f}" cy="{y(v):.1f}" r="2.2" '  # type: ignore[operator]
                f'fill="{color}" fill-opacity="0.6"><title>{escape(name)}: {v:.4g}'
                "</title></circle>"
            )
        if good:
            med = good[len(good) // 2]
            out.append(
                f'<line class="mark" x1="{center - step * 0.35:.1f}" '
                f'x2="{center + step * 0.35:.1f}" y1="{y(med):.1f}" y2="{y(med):.1f}" '  # type: ignore[operator]
                f'stroke="#111" stroke-width="2"><title>median {med:.4g}</title></line>'
            )
    out.append("</svg>")
    return "\n".join(out)
