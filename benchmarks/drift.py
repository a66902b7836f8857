"""How far each gated ratio moved from the committed baseline, run by run.

A calibration (``provcfg bench --calibrate``) makes its baseline minutes before its
runs, so it cannot see how far a ratio moves between sessions and machines; the CI
gate meets that drift every time (a run days later, on another machine of the kind,
against ``benchmarks/baseline.json``). This reads run JSONs (``provcfg bench -o``) and
calibration JSONs (their per-case ``baseline`` run) and prints, per subject, each
file's median ratio over the baseline's median: the figures docs/performance.md
uses to set the thresholds ("Two things decide a threshold").

    .venv/bin/python benchmarks/drift.py benchmarks/runs/2026-12-02-*.json
    .venv/bin/python benchmarks/drift.py --baseline OTHER.json RUN.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def drifts(baseline: dict[str, Any], files: list[Path]) -> dict[str, list[tuple[str, float]]]:
    """Per ``case/subject`` key: (file name, its median ratio / the baseline's median)."""
    rows: dict[str, list[tuple[str, float]]] = {}
    for path in files:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        name = path.stem
        calibration = data.get("calibration") or {}
        if calibration:
            for case in calibration.get("cases", []):
                key = f"{case['case']}/{case['subject']}"
                if case.get("baseline") and key in baseline:
                    rows.setdefault(key, []).append(
                        (name, case["baseline"] / baseline[key]["median"])
                    )
            continue
        for key, entry in (data.get("ratios") or {}).items():
            base = baseline.get(key)
            if base is None or entry.get("role") != "subject":
                continue
            if entry.get("reference") and base.get("reference") not in (None, entry["reference"]):
                continue  # measured against another contender: not the same ratio
            rows.setdefault(key, []).append((name, entry["median"] / base["median"]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run or calibration JSON files")
    parser.add_argument("--baseline", type=Path, default=ROOT / "benchmarks" / "baseline.json")
    args = parser.parse_args()
    try:
        baseline = json.loads(args.baseline.read_text())["ratios"]
        rows = drifts(baseline, args.runs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"drift.py: cannot read the runs or the baseline: {exc}", file=sys.stderr)
        print("give run or calibration JSON files written by provcfg bench -o", file=sys.stderr)
        return 2
    for key, seen in sorted(rows.items()):
        worst = max(ratio for _, ratio in seen)
        cells = "  ".join(f"{name}: {ratio - 1:+.1%}" for name, ratio in seen)
        print(f"{key}\n  largest {worst - 1:+.1%} (+ is slower than the baseline); {cells}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # piped into head: the reader has what it wanted
        sys.stderr.close()
        raise SystemExit(0) from None
