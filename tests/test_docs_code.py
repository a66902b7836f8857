"""The code in README.md and docs/ that claims to run, runs: each block marked runnable is
executed as written, in a folder holding the example manifest, against the stub.

A ```python block is preceded by a marker comment: ``<!-- runnable ... -->`` (a complete
program this test runs), ``<!-- sketch ... -->`` (names and signatures, not a program) or
``<!-- conformance-example -->`` (run by tests/test_testing_docs.py). A ```sh block marked
runnable is run with bash, each command required to succeed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from provcfg.stub import StubServer
from tests.support_manifest import EXAMPLE, clean_env

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKERS = ("<!-- runnable", "<!-- sketch", "<!-- conformance-example -->")
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    file: Path
    line: int
    language: str
    marker: str
    code: str

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for file in DOCS:
        text = file.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(file, line, match.group(1), before.strip(), match.group(2)))
    return found


RUNNABLE = [b for b in blocks() if b.marker.startswith("<!-- runnable")]


def test_every_python_block_says_whether_it_runs() -> None:
    """Each ```python block in README.md and docs/ carries a runnable or sketch marker."""
    unmarked = [
        b.id for b in blocks() if b.language == "python" and not b.marker.startswith(MARKERS)
    ]
    assert unmarked == [], "mark these <!-- runnable --> or <!-- sketch -->"


def test_the_readme_snippet_is_runnable() -> None:
    """The README's Python snippet is among the blocks this test runs."""
    assert any(b.file.name == "README.md" and b.language == "python" for b in RUNNABLE)


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_runnable_block_runs(block: Block, tmp_path: Path, stub_thread: StubServer) -> None:
    """The block, run as written beside a copy of the example manifest whose `local`
    provider points at a running stub, exits 0 without a traceback and prints something."""
    shutil.copy(EXAMPLE, tmp_path / "providers.yaml")
    env = clean_env(
        HOME=str(tmp_path),
        PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",
        PROVCFG_PROVIDERS__LOCAL__BASE_URL=stub_thread.base_url,
    )
    if block.language == "python":
        argv = [sys.executable, "-c", block.code]
    else:
        assert block.language == "sh", block.id
        argv = ["bash", "-euo", "pipefail", "-c", block.code]
    done = subprocess.run(
        argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{block.id}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip(), f"{block.id} printed nothing"
