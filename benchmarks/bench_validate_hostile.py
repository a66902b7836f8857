"""Benchmark `provcfg validate` on hostile manifests: thousands of problems, files at the cap.

Run: .venv/bin/python benchmarks/bench_validate_hostile.py [--runs N] [--timeout S] [--only SHAPE]

Each shape of tests/support_hostile.py (misspelled references over many names, unknown
keys, unknown kinds, tab floods, duplicate keys, huge words) is written at 1,200
repetitions (the issue's case: 1,200 misspelled references) and at the largest size under
the 1 MiB cap, then validated by the real command as a fresh process. Reported per file:
the median wall time, the bytes printed, and three floors measured in the same run:
`python -c pass` (process start), `provcfg validate providers.yaml` (the example manifest:
start-up and imports) and `yaml.load` with CSafeLoader of the same text (just parsing the
YAML, in process); "extra" is the hostile file's time minus the example's. The budget
(docs/performance.md): any file under the cap validates in under 2 s on this machine
kind, with bounded output.
On a loaded machine read the extra time against the YAML floor, not the absolute time.

To measure another checkout (the "before" column), point PYTHONPATH at its folder: the
command's subprocesses inherit it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support_hostile import GENERATORS, huge_words, largest_under  # noqa: E402

SCRIPT = Path(sys.executable).with_name("provcfg")


def _env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def run_once(argv: list[str], timeout: float) -> tuple[float, int, int]:
    """(seconds, bytes printed on stdout, exit code); seconds is inf after ``timeout``."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            argv, env=_env(), capture_output=True, timeout=timeout, check=False, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return float("inf"), 0, -1
    return time.perf_counter() - start, len(done.stdout), done.returncode


def median_process(argv: list[str], runs: int, timeout: float) -> tuple[float, int, int]:
    """Median seconds over ``runs`` (stopping after a timeout), bytes and code of the last."""
    samples = []
    printed = code = 0
    for _ in range(runs):
        seconds, printed, code = run_once(argv, timeout)
        samples.append(seconds)
        if seconds == float("inf"):
            break
    return statistics.median(samples), printed, code


def parse_floor(text: str) -> float:
    """Seconds to parse ``text`` with yaml.load(CSafeLoader): the floor of any validator."""
    start = time.perf_counter()
    with contextlib.suppress(yaml.YAMLError):
        yaml.load(text, Loader=yaml.CSafeLoader)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="process runs per file")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    parser.add_argument("--only", action="append", help="shape(s) to run (default: all)")
    args = parser.parse_args()

    cases: dict[str, str] = {}
    for shape, generate in GENERATORS.items():
        if args.only and shape not in args.only:
            continue
        cases[f"{shape} x1200"] = generate(1200)
        cases[f"{shape} at 1 MiB"] = largest_under(generate)
    if not args.only or "huge-words" in args.only:
        cases["huge-words 140k chars"] = huge_words(140_000)

    floor, _, _ = median_process([sys.executable, "-c", "pass"], 5, args.timeout)
    example, _, _ = median_process(
        [str(SCRIPT), "validate", str(ROOT / "providers.yaml")], 5, args.timeout
    )
    print(f"python {sys.version.split()[0]}, cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    print(f"python -c pass: {floor * 1000:.0f} ms; PYTHONPATH={_env().get('PYTHONPATH', '-')}")
    print(f"provcfg validate providers.yaml (the example): {example * 1000:.0f} ms")
    print(
        f"\n{'file':34} {'size':>8} {'validate':>10} {'extra':>8} {'printed':>10} "
        f"{'yaml floor':>11}  verdict"
    )
    with tempfile.TemporaryDirectory() as folder:
        for name, text in cases.items():
            path = Path(folder) / "m.yaml"
            path.write_text(text)
            seconds, printed, code = median_process(
                [str(SCRIPT), "validate", str(path)], args.runs, args.timeout
            )
            parse = parse_floor(text)
            timed_out = seconds == float("inf")
            shown = f">{args.timeout:.0f} s" if timed_out else f"{seconds:8.2f} s"
            extra = "-" if timed_out else f"{seconds - example:6.2f} s"
            verdict = "ok" if seconds < 2.0 and printed < 100_000 else "OVER"
            print(
                f"{name:34} {len(text.encode()) / 1024:6.0f}KB {shown:>10} {extra:>8} "
                f"{printed / 1024:8.1f}KB {parse:9.2f} s  {verdict} (exit {code})",
                flush=True,
            )


if __name__ == "__main__":
    main()
