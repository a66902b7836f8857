"""``provcfg bench --markdown``: docs/provider-performance-baseline.md from one run.

Every figure in the document comes from the run it is generated from (the command
and the environment are written at the top); nothing is typed by hand.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from provcfg._errors import ProvcfgError
from provcfg.bench._format import duration, rate, ratio
from provcfg.bench._results import CaseResult, RunResult

__all__ = ["render_markdown", "write_markdown"]

_SECTIONS = (
    (
        "cli",
        "CLI providers vs the CLI spawned by hand",
        "ClaudeCodeProvider, opencode and codex: first chunk (and total in the JSON), through "
        "provcfg vs the same CLI spawned by hand with the same argv and environment. Real CLIs "
        "run against the stub in a loopback-only network namespace.",
    ),
    (
        "stream",
        "anthropic-api: both transports vs the SDK used directly",
        "First text chunk of a short reply and chunks/s of a 2,000-delta stream from the stub "
        "(in its own process).",
    ),
    ("forwarding", "What provcfg adds per chunk and per request (no network)", ""),
    (
        "concurrency",
        "Concurrency scaling",
        "Every client saturates one event loop from a single stream: aggregate chunks/s is "
        "about flat from 1 to 400 streams, so first-chunk latency grows linearly with them.",
    ),
    ("pool", "Pooling and provider construction", ""),
    ("manifest", "Initialization: lazy vs eager load", ""),
    ("lookup", "Lookups", ""),
    ("clipath", "CLI path", ""),
    ("reload", "Hot reload", ""),
    ("scale", "Cost growth with the number of providers", ""),
    ("validate", "provcfg validate", ""),
    ("cache", "Cache regions", ""),
    ("metrics", "Monitoring overhead", ""),
    ("stub", "The stub (the yardstick)", ""),
)


def _figure(case: CaseResult, samples: list[float]) -> str:
    if not samples:
        return "-"
    med = statistics.median(samples)
    return rate(med, case.rate_unit) if case.rate_unit else duration(med)


def _budget_verdicts(case: CaseResult) -> list[str]:
    return [
        f"{name} {text}: {shown}, **{verdict}**" for name, text, shown, verdict in _judged(case)
    ]


def _judged(case: CaseResult) -> list[tuple[str, str, str, str]]:
    """(contender, budget text, measured figure, met / not met) for each budget of a case."""
    out: list[tuple[str, str, str, str]] = []
    for b in case.budgets:
        name = b["contender"]
        try:
            samples = case.contender(name).samples
        except KeyError:
            continue
        est = case.ratios.get(name)
        versus = b.get("versus")
        if versus and est is not None and versus in case.ratios:
            other = case.ratios[versus]
            est = type(est)(est.median / other.median, math.nan, math.nan, est.n)
        diff = case.differences.get(name)
        med = statistics.median(samples) if samples else math.nan
        checks: list[tuple[bool, str]] = []
        if b.get("max_ratio") is not None and est is not None:
            checks.append((est.median <= b["max_ratio"], f"{est.median:.3f}x"))
        if b.get("min_rate_ratio") is not None and est is not None:
            checks.append((1 / est.median >= b["min_rate_ratio"], f"{1 / est.median:.2f}x"))
        if b.get("max_seconds") is not None:
            checks.append((med <= b["max_seconds"], duration(med)))
        if b.get("max_added") is not None and diff is not None:
            checks.append((diff.median <= b["max_added"], f"{duration(diff.median)} added"))
        for ok, shown in checks:
            out.append((name, b["text"], shown, "met" if ok else "not met"))
    return out


def _budget_table(run: RunResult) -> list[str]:
    """Every budget of the run in one table (the per-case sections give the detail)."""
    rows = [
        f"| `{case.name}` | {name} {text} | {shown} | {verdict} |"
        for case in run.cases
        if not case.skipped and not case.error
        for name, text, shown, verdict in _judged(case)
    ]
    if not rows:
        return []
    return [
        "## Budgets at a glance",
        "",
        "Each budget a case carries, judged on this run's medians (absolute budgets depend",
        "on the machine and its load; ratio budgets do not). The sections below give the",
        "intervals and every contender.",
        "",
        "| case | budget | measured | verdict |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def _case_block(case: CaseResult) -> list[str]:
    lines = [f"### `{case.name}`: {case.title}", ""]
    if case.skipped:
        return [*lines, f"Skipped: {case.skipped}.", ""]
    if case.error:
        return [*lines, f"Failed: `{case.error}`.", ""]
    lines += ["| contender | what runs | median | vs reference [95 % CI] |", "|---|---|---|---|"]
    for c in case.contenders:
        est = case.ratios.get(c.name)
        shown = "reference" if est is None else ratio(est, case.rate_unit is not None)
        lines.append(f"| {c.name} ({c.role}) | {c.label} | {_figure(case, c.samples)} | {shown} |")
    lines.append("")
    extras: dict[str, Any] = {}
    for c in case.contenders:
        for key, values in c.extras.items():
            if values and key not in ("chunks",):
                extras.setdefault(key, []).append(
                    f"{c.name} {_extra(key, statistics.median(values))}"
                )
    for key, shown in extras.items():
        lines.append(f"- {key}: " + ", ".join(shown))
    lines += [f"- {v}" for v in _budget_verdicts(case)]
    if case.note:
        lines.append(f"- note: {case.note}")
    lines += [f"- {case.rounds} rounds, gate threshold {case.threshold * 100:.0f} %", ""]
    return lines


def _extra(key: str, value: float) -> str:
    if key.endswith("bytes"):
        return f"{value / 2**20:.1f} MiB"
    if key in ("chunks_per_s",):
        return f"{value:,.0f}/s"
    if key in ("rebuilt", "kept_of_9", "stub_cpu_share"):
        return f"{value:.2f}"
    return duration(value)


def render_markdown(run: RunResult) -> str:
    """The document's text."""
    env = run.env
    packages = env.get("packages", {})
    clis = env.get("cli_versions", {})
    head = [
        "# Provider performance baseline",
        "",
        "Generated by `provcfg bench --suite "
        f"{run.suite} --markdown` on {run.finished or run.started} (UTC); do not edit by hand,",
        "regenerate it. Every figure below comes from that one run; ratios are against the",
        "in-run reference of each case (interleaved rounds, median of per-round ratios,",
        "95 % bootstrap interval). Absolute times depend on the machine and its load; the",
        "ratios are what the budgets and the CI gate compare (docs/performance.md explains",
        "the method).",
        "",
        "| | |",
        "|---|---|",
        f"| machine | {env.get('cpu_model', '?')}, {env.get('cores', '?')} cores, "
        f"{env.get('system', '?')} |",
        f"| load average before / after | {env.get('load_before')} / {env.get('load_after')} |",
        f"| Python | {env.get('python', '?')} |",
        "| packages | " + ", ".join(f"{k} {v}" for k, v in packages.items() if v) + " |",
        "| agent CLIs | " + (", ".join(f"{k} {v}" for k, v in clis.items() if v) or "none") + " |",
        f"| git commit | {env.get('git_commit') or '-'} |",
        "",
        "## How to reproduce",
        "",
        "On a quiet machine of this kind (nothing else running), from the repository root:",
        "",
        "```sh",
        "scripts/system-deps.sh && scripts/bootstrap.sh dev && scripts/install-clis.sh",
        ".venv/bin/provcfg bench --suite full --markdown --save "
        "--baseline-out benchmarks/baseline.json -o benchmarks/runs/full.json",
        "```",
        "",
        "The run takes about an hour on a quiet machine (the real CLIs and the paced",
        "streams dominate); `provcfg bench report --html report.html` draws its plots.",
        "",
    ]
    load = (env.get("load_before") or [0.0])[0]
    cores = env.get("cores") or 1
    if load > 0.5 * cores:
        head[9:9] = [
            f"> **Measured on a loaded machine** (load average {load} on {cores} cores before "
            "the run): absolute times are inflated and intervals wide. Regenerate on a quiet "
            'machine with the command under "How to reproduce".',
            "",
        ]
    body: list[str] = _budget_table(run)
    seen: set[str] = set()
    for group, title, intro in _SECTIONS:
        cases = [c for c in run.cases if c.group == group]
        if not cases:
            continue
        seen.add(group)
        body += [f"## {title}", ""]
        if intro:
            body += [intro, ""]
        for case in cases:
            body += _case_block(case)
    rest = [c for c in run.cases if c.group not in seen]
    if rest:
        body += ["## Other cases", ""]
        for case in rest:
            body += _case_block(case)
    return "\n".join(head + body).rstrip() + "\n"


def write_markdown(run: RunResult, target: Path) -> None:
    """Write :func:`render_markdown` of ``run`` to ``target``.

    Raises:
        ProvcfgError: the file cannot be written.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_markdown(run), encoding="utf-8")
    except OSError as exc:
        raise ProvcfgError(f"cannot write {target}: {exc.strerror}") from None
