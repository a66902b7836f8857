"""The maintenance scripts under benchmarks/ that change committed files."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "benchmarks" / "median_baseline.py")


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(median: float) -> dict[str, Any]:
    return {"median": median, "low": median * 0.9, "high": median * 1.1, "n": 12}


def test_median_baseline_takes_each_entry_from_the_median_run_of_the_cases_named(
    tmp_path: Path,
) -> None:
    """Each entry of a named case comes whole from the run with the median median (per
    entry, so two entries of a case may come from different runs); entries of other
    cases stay; the file says where each replaced entry came from."""
    baseline = {
        "ratios": {"a/x": _entry(1.0), "a/y": _entry(5.0), "b/z": _entry(7.0)},
        "note": "kept",
    }
    medians = {"r1": (1.3, 4.0, 9.0), "r2": (1.1, 6.0, 9.0), "r3": (1.2, 5.5, 9.0)}
    files = []
    for name, (x, y, z) in medians.items():
        run = {"ratios": {"a/x": _entry(x), "a/y": _entry(y), "b/z": _entry(z)}}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(run))
        files.append(str(path))
    target = tmp_path / "baseline.json"
    target.write_text(json.dumps(baseline))

    done = subprocess.run(
        [sys.executable, SCRIPT, "--case", "a", "--baseline", str(target), *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    after = json.loads(target.read_text())
    assert after["ratios"]["a/x"] == _entry(1.2)  # r3's, whole
    assert after["ratios"]["a/y"] == _entry(5.5)  # r3's too: the median of 4.0, 6.0, 5.5
    assert after["ratios"]["b/z"] == _entry(7.0)  # not named: left alone
    assert after["note"] == "kept"
    assert after["recentred"] == {"a/x": files[2], "a/y": files[2]}

    # With an even number of runs the lower middle one: still a real run's entry.
    chosen = _script("median_baseline").recentre(
        {"ratios": {}},
        {"p": {"ratios": {"a/x": _entry(2.0)}}, "q": {"ratios": {"a/x": _entry(3.0)}}},
        ["a"],
    )
    assert chosen == {"a/x": "p"}


def test_median_baseline_refuses_runs_without_the_case_and_unreadable_files(
    tmp_path: Path,
) -> None:
    """No entry of the case in the runs, or a file that is not JSON: exit 2 with one
    line, and the baseline is not touched."""
    target = tmp_path / "baseline.json"
    target.write_text(json.dumps({"ratios": {"a/x": _entry(1.0)}}))
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"ratios": {"b/z": _entry(2.0)}}))
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    for files in ([str(run)], [str(bad)]):
        done = subprocess.run(
            [sys.executable, SCRIPT, "--case", "a", "--baseline", str(target), *files],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr
        if files == [str(bad)]:
            assert str(bad) in done.stderr  # names the file
    assert json.loads(target.read_text()) == {"ratios": {"a/x": _entry(1.0)}}
