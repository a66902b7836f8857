"""Re-centre some entries of the committed baseline on the median of several runs.

When a case's ratio sits on another level on the machines of the kind than when the
baseline was made (docs/performance.md, "Two things decide a threshold"), its entries
can be replaced: for each ``case/contender`` of the given cases, the entry of the run
whose median is the median of the runs' medians (an odd number of runs gives a real
run's entry, interval and all). The other entries are left as they are, and the file
records where the replaced ones came from (``recentred``).

    .venv/bin/python benchmarks/median_baseline.py --case manifest.load RUN.json ...
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def recentre(
    baseline: dict[str, Any], runs: dict[str, dict[str, Any]], cases: list[str]
) -> dict[str, str]:
    """Replace ``baseline``'s entries of ``cases``; returns key -> the run file used."""
    chosen: dict[str, str] = {}
    keys = {k for run in runs.values() for k in run["ratios"] if k.split("/", 1)[0] in cases}
    for key in sorted(keys):
        having = [(name, run["ratios"][key]) for name, run in runs.items() if key in run["ratios"]]
        middle = statistics.median_low(entry["median"] for _, entry in having)
        name, entry = next((n, e) for n, e in having if e["median"] == middle)
        baseline["ratios"][key] = entry
        chosen[key] = name
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description="re-centre baseline entries on several runs")
    parser.add_argument("runs", nargs="+", type=Path, help="run JSONs (provcfg bench -o)")
    parser.add_argument("--case", action="append", required=True, help="a case to re-centre")
    parser.add_argument("--baseline", type=Path, default=ROOT / "benchmarks" / "baseline.json")
    args = parser.parse_args()
    loaded: dict[str, dict[str, Any]] = {}
    for path in (args.baseline, *args.runs):
        try:
            data = json.loads(path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("ratios"), dict):
                raise ValueError("no 'ratios' object")
        except (OSError, ValueError) as exc:
            sys.stderr.write(
                f"median_baseline: {path}: {exc}; give a baseline and run JSONs "
                "(provcfg bench -o FILE / --baseline-out FILE)\n"
            )
            return 2
        loaded[str(path)] = data
    baseline = loaded.pop(str(args.baseline))
    runs = loaded
    chosen = recentre(baseline, runs, args.case)
    if not chosen:
        sys.stderr.write(f"median_baseline: no entry of {args.case} in the runs\n")
        return 2
    baseline.setdefault("recentred", {}).update(chosen)
    args.baseline.write_text(json.dumps(baseline, indent=1) + "\n")
    for key, name in chosen.items():
        sys.stdout.write(f"{key}: {baseline['ratios'][key]['median']:.4g} from {name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
