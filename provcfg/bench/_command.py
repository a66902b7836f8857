"""``provcfg bench``, ``provcfg bench history`` and ``provcfg bench report``: the commands.

Arguments are parsed in :mod:`provcfg._cli`; these functions do the work and return
the exit code: 0 done (the gate passed), 1 the gate failed or a case failed, 2 usage
(bad option value, unreadable baseline, unknown case or provider).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provcfg._errors import ProvcfgError

__all__ = ["parse_percent", "run_bench", "run_history", "run_report"]

EXIT_OK = 0
EXIT_FAILED = 1
DEFAULT_MARKDOWN = Path("docs") / "provider-performance-baseline.md"


def parse_percent(text: str) -> float:
    """``10%``, ``10`` or ``0.1`` -> 0.10.

    Raises:
        ProvcfgError: not a number, or not between 0 and 1000 %.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", text or "")
    if not match:
        raise ProvcfgError(f"--gate/--slowdown {text!r}: give a percentage such as 10%")
    value = float(match.group(1))
    fraction = value / 100 if match.group(2) or value >= 1 else value
    if not 0 < fraction <= 10:
        raise ProvcfgError(f"--gate/--slowdown {text!r}: must be above 0 % and at most 1000 %")
    return fraction


def _needs_extra() -> None:
    try:
        import rich  # noqa: F401
        import scipy  # noqa: F401
    except ImportError as exc:
        raise ProvcfgError(
            f"provcfg bench needs {exc.name}: install the bench extra: pip install 'provcfg[bench]'"
        ) from None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _console(stderr: bool) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        # Logs and CI: wide enough that a table row stays one line.
        console = Console(stderr=stderr, highlight=False, width=150)
    return console


