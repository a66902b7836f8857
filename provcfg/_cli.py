"""The ``provcfg`` command: argument parsing only; the work is done by library functions.

Each subcommand is a :class:`Command` in :data:`COMMANDS`: a name, a help line, a function
adding its arguments and a function running it (or a ``"module:function"`` string,
imported only when that subcommand runs, so ``provcfg validate`` stays light).

Exit codes: 0 success/valid, 1 invalid (or ``schema --check`` drift), 2 usage error or
unreadable file, 70 internal error, 130 interrupted. No input produces a traceback, and
no input produces unbounded output: problems are listed up to
:data:`~provcfg._errors.PROBLEM_LIMIT` (then ``... and N more problems``), and file names
are printed escaped (:func:`~provcfg._errors.printable`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from provcfg._errors import (
    PROBLEM_LIMIT,
    ManifestError,
    ManifestReadError,
    Problem,
    ProvcfgError,
    more_problems,
    printable,
)

__all__ = ["COMMANDS", "Command", "main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
DEFAULT_MANIFEST = "providers.yaml"
DEFAULT_SCHEMA = "schemas/providers.schema.json"
_FILE_HELP = f"the manifest (default: {DEFAULT_MANIFEST})"

Runner = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A subcommand: ``configure`` adds its arguments, ``run`` runs it and returns an exit code."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Runner | str
    passthrough: bool = False
    """The command parses its own arguments (``args.argv``), ``--help`` included."""
    logs: bool = True
    """Configure structlog (stderr) before running; validate/schema/show never log, and
    skipping the structlog import keeps them inside their start-up budget."""

    def runner(self) -> Runner:
        """The run function, imported first if it was given as ``"module:function"``."""
        if isinstance(self.run, str):
            module, _, attr = self.run.partition(":")
            found: Runner = getattr(importlib.import_module(module), attr)
            return found
        return self.run


# --------------------------------------------------------------------------- validate


def _configure_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files", nargs="*", metavar="FILE", help=f"manifests to check (default: {DEFAULT_MANIFEST})"
    )
    _add_format(parser)


def _add_format(
    parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("text", "json")
) -> None:
    parser.add_argument(
        "--format",
        choices=choices,
        default=choices[0],
        help=f"output format: {' or '.join(choices)} (default: {choices[0]})",
    )


def _run_validate(args: argparse.Namespace) -> int:
    from provcfg._loading import load_manifest, manifest_model_for

    manifest_model_for()  # a broken plugin fails once, before any file
    files: list[str] = args.files or [DEFAULT_MANIFEST]
    shown: list[Problem] = []  # at most PROBLEM_LIMIT over all files
    omitted = 0
    results = []
    code = EXIT_OK
    for file in files:
        try:
            manifest = load_manifest(file)
        except ManifestError as exc:
            unreadable = isinstance(exc, ManifestReadError)
            code = max(code, EXIT_USAGE if unreadable else EXIT_INVALID)
            room = max(0, PROBLEM_LIMIT - len(shown))
            shown.extend(exc.problems[:room])
            omitted += exc.omitted + max(0, len(exc.problems) - room)
            results.append({"file": printable(file), "valid": False, "problems": exc.total})
        else:
            results.append(
                {"file": printable(file), "valid": True, "providers": len(manifest.providers)}
            )
    if args.format == "json":
        report = {
            "valid": code == EXIT_OK,
            "files": results,
            "problems": [p.as_dict() for p in shown],
            "more_problems": omitted,
        }
        _write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return code
    lines = [str(p) for p in shown]
    if omitted:
        lines.append(more_problems(omitted))
    lines.extend(f"{r['file']}: ok ({r['providers']} providers)" for r in results if r["valid"])
    if shown:
        count = len(shown) + omitted
        lines.append(f"{count:,} problem{'s' if count != 1 else ''} found")
    _write("\n".join(lines) + "\n")
    return code


def _problem_text(exc: ManifestError) -> str:
    """The problems of ``exc``, one per line, ending in ``... and N more`` when capped."""
    lines = [str(p) for p in exc.problems]
    if exc.omitted:
        lines.append(more_problems(exc.omitted))
    return "\n".join(lines)


# --------------------------------------------------------------------------- schema


def _configure_schema(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="write the schema to FILE")
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 if FILE (default {DEFAULT_SCHEMA}) differs from the generated schema",
    )
    parser.add_argument(
        "--path",
        action="store_true",
        help="print the path of the schema file installed with provcfg (built-in kinds)",
    )


def _run_schema(args: argparse.Namespace) -> int:
    from provcfg._schema import installed_schema_path, schema_text

    if args.path:
        if args.output or args.check:
            raise ProvcfgError("schema --path takes neither -o nor --check")
        _write(f"{installed_schema_path()}\n")
        return EXIT_OK
    text = schema_text()
    if args.check:
        from provcfg._loading import read_manifest_file

        target = Path(args.output or DEFAULT_SCHEMA)
        try:
            # Read like a manifest: a FIFO or device there is refused, not waited on.
            current = read_manifest_file(target).data.decode("utf-8")
        except (ManifestError, UnicodeDecodeError) as exc:
            reason = exc.problems[0].message if isinstance(exc, ManifestError) else _reason(exc)
            _error(
                printable(
                    f"cannot read {target}: {reason}; write it with: provcfg schema -o {target}"
                )
            )
            return EXIT_USAGE
        if current != text:
            _error(f"{target} is out of date; regenerate it with: provcfg schema -o {target}")
            return EXIT_INVALID
        _write(f"{target}: up to date\n")
        return EXIT_OK
    if args.output:
        target = Path(args.output)
        try:
            _write_atomically(target, text)
        except OSError as exc:
            _error(f"cannot write {target}: {_reason(exc)}")
            return EXIT_USAGE
        return EXIT_OK
    _write(text)
    return EXIT_OK


def _write_atomically(target: Path, text: str) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)


# --------------------------------------------------------------------------- show


def _configure_show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", default=DEFAULT_MANIFEST, metavar="FILE", help=_FILE_HELP
    )
    _add_format(parser, ("yaml", "json"))


def _run_show(args: argparse.Namespace) -> int:
    from provcfg._loading import load_manifest
    from provcfg._render import render_manifest

    try:
        manifest = load_manifest(args.file)
    except ManifestError as exc:
        _error(_problem_text(exc))
        return EXIT_USAGE if isinstance(exc, ManifestReadError) else EXIT_INVALID
    _write(render_manifest(manifest, args.format))
    return EXIT_OK


# --------------------------------------------------------------------------- run


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "prompt", metavar="PROMPT", help="the prompt, or - to read it from standard input"
    )
    parser.add_argument("-f", "--file", default=DEFAULT_MANIFEST, help=_FILE_HELP)
    parser.add_argument("-p", "--provider", help="provider name (default: default_provider)")
    parser.add_argument("-m", "--model", help="model alias or id")
    parser.add_argument("-s", "--system", help="system prompt")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="maximum output tokens")
    _add_format(parser)
    parser.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        help="the same as --format json: one JSON event per line",
    )
    parser.add_argument("--timings", action="store_true", help="print timings to stderr")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run the prompt N times (warm timings after the first)",
    )
    parser.add_argument(
        "--stub",
        action="store_true",
        help="serve the embedded stub API on the provider's loopback base_url during the run",
    )


MAX_STDIN_PROMPT = 32 * 1024 * 1024
"""The largest prompt ``provcfg run -`` reads (the Messages API's request size limit):
an endless stdin such as ``/dev/zero`` is refused instead of filling memory."""


def _read_stdin_prompt() -> str:
    """Read the prompt from standard input as UTF-8 bytes, bounded by :data:`MAX_STDIN_PROMPT`.

    Raises:
        ProvcfgError: stdin is closed, larger than the limit, or not UTF-8 text.
    """
    stream: BinaryIO | None = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise ProvcfgError(
            "run -: standard input is closed; pipe the prompt in or give it as PROMPT"
        )
    data = stream.read(MAX_STDIN_PROMPT + 1)
    if len(data) > MAX_STDIN_PROMPT:
        raise ProvcfgError(
            f"run -: the prompt on standard input is larger than {MAX_STDIN_PROMPT} bytes; "
            "pipe a shorter prompt"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Decoded here, not by sys.stdin: its error handler depends on the locale and
        # PYTHONIOENCODING, and the strict one ended in an internal error.
        raise ProvcfgError(
            f"run -: byte {exc.start} of standard input (0x{data[exc.start]:02x}) is not UTF-8; "
            "pipe UTF-8 text"
        ) from None


def _run_run(args: argparse.Namespace) -> int:
    from provcfg._run import RunOptions, run

    prompt = _read_stdin_prompt() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        source = "standard input" if args.prompt == "-" else "the PROMPT argument"
        raise ProvcfgError(f"the prompt is empty ({source}); give the text to send")
    if args.repeat < 1 or (args.max_tokens is not None and args.max_tokens < 1):
        raise ProvcfgError("--repeat and --max-tokens take a whole number of at least 1")
    return run(
        RunOptions(
            file=args.file,
            prompt=prompt,
            provider=args.provider,
            model=args.model,
            system=args.system,
            max_tokens=args.max_tokens,
            json_events=args.format == "json",
            timings=args.timings,
            stub=args.stub,
            repeat=args.repeat,
        )
    )


# --------------------------------------------------------------------------- watch, stub


def _configure_watch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", default=DEFAULT_MANIFEST, metavar="FILE", help=_FILE_HELP
    )
    _add_format(parser)
    parser.add_argument(
        "--metrics-addr",
        metavar="HOST:PORT",
        type=_host_port,
        help="serve /metrics, /metrics.json, /healthz and /alerts there (e.g. 127.0.0.1:9464)",
    )


def _host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); argparse reports a ValueError as usage."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not HOST:PORT; write e.g. 127.0.0.1:9464 ([::1]:9464 for IPv6)"
        )
    return host, int(port)


def _run_watch(args: argparse.Namespace) -> int:
    from provcfg._watchcmd import run as watch_command

    return watch_command(
        args.file, metrics_addr=args.metrics_addr, json_lines=args.format == "json"
    )


# --------------------------------------------------------------------------- monitoring


def _configure_alerts(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = sub.add_parser(
        "export",
        help="write the manifest's alert rules as a Prometheus rules file",
        description="Write monitoring.alerts as a Prometheus alerting-rules file "
        "(check it with promtool check rules FILE).",
    )
    export.add_argument("output", metavar="FILE", help="rules file to write (- for stdout)")
    export.add_argument(
        "--manifest",
        default=DEFAULT_MANIFEST,
        metavar="MANIFEST",
        help=f"the manifest whose alerts to export (default: {DEFAULT_MANIFEST})",
    )


def _run_alerts(args: argparse.Namespace) -> int:
    import yaml

    from provcfg._loading import load_manifest
    from provcfg._monitoring._alerts import load_baseline
    from provcfg._monitoring._export import prometheus_rules

    manifest = load_manifest(args.manifest)
    spec = manifest.monitoring
    baseline = load_baseline(spec.baseline, manifest_file=args.manifest) if spec.baseline else {}
    text = "# Generated by provcfg alerts export from " + os.path.basename(args.manifest) + "\n"
    text += yaml.safe_dump(prometheus_rules(manifest, baseline), sort_keys=False, width=1000)
    if args.output == "-":
        _write(text)
        return EXIT_OK
    try:
        _write_atomically(Path(args.output), text)
    except OSError as exc:
        _error(f"provcfg alerts export: cannot write {args.output}: {_reason(exc)}")
        return EXIT_USAGE
    return EXIT_OK


def _configure_dashboard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", default=DEFAULT_MANIFEST, metavar="FILE", help=_FILE_HELP
    )
    parser.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    parser.add_argument("--title", default="provcfg", help="the dashboard's title")


def _run_dashboard(args: argparse.Namespace) -> int:
    from provcfg._loading import load_manifest
    from provcfg._monitoring._export import dashboard_json

    text = dashboard_json(load_manifest(args.file), title=args.title)
    if args.output is None:
        _write(text)
        return EXIT_OK
    try:
        _write_atomically(Path(args.output), text)
    except OSError as exc:
        _error(f"provcfg dashboard: cannot write {args.output}: {_reason(exc)}")
        return EXIT_USAGE
    return EXIT_OK


def _run_stub(args: argparse.Namespace) -> int:
    from provcfg.stub.command import main as stub_main

    return stub_main(list(args.argv))


# --------------------------------------------------------------------------- bench


def _configure_bench(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite",
        choices=("quick", "full"),
        default="quick",
        help="quick: the CI set, under 3 minutes; full: every case, longer runs (default quick)",
    )
    parser.add_argument(
        "--case",
        action="append",
        metavar="PATTERN",
        help="run only cases whose name matches PATTERN (fnmatch, e.g. 'stream.*'); repeatable",
    )
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: progress and tables on the terminal; json: every sample and the "
        "environment on stdout (or -o)",
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="also write the JSON result to FILE")
    parser.add_argument(
        "--compare",
        metavar="BASELINE",
        help="compare every ratio with BASELINE (a baseline "
        "or a run JSON) and print the comparison table",
    )
    parser.add_argument(
        "--gate",
        metavar="PERCENT",
        help="with --compare: exit 1 when a provcfg ratio is worse "
        "than the baseline by more than PERCENT (e.g. 10%%) with confidence; a case's own "
        "wider threshold wins",
    )
    parser.add_argument(
        "--save", action="store_true", help="append this run to the history (see --history)"
    )
    parser.add_argument(
        "--history",
        metavar="FILE",
        default=".provcfg/bench/history.jsonl",
        help="the history file (JSON lines; default .provcfg/bench/history.jsonl)",
    )
    parser.add_argument(
        "--baseline-out",
        metavar="FILE",
        help="write the portable baseline (ratios only), e.g. benchmarks/baseline.json",
    )
    parser.add_argument(
        "--markdown",
        nargs="?",
        const="",
        metavar="FILE",
        help="write the baseline document (default docs/provider-performance-baseline.md)",
    )
    parser.add_argument(
        "--providers",
        nargs="+",
        metavar="NAME",
        help="benchmark these providers of your manifest (-f) instead of the built-in cases",
    )
    parser.add_argument(
        "-f", "--file", default=DEFAULT_MANIFEST, help="manifest for --providers (providers.yaml)"
    )
    parser.add_argument(
        "--prompt", default="Say hello", help="the prompt --providers sends (default: Say hello)"
    )
    parser.add_argument("-m", "--model", help="model alias or id for --providers")
    parser.add_argument(
        "--stub",
        action="store_true",
        help="with --providers: serve the embedded stub on each provider's loopback base_url",
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="measure the gate: N runs unchanged and N with a real slowdown inserted; "
        "report detection and false-alarm rates",
    )
    parser.add_argument(
        "--runs", type=int, default=20, help="with --calibrate: runs each way (default 20)"
    )
    parser.add_argument(
        "--slowdown",
        default="15%",
        help="with --calibrate: the inserted slowdown, of the subject's time (default 15%%)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny parameters and 2 rounds: checks that every case runs (figures mean nothing)",
    )
    actions = parser.add_subparsers(
        dest="bench_action",
        metavar="ACTION",
        help="history or report (none: run the benchmarks)",
    )
    history = actions.add_parser(
        "history",
        help="the trend of each ratio over the saved runs, with sparklines",
        description="the trend of each ratio over the saved runs, with sparklines",
    )
    history.add_argument(
        "--history",
        metavar="FILE",
        default=".provcfg/bench/history.jsonl",
        help="the history file (default .provcfg/bench/history.jsonl)",
    )
    history.add_argument(
        "--case", action="append", metavar="PATTERN", help="only cases matching PATTERN"
    )
    history.add_argument(
        "--all", action="store_true", help="also controls, floors and others, not only subjects"
    )
    report = actions.add_parser(
        "report",
        help="write one self-contained HTML report with plots",
        description="write one self-contained HTML report with plots (works offline)",
    )
    report.add_argument("--html", metavar="FILE", help="write the HTML report to FILE")
    report.add_argument(
        "--markdown",
        metavar="FILE",
        help="write the baseline document (as bench --markdown does) from --run or the latest "
        "saved run",
    )
    report.add_argument(
        "--run", metavar="FILE", help="with --markdown: the run JSON (bench -o FILE) to render"
    )
    report.add_argument(
        "--history",
        metavar="FILE",
        default=".provcfg/bench/history.jsonl",
        help="the history file (default .provcfg/bench/history.jsonl)",
    )
    report.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="two run JSON files (bench --format json -o) to compare side by side",
    )


def _run_bench(args: argparse.Namespace) -> int:
    from provcfg.bench import _command

    action = getattr(args, "bench_action", None)
    if action == "history":
        return _command.run_history(args)
    if action == "report":
        return _command.run_report(args)
    return _command.run_bench(args)


# --------------------------------------------------------------------------- init, doctor


def _configure_init(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        nargs="?",
        default=DEFAULT_MANIFEST,
        metavar="FILE",
        help=f"the manifest to write (default: {DEFAULT_MANIFEST}); its folder must exist",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite FILE and its schemas/providers.schema.json if they exist",
    )
    _add_format(parser)


def _configure_doctor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", nargs="?", default=DEFAULT_MANIFEST, metavar="FILE", help=_FILE_HELP
    )
    _add_format(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=1.5,
        metavar="SECONDS",
        help="longest any one check may take (default: 1.5); checks run concurrently",
    )


# --------------------------------------------------------------------------- table

COMMANDS: list[Command] = [
    Command(
        "validate",
        "check manifests; print FILE:LINE:COL: path: message",
        _configure_validate,
        _run_validate,
        logs=False,
    ),
    Command(
        "schema",
        "print or check the JSON Schema of the manifest",
        _configure_schema,
        _run_schema,
        logs=False,
    ),
    Command(
        "show",
        "print the effective manifest (secrets masked)",
        _configure_show,
        _run_show,
        logs=False,
    ),
    Command("run", "stream one prompt through a provider", _configure_run, _run_run),
    Command(
        "init",
        "write a commented manifest for this machine (detected CLIs and keys)",
        _configure_init,
        "provcfg._initcmd:run",
        logs=False,
    ),
    Command(
        "doctor",
        "check a manifest against this machine: one verdict and fix per part",
        _configure_doctor,
        "provcfg._doctor:run",
    ),
    Command("watch", "live-reload a manifest; one line per reload", _configure_watch, _run_watch),
    Command(
        "bench",
        "benchmark provcfg (or your providers) side by side; gate, history, report",
        _configure_bench,
        _run_bench,
    ),
    Command(
        "alerts",
        "export the manifest's alert rules for Prometheus",
        _configure_alerts,
        _run_alerts,
        logs=False,
    ),
    Command(
        "dashboard",
        "print a Grafana dashboard (JSON model) for provcfg's metrics",
        _configure_dashboard,
        _run_dashboard,
        logs=False,
    ),
    Command(
        "stub",
        "run the loopback stub API server (see provcfg stub --help)",
        lambda parser: None,
        _run_stub,
        passthrough=True,
    ),
]
"""Subcommands in help order; add one by appending a :class:`Command`."""


def _parser() -> argparse.ArgumentParser:
    from provcfg._version import __version__

    parser = argparse.ArgumentParser(
        prog="provcfg",
        description="Configuration-driven runtime for AI coding-agent providers.",
    )
    parser.add_argument("--version", action="version", version=f"provcfg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        child = sub.add_parser(
            command.name,
            help=command.help,
            description=command.help,
            add_help=not command.passthrough,
        )
        command.configure(child)
        child.set_defaults(_command=command)
    return parser


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _error(text: str) -> None:
    sys.stderr.write(f"{text}\n")
    sys.stderr.flush()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``provcfg`` command line with ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit code; never raises (``SystemExit`` from ``--help`` becomes its code).
    """
    try:
        try:
            # A passthrough command parses its own arguments: everything argparse does
            # not know is handed to it (argparse.REMAINDER would still claim options).
            args, rest = _parser().parse_known_args(argv)
            command: Command = args._command
            if rest and not command.passthrough:
                _parser().parse_args(argv)  # reports the unknown arguments, exits 2
            args.argv = rest
        except SystemExit as exc:  # argparse: --help, --version, usage errors
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        if command.logs:
            from provcfg._logs import configure as configure_logging

            configure_logging()
        return command.runner()(args)
    except KeyboardInterrupt:
        _error("provcfg: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`provcfg show | head`): silence the flush at exit and
        # exit 1, as the Python documentation recommends for EPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_INVALID
    except ManifestError as exc:  # from run (and any command that loads a manifest)
        _error(_problem_text(exc))
        return EXIT_USAGE if isinstance(exc, ManifestReadError) else EXIT_INVALID
    except ProvcfgError as exc:
        _error(printable(f"provcfg: {exc}"))
        return EXIT_USAGE
    except Exception as exc:
        _internal_error(exc)
        return EXIT_INTERNAL


def _internal_error(exc: Exception) -> None:
    """One line for the user; a log event with the place (never the message: it may hold data)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"
    try:
        import structlog

        # Always stderr: stdout belongs to `show`/`schema`, whatever structlog was set up with.
        log = structlog.wrap_logger(structlog.PrintLogger(file=sys.stderr))
        log.error("cli.internal_error", error_type=type(exc).__name__, where=where)
    except Exception:  # noqa: S110 - logging must not turn one error into a traceback
        pass
    _error(f"provcfg: internal error: {type(exc).__name__}")


if __name__ == "__main__":
    raise SystemExit(main())
