"""``provcfg bench report``: one self-contained HTML page (no CDN, no fetch) with the plots.

Sections: each case's ratios over the saved history; the latest run's per-round
ratio distributions; the concurrency scaling curves (aggregate chunks/s and
first-chunk p99 against the number of streams); and a comparison table (``--compare A
B``, else the last two saved runs).
"""

from __future__ import annotations

import math
import statistics
from html import escape

from provcfg.bench._format import duration, ratio
from provcfg.bench._gate import compare
from provcfg.bench._results import CaseResult, RunResult
from provcfg.bench._svg import dot_strips, line_chart

__all__ = ["render_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:18px 0 4px}.grid{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px;background:#fff}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left}th{background:#f3f3f3}.regression{color:#b00;font-weight:bold}
.improvement{color:#070;font-weight:bold}.muted{color:#777;font-size:12px}
"""


# After layout, each plot records how many of its marks have a drawn size (data-drawn):
# the report's own check that every plot rendered, read by the browser test.
_SELF_CHECK = """
window.addEventListener("load", function () {
  var total = 0;
  document.querySelectorAll("svg.plot").forEach(function (svg) {
    var drawn = 0;
    svg.querySelectorAll(".mark").forEach(function (m) {
      var box = m.getBBox();
      if (box.width > 0 || box.height > 0) { drawn += 1; }
    });
    svg.setAttribute("data-drawn", String(drawn));
    total += 1;
  });
  document.body.setAttribute("data-plots", String(total));
});
"""


def _history_plots(history: list[RunResult]) -> list[str]:
    by_case: dict[str, dict[str, list[tuple[float, float, str]]]] = {}
    for i, run in enumerate(history):
        for key, entry in run.ratio_entries().items():
            if entry.role not in ("subject", "control"):
                continue
            case, contender = key.split("/", 1)
            by_case.setdefault(case, {}).setdefault(contender, []).append(
                (
                    float(i + 1),
                    entry.estimate.median,
                    f"run {i + 1} ({run.started}): {ratio(entry.estimate)}",
                )
            )
    out = []
    for case, series in sorted(by_case.items()):
        labels = [(float(i + 1), str(i + 1)) for i in range(len(history))]
        if len(labels) > 12:
            labels = labels[:: max(1, len(labels) // 12)]
        out.append(
            f'<div class="card"><h3>{escape(case)}</h3>'
            + line_chart(f"{case}: ratio to the reference, by run", "time ratio", series, labels)
            + "</div>"
        )
    return out


def _ratios_per_round(case: CaseResult) -> dict[str, list[float]]:
    if case.reference is None:
        return {}
    base = case.contender(case.reference).samples
    return {
        c.name: [s / b for s, b in zip(c.samples, base, strict=True) if b > 0]
        for c in case.contenders
        if c.name != case.reference
    }


def _distribution_plots(run: RunResult) -> list[str]:
    out = []
    for case in run.iter_cases():
        strips = _ratios_per_round(case)
        if not strips or not any(strips.values()):
            continue
        values = [v for vs in strips.values() for v in vs if v > 0]
        log = bool(values) and max(values) / min(values) > 20
        out.append(
            f'<div class="card"><h3>{escape(case.name)}</h3>'
            + dot_strips(
                f"{case.name}: every round's ratio to {case.reference}",
                "time ratio (per round)",
                strips,
                log_y=log,
            )
            + "</div>"
        )
    return out


def _scaling_plots(run: RunResult) -> list[str]:
    out = []
    for mode in ("flat", "paced"):
        rate: dict[str, list[tuple[float, float, str]]] = {}
        p99: dict[str, list[tuple[float, float, str]]] = {}
        for case in run.iter_cases():
            if not case.name.startswith(f"concurrency.{mode}-"):
                continue
            streams = float(case.name.rsplit("-", 1)[1])
            for c in case.contenders:
                for key, target in (("chunks_per_s", rate), ("first_chunk_p99", p99)):
                    values = c.extras.get(key, [])
                    if values:
                        med = statistics.median(values)
                        tip = (
                            f"{int(streams)} streams: {med:,.0f}"
                            if key == "chunks_per_s"
                            else f"{int(streams)} streams: {duration(med)}"
                        )
                        target.setdefault(c.name, []).append((streams, med, tip))
        if not rate:
            continue
        for series in (rate, p99):
            for points in series.values():
                points.sort()
        xs = sorted({p[0] for pts in rate.values() for p in pts})
        labels = [(x, f"{int(x)}") for x in xs]
        out.append(
            '<div class="card"><h3>'
            + f"{mode}: aggregate chunks/s</h3>"
            + line_chart(
                f"{mode}: aggregate chunks/s by concurrent streams",
                "chunks/s",
                rate,
                labels,
                log_x=True,
            )
            + "</div>"
        )
        out.append(
            '<div class="card"><h3>'
            + f"{mode}: first-chunk p99</h3>"
            + line_chart(
                f"{mode}: first-chunk p99 (s) by concurrent streams",
                "seconds",
                p99,
                labels,
                log_x=True,
                log_y=True,
            )
            + "</div>"
        )
    return out


def _comparison(a: RunResult, b: RunResult, title: str) -> str:
    rows = []
    for c in compare(b.ratio_entries(), a.ratio_entries()):
        rate_like = (c.current or c.baseline).rate  # type: ignore[union-attr]
        change = "-" if math.isnan(c.change) else f"{c.change * 100:+.1f} %"
        rows.append(
            f"<tr><td>{escape(c.key)}</td><td>{c.role}</td>"
            f"<td>{ratio(c.baseline.estimate, rate_like) if c.baseline else '-'}</td>"
            f"<td>{ratio(c.current.estimate, rate_like) if c.current else '-'}</td>"
            f'<td>{change}</td><td class="{c.verdict.rstrip("?")}">{c.verdict}</td></tr>'
        )
    return (
        f"<h3>{escape(title)}</h3><table><tr><th>ratio</th><th>role</th><th>A</th>"
        "<th>B</th><th>change</th><th>verdict</th></tr>" + "".join(rows) + "</table>"
    )


def render_report(history: list[RunResult], pair: tuple[RunResult, RunResult] | None) -> str:
    """The whole HTML document."""
    latest = pair[1] if pair else history[-1]
    env = latest.env
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>provcfg bench report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>provcfg bench report</h1>",
        f'<p class="muted">latest run {escape(latest.started)}, suite {escape(latest.suite)}, '
        f"{escape(str(env.get('cpu_model', '?')))}, {env.get('cores', '?')} cores, "
        f"Python {escape(str(env.get('python', '?')))}, commit "
        f"{escape(str(env.get('git_commit') or '-'))[:12]}, load {env.get('load_before')} -> "
        f"{env.get('load_after')}. Ratios are times against each case's in-run reference: "
        "lower is faster.</p>",
    ]
    sections = [
        ("Ratios over the history", _history_plots(history) if history else []),
        ("Latest run: every round's ratio", _distribution_plots(latest)),
        ("Concurrency scaling (latest run)", _scaling_plots(latest)),
    ]
    for title, plots in sections:
        parts.append(f"<h2>{escape(title)}</h2>")
        if plots:
            parts.append('<div class="grid">' + "".join(plots) + "</div>")
        else:
            parts.append('<p class="muted">no data for this section in these runs</p>')
    parts.append("<h2>Comparison</h2>")
    if pair:
        parts.append(_comparison(pair[0], pair[1], "A (first --compare file) vs B (second)"))
    elif len(history) >= 2:
        parts.append(_comparison(history[-2], history[-1], "previous saved run vs the latest"))
    else:
        parts.append('<p class="muted">one run only: nothing to compare yet</p>')
    parts.append(f"<script>{_SELF_CHECK}</script></body></html>")
    return "\n".join(parts)