def _write_json(target: Path | None, data: Any) -> None:
    text = json.dumps(data, indent=1, allow_nan=True) + "\n"
    if target is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ProvcfgError(f"cannot write {target}: {exc.strerror}") from None


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_bench(args: argparse.Namespace) -> int:
    """``provcfg bench``: run a suite (or the user's providers, or the calibration).

    SIGTERM stops it like Ctrl-C: the running case's ``finally`` blocks stop what it
    started (the stub, CLIs, servers), then the command exits 130.
    """
    _needs_extra()
    import signal

    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        return _run_bench(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_bench(args: argparse.Namespace) -> int:
    from provcfg.bench._case import CaseContext
    from provcfg.bench._console import BarProgress, comparison_table, results_table
    from provcfg.bench._env import environment, load_average
    from provcfg.bench._gate import compare, gate_failed
    from provcfg.bench._registry import select
    from provcfg.bench._results import RunResult, load_ratios
    from provcfg.bench._runner import run_case_sync

    gate = parse_percent(args.gate) if args.gate else None
    if gate is not None and not args.compare:
        raise ProvcfgError("--gate needs --compare BASELINE.json (the ratios to hold)")
    baseline = load_ratios(args.compare)[0] if args.compare else None
    project = Path.cwd()
    ctx = CaseContext(smoke=args.smoke, project=project)
    if args.providers:
        from provcfg.bench._userproviders import user_cases

        cases = user_cases(Path(args.file), args.providers, args.prompt, args.model, args.stub)
    else:
        cases = select(args.suite, args.case or ())
    if args.list:
        for case in cases:
            sys.stdout.write(f"{case.name:32s} {'/'.join(case.suites):10s} {case.title}\n")
        return EXIT_OK
    err = _console(stderr=True)
    if args.calibrate:
        return _calibrate(args, cases, ctx, gate, err)
    run = RunResult(
        suite=args.suite,
        started=_now(),
        env=environment(project),
        command=["provcfg", *sys.argv[2:]] if sys.argv[1:2] == ["bench"] else [],
    )
    with BarProgress(err, cases) as progress:
        for case in cases:
            run.cases.append(run_case_sync(case, args.suite, ctx, progress))
    run.finished = _now()
    run.env["load_after"] = load_average()
    if args.format == "json":
        _write_json(Path(args.output) if args.output else None, run.as_dict())
    else:
        _console(stderr=False).print(results_table(run))
        if args.output:
            _write_json(Path(args.output), run.as_dict())
    if args.save:
        from provcfg.bench._history import append

        where = append(run, Path(args.history))
        err.print(f"saved to {where}")
    if args.baseline_out:
        _write_json(Path(args.baseline_out), run.baseline_dict())
        err.print(f"baseline written to {args.baseline_out}")
    if args.markdown is not None:
        from provcfg.bench._markdown import write_markdown

        target = Path(args.markdown or DEFAULT_MARKDOWN)
        write_markdown(run, target)
        err.print(f"wrote {target}")
    code = EXIT_OK
    for result in run.cases:
        if result.error is None:
            continue
        err.print(f"[red]case {result.name} failed: {result.error}[/red]")
        code = EXIT_FAILED
    if baseline is not None:
        comparisons = compare(run.ratio_entries(), baseline, gate)
        (err if args.format == "json" else _console(False)).print(
            comparison_table(comparisons, f"vs {args.compare}")
        )
        if gate is not None:
            regressions = gate_failed(comparisons)
            if regressions:
                keys = ", ".join(c.key for c in regressions)
                err.print(
                    f"[bold red]gate failed: slower than the baseline beyond the "
                    f"threshold with confidence: {keys}[/bold red]"
                )
                code = EXIT_FAILED
            else:
                err.print("gate passed: no ratio is worse than the baseline with confidence")
    return code


def _calibrate(
    args: argparse.Namespace, cases: list[Any], ctx: Any, gate: float | None, err: Any
) -> int:
    from rich.table import Table

    from provcfg.bench._calibrate import calibrate
    from provcfg.bench._env import environment, load_average
    from provcfg.bench._results import RunResult

    if args.runs < 1:
        raise ProvcfgError("--runs takes a whole number of at least 1")
    slowdown = parse_percent(args.slowdown)
    env = environment(Path.cwd())
    started = _now()

    def keep(done: list[Any]) -> None:
        # Written after every case: a long calibration stopped midway keeps what it measured.
        if args.output:
            partial = RunResult(
                suite=args.suite,
                started=started,
                finished=_now(),
                env=env,
                calibration={
                    "runs": args.runs,
                    "slowdown": slowdown,
                    "cases": [r.as_dict() for r in done],
                },
            )
            _write_json(Path(args.output), partial.as_dict())

    results = calibrate(
        cases,
        args.suite,
        ctx,
        runs=args.runs,
        slowdown=slowdown,
        gate=gate,
        report=err.print,
        on_case=keep,
    )
    env["load_after"] = load_average()
    table = Table(title=f"gate calibration: {args.runs} runs each way, suite {args.suite}")
    for column in ("case", "subject", "gate", "slowdown", "measured", "detected", "false alarms"):
        table.add_column(column)
    total_runs = detected = alarms = 0
    for r in results:
        d = r.as_dict()
        measured = d["measured_slowdown"]
        table.add_row(
            r.case,
            r.subject,
            f"{r.threshold * 100:.0f} %",
            f"{r.slowdown * 100:.0f} %",
            "-" if measured is None else f"{measured * 100:+.1f} %",
            f"{r.detections}/{r.runs}",
            f"{r.false_alarms}/{r.runs}",
        )
        total_runs += r.runs
        detected += r.detections
        alarms += r.false_alarms
    _console(False).print(table)
    if total_runs:
        _console(False).print(
            f"overall: detected {detected}/{total_runs} ({detected / total_runs:.1%}), "
            f"false alarms {alarms}/{total_runs} ({alarms / total_runs:.1%})"
        )
    record = RunResult(
        suite=args.suite,
        started=started,
        finished=_now(),
        env=env,
        calibration={
            "runs": args.runs,
            "slowdown": slowdown,
            "cases": [r.as_dict() for r in results],
        },
    )
    if args.output:
        _write_json(Path(args.output), record.as_dict())
    return EXIT_OK


def run_history(args: argparse.Namespace) -> int:
    """``provcfg bench history``: the trend of every subject ratio, with sparklines."""
    _needs_extra()
    import fnmatch

    from provcfg.bench._console import history_table
    from provcfg.bench._history import read, series

    runs = [r for r in read(Path(args.history)) if r.calibration is None]
    roles = ("subject", "control", "floor", "other") if args.all else ("subject",)
    found = series(runs, roles)
    if args.case:
        found = {
            k: v
            for k, v in found.items()
            if any(fnmatch.fnmatchcase(k.split("/", 1)[0], p) for p in args.case)
        }
    if not found:
        sys.stdout.write(f"no saved runs in {args.history}; save one with: provcfg bench --save\n")
        return EXIT_OK
    _console(False).print(history_table(found))
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    """``provcfg bench report``: the HTML page with the plots and/or the baseline document."""
    _needs_extra()
    from provcfg.bench._history import read
    from provcfg.bench._report import render_report
    from provcfg.bench._results import RunResult

    if not args.html and not args.markdown:
        raise ProvcfgError("bench report: give --html FILE, --markdown FILE or both")
    history = [r for r in read(Path(args.history)) if r.calibration is None]
    if args.markdown:
        from provcfg.bench._markdown import write_markdown

        if args.run:
            source = _read_run(Path(args.run))
        elif history:
            source = history[-1]
        else:
            raise ProvcfgError(
                f"--markdown: no --run FILE and no saved runs in {args.history}; "
                "save one with: provcfg bench --save"
            )
        write_markdown(source, Path(args.markdown))
        sys.stderr.write(f"wrote {args.markdown}\n")
        if not args.html:
            return EXIT_OK
    pair: tuple[RunResult, RunResult] | None = None
    if args.compare:
        pair = (_read_run(Path(args.compare[0])), _read_run(Path(args.compare[1])))
    if not history and pair is None:
        raise ProvcfgError(
            f"no saved runs in {args.history} and no --compare A B; "
            "save runs with: provcfg bench --save"
        )
    html = render_report(history, pair)
    target = Path(args.html)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ProvcfgError(f"cannot write {target}: {exc.strerror}") from None
    sys.stderr.write(f"wrote {target}\n")
    return EXIT_OK


def _read_run(path: Path) -> Any:
    from provcfg.bench._results import RunResult

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvcfgError(f"--compare: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ProvcfgError(f"--compare: {path} is not JSON ({exc})") from None
    if not isinstance(data, dict) or "cases" not in data:
        raise ProvcfgError(
            f"--compare: {path} is not a run; write one with: provcfg bench --format json -o FILE"
        )
    return RunResult.from_dict(data)
