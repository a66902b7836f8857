"""docs/performance.md's "Adding a case" example is a working case module, and every case runs.

The example block is executed as a module and its case run through the real runner;
then the whole quick suite runs in smoke mode (tiny sizes, 2 rounds) through the
command line, so a case that no longer builds (an API it uses moved) fails here.
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

import pytest

from provcfg.bench import Case, CaseContext, run_case_sync
from provcfg.bench._registry import all_cases
from tests.support_bench import run_cli

ROOT = Path(__file__).resolve().parent.parent


def _example() -> types.ModuleType:
    text = (ROOT / "docs" / "performance.md").read_text()
    block = re.search(r"<!-- sketch: bench-case-example[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert block is not None, "docs/performance.md lost its bench-case-example block"
    module = types.ModuleType("bench_case_example")
    exec(compile(block.group(1), "docs/performance.md", "exec"), module.__dict__)
    return module


def test_the_documented_example_case_runs_and_gives_a_ratio() -> None:
    """The example module's CASES run: one subject ratio with an interval, budget recorded."""
    module = _example()
    (case,) = module.CASES
    assert isinstance(case, Case) and case.group == "example"
    result = run_case_sync(case, "full", CaseContext(), rounds=(6, 6), seconds=0.0)
    assert result.error is None, result.error
    est = result.ratios["json.dumps"]
    assert est.n == 6 and est.low <= est.median <= est.high
    assert result.budgets[0]["max_ratio"] == 5.0


def test_case_names_are_unique_and_each_quick_case_is_in_the_full_suite() -> None:
    """The registry finds every family; quick is a subset of full, so a baseline covers it."""
    cases = all_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names))
    assert {c.group for c in cases} >= {
        "lookup",
        "clipath",
        "manifest",
        "pool",
        "stream",
        "forwarding",
        "concurrency",
        "cli",
        "reload",
        "scale",
        "validate",
        "cache",
        "stub",
    }
    for case in cases:
        assert "full" in case.suites, case.name


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_quick_case_runs_in_smoke_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """provcfg bench --smoke --suite quick runs every quick case without an error (exit 0)."""
    monkeypatch.chdir(tmp_path)
    assert run_cli(["bench", "--smoke", "--suite", "quick", "-o", "smoke.json"]) == 0
    data = json.loads((tmp_path / "smoke.json").read_text())
    quick = {c.name for c in all_cases() if "quick" in c.suites}
    ran = {c["name"] for c in data["cases"] if c["error"] is None and c["skipped"] is None}
    assert ran == quick
