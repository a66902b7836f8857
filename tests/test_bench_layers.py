"""provcfg.bench sits beside the command line: nothing in the library imports it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "provcfg"
ALLOWED = {PACKAGE / "_cli.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_library_module_imports_the_bench_package() -> None:
    """Only provcfg/_cli.py and provcfg/bench itself may import provcfg.bench."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path in ALLOWED or (PACKAGE / "bench") in path.parents:
            continue
        if any(
            name == "provcfg.bench" or name.startswith("provcfg.bench.") for name in _imports(path)
        ):
            offenders.append(str(path.relative_to(PACKAGE.parent)))
    assert offenders == []


def test_the_scan_sees_an_import_of_the_bench_package(tmp_path: Path) -> None:
    """The scan itself: a module importing provcfg.bench is found (so the test above can fail)."""
    module = tmp_path / "m.py"
    module.write_text("from provcfg.bench._gate import compare\nimport provcfg.bench\n")
    assert {"provcfg.bench._gate", "provcfg.bench"} <= _imports(module)
