"""Manifests with thousands of problems validate in bounded time with bounded output.

Each shape of tests/support_hostile.py (misspelled references over thousands of names,
unknown keys, unknown kinds, tab floods, duplicate keys, huge words) is generated at
1,200 repetitions (the issue's case) and at the largest size under the 1 MiB cap. The
checks: the loader keeps the first 100 problems and counts the rest; a message names at
most five candidates; the did-you-mean still works for the first problems; the real
``provcfg validate`` prints at most ~100 lines in text and JSON, ending with ``... and N
more problems``. Subprocess timeouts only guard against a hang; nothing asserts time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from provcfg._errors import PROBLEM_LIMIT, ManifestError
from tests.support_hostile import (
    GENERATORS,
    huge_words,
    largest_under,
    misspelled_pools,
)
from tests.support_manifest import load_text, run_cli

MAX_OUTPUT = 100_000
"""Bytes `validate` may print for any one file: 100 problems of a few hundred bytes each."""
_LISTING = re.compile(r"\(\w+s: ([^)]*)\)")


def _error(text: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        load_text(text)
    return info.value


def _check_bounded(error: ManifestError) -> None:
    assert len(error.problems) <= PROBLEM_LIMIT
    assert len(str(error)) < MAX_OUTPUT
    for problem in error.problems:
        for listed in _LISTING.findall(problem.message):
            names = listed.split(", ... and ")[0].split(", ")
            assert len(names) <= 5 or "kinds" in problem.message, problem.message
        assert len(problem.message) < 1000, problem.message


@pytest.mark.parametrize("shape", GENERATORS)
def test_1200_repetitions_are_capped(shape: str) -> None:
    """1,200 repetitions of each shape: 100 problems kept, the rest counted, short messages."""
    error = _error(GENERATORS[shape](1200))
    _check_bounded(error)
    assert error.total >= 1200 and error.omitted == error.total - len(error.problems)
    assert str(error).endswith(f"... and {error.omitted:,} more problems")


@pytest.mark.slow
@pytest.mark.parametrize("shape", GENERATORS)
def test_largest_file_under_the_cap_is_capped(shape: str) -> None:
    """Each shape filling the 1 MiB cap: the same bounds hold (and the load completes)."""
    error = _error(largest_under(GENERATORS[shape]))
    _check_bounded(error)
    assert error.total > PROBLEM_LIMIT


def test_did_you_mean_holds_for_the_shown_problems_of_a_big_file() -> None:
    """1,200 misspelled pool names over 1,200 pools: each problem shown suggests its pool."""
    error = _error(misspelled_pools(1200))
    for problem in error.problems:
        number = re.search(r"pool-nmber-(\d+)", problem.message)
        assert number is not None, problem.message
        assert f"did you mean 'pool-number-{number.group(1)}'?" in problem.message
        assert "... and 1,195 more)" in problem.message


def test_huge_words_are_never_echoed() -> None:
    """Keys, values and variable names of 140,000 characters appear only as their length."""
    error = _error(huge_words(140_000))
    text = str(error)
    assert "w" * 65 not in text
    assert "<a 140,000-character name>" in text
    assert len(text) < 5000


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_cli_output_is_capped(tmp_path: Path, fmt: str) -> None:
    """`provcfg validate` of the issue's 1,200-reference file prints a bounded report."""
    path = tmp_path / "m.yaml"
    path.write_text(misspelled_pools(1200))
    done = run_cli("validate", "--format", fmt, str(path), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert len(done.stdout.encode()) < MAX_OUTPUT
    if fmt == "json":
        report = json.loads(done.stdout)
        assert len(report["problems"]) == PROBLEM_LIMIT
        assert report["more_problems"] == 1200 - PROBLEM_LIMIT
        assert report["files"][0]["problems"] == 1200
        return
    lines = done.stdout.splitlines()
    assert len(lines) == PROBLEM_LIMIT + 2
    assert lines[-2:] == ["... and 1,100 more problems", "1,200 problems found"]


@pytest.mark.slow
def test_cli_on_files_at_the_cap(tmp_path: Path) -> None:
    """Several 1 MiB hostile files in one `validate`: at most 100 problem lines in all."""
    paths = []
    for shape in ("misspelled-pools", "unknown-keys", "tab-lines"):
        path = tmp_path / f"{shape}.yaml"
        path.write_text(largest_under(GENERATORS[shape]))
        paths.append(str(path))
    done = run_cli("validate", *paths, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == PROBLEM_LIMIT + 2
    assert lines[-2].startswith("... and ") and lines[-1].endswith(" problems found")
    assert len(done.stdout.encode()) < MAX_OUTPUT
