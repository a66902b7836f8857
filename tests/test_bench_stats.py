"""The bench runner's statistics and gate on synthetic samples (no timing involved)."""

from __future__ import annotations

import math
import random

import pytest

from provcfg.bench._gate import compare, gate_failed
from provcfg.bench._results import BaselineEntry
from provcfg.bench._runner import rotations
from provcfg.bench._stats import Estimate, paired_difference, paired_ratio, quantile


def _noisy(n: int, center: float, spread: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [center * (1 + rng.gauss(0, spread)) for _ in range(n)]


def test_paired_ratio_median_and_interval_cover_the_true_ratio() -> None:
    """A 1.2x subject against drifting references gives a median near 1.2 inside its interval."""
    reference = [1.0 + 0.5 * i / 40 for i in range(40)]  # drift: pairing must remove it
    subject = [r * 1.2 * f for r, f in zip(reference, _noisy(40, 1.0, 0.02, 1), strict=True)]
    est = paired_ratio(subject, reference)
    assert est.n == 40
    assert est.low <= est.median <= est.high
    assert est.low < 1.2 < est.high
    assert abs(est.median - 1.2) < 0.02


def test_interval_narrows_with_more_rounds() -> None:
    """Four times the rounds give a clearly narrower interval for the same noise."""
    few = paired_ratio(_noisy(10, 1.1, 0.05, 2), [1.0] * 10)
    many = paired_ratio(_noisy(160, 1.1, 0.05, 3), [1.0] * 160)
    assert (many.high - many.low) < (few.high - few.low) * 0.6


def test_paired_statistics_are_deterministic_and_checked() -> None:
    """The same samples give the same interval; unequal lengths are refused."""
    s, r = _noisy(30, 2.0, 0.1, 4), _noisy(30, 1.0, 0.1, 5)
    assert paired_ratio(s, r) == paired_ratio(s, r)
    with pytest.raises(ValueError, match="differ in length"):
        paired_ratio(s, r[:-1])
    diff = paired_difference([3.0, 3.0, 3.0], [1.0, 1.0, 1.0])
    assert diff.median == 2.0


def test_degenerate_samples_do_not_crash() -> None:
    """Empty, single and constant samples give a finite or NaN estimate, no exception."""
    assert math.isnan(paired_ratio([], []).median)
    assert paired_ratio([2.0], [1.0]).median == 2.0
    constant = paired_ratio([2.0] * 5, [1.0] * 5)
    assert constant.low == constant.high == 2.0
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert math.isnan(quantile([], 0.5))


def test_rotations_put_every_contender_in_every_position() -> None:
    """Over as many rounds as contenders, each contender runs once in each position."""
    orders = rotations(["a", "b", "c"], 3)
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    for position in range(3):
        assert {o[position] for o in orders} == {"a", "b", "c"}


def _entry(median: float, low: float, high: float, role: str = "subject") -> BaselineEntry:
    return BaselineEntry(Estimate(median, low, high, 20), role, 0.10)


def test_gate_fails_only_when_the_interval_clears_the_threshold() -> None:
    """A regression needs the whole interval past baseline*1.1; a median alone is 'slower?'."""
    base = {"c/s": _entry(1.0, 0.98, 1.02)}
    clear = compare({"c/s": _entry(1.2, 1.15, 1.25)}, base, 0.10)
    assert clear[0].verdict == "regression"
    assert gate_failed(clear)
    unsure = compare({"c/s": _entry(1.15, 1.05, 1.25)}, base, 0.10)
    assert unsure[0].verdict == "slower?"
    assert not gate_failed(unsure)
    same = compare({"c/s": _entry(1.03, 0.99, 1.07)}, base, 0.10)
    assert same[0].verdict == "same"
    better = compare({"c/s": _entry(0.7, 0.65, 0.75)}, base, 0.10)
    assert better[0].verdict == "improvement"


def test_gate_ignores_controls_and_honours_wider_case_thresholds() -> None:
    """A control's regression never fails the gate; a case's 25 % threshold beats --gate 10 %."""
    base = {"c/aa": _entry(1.0, 0.98, 1.02, "control")}
    assert not gate_failed(compare({"c/aa": _entry(1.5, 1.4, 1.6, "control")}, base, 0.10))
    wide_base = {"c/s": BaselineEntry(Estimate(1.0, 0.98, 1.02, 20), "subject", 0.25)}
    wide_now = {"c/s": BaselineEntry(Estimate(1.2, 1.15, 1.25, 20), "subject", 0.25)}
    result = compare(wide_now, wide_base, 0.10)
    assert result[0].threshold == 0.25
    assert not gate_failed(result)


def test_new_and_gone_ratios_are_reported_not_failed() -> None:
    """A ratio only in the run is 'new', one only in the baseline 'gone'; neither fails."""
    result = compare({"a/s": _entry(1.0, 0.9, 1.1)}, {"b/s": _entry(1.0, 0.9, 1.1)}, 0.10)
    assert {c.key: c.verdict for c in result} == {"a/s": "new", "b/s": "gone"}
    assert not gate_failed(result)


def test_too_few_rounds_never_give_a_confident_verdict() -> None:
    """Two rounds (a smoke run) far past the line are only 'slower?', never a regression."""
    base = {"c/s": _entry(1.0, 0.98, 1.02)}
    few = {"c/s": BaselineEntry(Estimate(2.0, 1.9, 2.1, 2), "subject", 0.10)}
    result = compare(few, base, 0.10)
    assert result[0].verdict == "slower?"
    assert not gate_failed(result)


def test_a_ratio_whose_reference_changed_is_not_compared() -> None:
    """A case that now divides by another contender gives 'changed', never a regression."""
    base = {"c/s": BaselineEntry(Estimate(0.03, 0.029, 0.031, 20), "subject", 0.10, False, "old")}
    now = {"c/s": BaselineEntry(Estimate(2.3, 2.2, 2.4, 20), "subject", 0.10, False, "new")}
    result = compare(now, base, 0.10)
    assert result[0].verdict == "changed"
    assert not gate_failed(result)
