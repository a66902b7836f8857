"""`provcfg stub --help`, docs/cli.md and docs/stub.md list every option and every value's range."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from provcfg.stub.command import _parser
from provcfg.stub.faults import BOUNDS, STATUS_RANGE

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = [
    action.option_strings[-1]
    for action in _parser()._actions
    if action.option_strings and not isinstance(action, argparse._HelpAction)
]


def _section(path: Path, title: str) -> str:
    text = path.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start : end if end >= 0 else None]


def test_every_option_has_help_in_provcfg_stub_help() -> None:
    """Each option of `provcfg stub` has help text and is printed by the real command's --help."""
    assert "--backlog" in OPTIONS
    for action in _parser()._actions:
        if action.option_strings:
            assert action.help and action.help != argparse.SUPPRESS, action.option_strings
    shown = subprocess.run(
        [sys.executable, "-m", "provcfg", "stub", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for option in OPTIONS:
        assert re.search(rf"^  {re.escape(option)}\b", shown, re.M), option


@pytest.mark.parametrize(
    ("doc", "title"), [("docs/cli.md", "## `stub`"), ("docs/stub.md", "# `provcfg stub`")]
)
def test_docs_list_every_option(doc: str, title: str) -> None:
    """docs/cli.md's stub section and docs/stub.md name every `provcfg stub` option."""
    section = _section(ROOT / doc, title)
    missing = [option for option in OPTIONS if option not in section]
    assert not missing, f"{doc} does not mention {missing}"


def test_docs_state_every_grammar_range() -> None:
    """docs/stub.md gives each valued word's range with the same figures the stub enforces."""
    doc = (ROOT / "docs" / "stub.md").read_text()
    optional = ("drop", "error", "bad-json", "stall")  # written `drop[-N]`
    for word, (whole, low, high, _) in BOUNDS.items():
        value = "N" if whole else "S"
        form = f"`{word}[-{value}]`" if word in optional else f"`{word}-{value}`"
        rows = [line for line in doc.splitlines() if line.startswith("|") and form in line]
        assert rows, f"no table row for {form}"
        assert any(f"{low:,g} to {high:,.0f}" in row for row in rows), (form, rows)
    low, high = STATUS_RANGE
    assert f"{low} to {high}" in doc
