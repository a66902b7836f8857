"""``provcfg bench``: the benchmark suite as a product.

Cases (:mod:`provcfg.bench.cases`) measure provcfg's operations side by side with an
in-run reference (the SDK used directly, a dict lookup, the CLI spawned by hand);
the runner (:mod:`provcfg.bench._runner`) interleaves them round by round and gives
each ratio's median with a bootstrap interval; the gate (:mod:`provcfg.bench._gate`)
compares ratios with a committed baseline; the history, the HTML report and the
baseline document are built from the same JSON.

This package sits in the top layer, beside the command line: it may import the
runtime and everything below, and nothing in the library imports it. It needs the
``bench`` extra (rich, scipy).
"""

from provcfg.bench._case import (
    Budget,
    Case,
    CaseContext,
    Contender,
    Sample,
    async_contender,
    statement_contender,
)
from provcfg.bench._registry import all_cases, select
from provcfg.bench._results import CaseResult, RunResult
from provcfg.bench._runner import run_case, run_case_sync
from provcfg.bench._spin import Spin

__all__ = [
    "Budget",
    "Case",
    "CaseContext",
    "CaseResult",
    "Contender",
    "RunResult",
    "Sample",
    "Spin",
    "all_cases",
    "async_contender",
    "run_case",
    "run_case_sync",
    "select",
    "statement_contender",
]
