"""The terminal side of ``provcfg bench``: a progress bar per case, and the tables."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from provcfg.bench._case import Case
from provcfg.bench._format import duration, rate, ratio, sparkline
from provcfg.bench._gate import Comparison
from provcfg.bench._results import CaseResult, RunResult

__all__ = ["BarProgress", "comparison_table", "history_table", "results_table"]


class BarProgress:
    """A rich progress bar per case (name, rounds, ETA); implements the runner's Progress."""

    def __init__(self, console: Console, cases: Sequence[Case]) -> None:
        """Show one bar per case in ``cases`` on ``console`` (stderr).

        Not a terminal (CI logs): no bars, one line per finished case instead.
        """
        self._console = console
        self._lines = not console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description:<32}"),
            BarColumn(),
            TextColumn("{task.fields[status]:<14}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=self._lines,
        )
        self._tasks: dict[str, TaskID] = {
            c.name: self._progress.add_task(c.name, total=1000, status="waiting", start=False)
            for c in cases
        }

    def __enter__(self) -> BarProgress:
        """Start drawing."""
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop drawing."""
        self._progress.stop()

    def case_started(self, case: Case) -> None:
        """Mark the case as starting."""
        self._progress.start_task(self._tasks[case.name])
        self._progress.update(self._tasks[case.name], status="warming up")

    def case_advanced(self, case: Case, rounds: int, fraction: float) -> None:
        """Move the bar."""
        self._progress.update(
            self._tasks[case.name], completed=int(fraction * 1000), status=f"{rounds} rounds"
        )

    def case_finished(self, case: Case, result: CaseResult) -> None:
        """Fill the bar and say how it ended."""
        status = "skipped" if result.skipped else "FAILED" if result.error else "done"
        task = self._tasks[case.name]
        self._progress.update(task, completed=1000, status=status)
        self._progress.stop_task(task)
        if self._lines:
            why = f": {result.skipped or result.error}" if status != "done" else ""
            self._console.print(
                f"{case.name}: {status}{why} ({result.rounds} rounds, {result.seconds:.1f} s)",
                markup=False,
            )


def _figure(case: CaseResult, samples: list[float]) -> str:
    if not samples:
        return "-"
    med = statistics.median(samples)
    return rate(med, case.rate_unit) if case.rate_unit else duration(med)


def results_table(run: RunResult) -> Table:
    """One row per contender: its median figure and its ratio to the case's reference."""
    table = Table(
        title=f"provcfg bench --suite {run.suite}",
        caption="ratios: median of per-round ratios to the case's reference [95 % bootstrap "
        "interval]; times: lower is faster, rates (chunks/s): higher is faster",
    )
    for column in ("case", "contender", "role", "median", "vs reference", "rounds"):
        table.add_column(column, overflow="fold")
    for case in run.cases:
        if case.skipped or case.error:
            table.add_row(
                case.name,
                "-",
                "-",
                "-",
                (case.skipped and f"skipped: {case.skipped}") or f"error: {case.error}",
                "-",
            )
            continue
        for i, c in enumerate(case.contenders):
            est = case.ratios.get(c.name)
            shown = "reference" if est is None else ratio(est, case.rate_unit is not None)
            table.add_row(
                case.name if i == 0 else "",
                c.name,
                c.role,
                _figure(case, c.samples),
                shown,
                str(case.rounds) if i == 0 else "",
            )
        if case.note:
            table.add_row("", f"[dim]{case.note}[/dim]", "", "", "", "", end_section=True)
    return table


_STYLE = {
    "regression": "bold red",
    "slower?": "yellow",
    "improvement": "bold green",
    "faster?": "green",
    "same": "",
    "new": "cyan",
    "gone": "dim",
    "changed": "cyan",
}


def comparison_table(comparisons: Sequence[Comparison], title: str) -> Table:
    """Baseline vs now for every ratio, with the verdict (regressions in red)."""
    table = Table(title=title)
    for column in ("ratio", "role", "baseline", "now", "change", "limit", "verdict"):
        table.add_column(column, overflow="fold")
    for c in comparisons:
        rate_like = (c.current or c.baseline).rate  # type: ignore[union-attr]
        base = ratio(c.baseline.estimate, rate_like) if c.baseline else "-"
        now = ratio(c.current.estimate, rate_like) if c.current else "-"
        change = "-" if math.isnan(c.change) else f"{c.change * 100:+.1f} %"
        style = _STYLE.get(c.verdict, "")
        verdict = f"[{style}]{c.verdict}[/{style}]" if style else c.verdict
        limit = f"+{c.threshold * 100:.0f} %" if c.gated else "not gated"
        table.add_row(c.key, c.role, base, now, change, limit, verdict)
    return table


def history_table(series: dict[str, list[tuple[str, float]]], width: int = 30) -> Table:
    """Per ratio: the number of runs, first and last median, and a sparkline of the trend."""
    table = Table(title="provcfg bench history (time ratios: lower is faster)")
    for column in ("ratio", "runs", "first", "last", "change", "trend"):
        table.add_column(column, overflow="fold")
    for key, points in series.items():
        values = [v for _, v in points][-width:]
        first, last = values[0], values[-1]
        change = f"{(last / first - 1) * 100:+.1f} %" if first > 0 else "-"
        table.add_row(
            key, str(len(points)), f"{first:.3f}x", f"{last:.3f}x", change, sparkline(values)
        )
    return table


def print_table(console: Console, table: Any) -> None:
    """Print a rich renderable."""
    console.print(table)
