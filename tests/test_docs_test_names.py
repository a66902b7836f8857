"""Every test that docs/ names as proof exists: docs cannot cite a test that is gone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_named_in_the_docs_exists() -> None:
    """tests/test_x.py::test_y names in docs/*.md resolve to collected tests."""
    named: set[str] = set()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        # "`::test_name`" continues the test file named last before it in the text.
        current = None
        for file, rest, name in re.findall(
            r"(tests/test_\w+\.py)((?:::test\w+)?)|`::(test\w+)`", text
        ):
            if file:
                current = file
                named.add(file + rest)
            elif current is not None:
                named.add(f"{current}::{name}")
    assert named, "the docs name tests"
    files = sorted({n.split("::")[0] for n in named})
    missing_files = [f for f in files if not (ROOT / f).exists()]
    assert missing_files == []
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    collected = {line.split("[")[0] for line in done.stdout.splitlines() if "::" in line}
    missing = sorted(n for n in named if "::" in n and n not in collected)
    assert missing == []
