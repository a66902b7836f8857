"""provcfg.testing as plugin authors meet it: the documented example runs and passes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from provcfg.testing import ProviderConformance

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "providers.md"


def _example() -> str:
    match = re.search(r"<!-- conformance-example -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert match, "docs/providers.md lost its conformance-example block"
    return match.group(1)


def _suite_size() -> int:
    return sum(1 for name in dir(ProviderConformance) if name.startswith("test_"))


def test_documented_plugin_example_passes_the_whole_suite(tmp_path: Path) -> None:
    """The docs example, run by pytest in strict mode outside this repo, passes every test."""
    (tmp_path / "test_echo_kind.py").write_text(_example())
    ini = "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    (tmp_path / "pytest.ini").write_text(ini)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{_suite_size()} passed" in done.stdout, done.stdout


def test_importing_provcfg_testing_has_no_side_effects() -> None:
    """Importing provcfg.testing loads neither the SDK, httpx2 nor a runtime, and logs nothing."""
    code = (
        "import sys, provcfg.testing\n"
        "heavy = ['anthropic', 'httpx2', 'provcfg._runtime', 'provcfg._providers.anthropic_api']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert done.stderr == ""
