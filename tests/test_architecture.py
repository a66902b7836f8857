"""The shape of the package holds: layers, no import circles, a pinned public surface, flat code.

These are the rules docs/architecture.md states; each test fails the moment the code
drifts from them.
"""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

import provcfg
import provcfg.plugin
import provcfg.stub
import provcfg.testing

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "provcfg"
PUBLIC_MODULES = {"provcfg", "provcfg.plugin", "provcfg.testing", "provcfg.stub", "provcfg.bench"}


def _strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Tarjan's algorithm over the module import graph (TYPE_CHECKING imports included)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0

    def visit(module: str) -> None:
        nonlocal counter
        index[module] = low[module] = counter
        counter += 1
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other == "provcfg":
                continue  # the package root re-exports lazily; it is not part of any layer
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules - {"provcfg"}):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles() -> None:
    """No modules of provcfg import each other in a loop (TYPE_CHECKING imports count too)."""
    graph = grimp.build_graph("provcfg", exclude_type_checking_imports=False)
    assert len(graph.modules) > 50
    assert _strongly_connected(graph) == []


def test_layer_contracts_are_kept() -> None:
    """import-linter's layers contract (pyproject.toml) holds: every import goes down."""
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is part of the dev extra"
    done = subprocess.run(
        [lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def _modules() -> Iterator[str]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts)


def test_every_module_outside_the_public_surface_is_private() -> None:
    """A module is public only if it is provcfg, provcfg.plugin, provcfg.testing, provcfg.stub or
    provcfg.bench (with its case families);
    every other module's dotted path has a part with a leading underscore."""
    leaked = [
        name
        for name in _modules()
        if name not in PUBLIC_MODULES
        and not name.startswith("provcfg.stub.")
        # provcfg bench's case families: one module per family, added by later work
        and not name.startswith("provcfg.bench.cases")
        and not any(part.startswith("_") for part in name.split(".")[1:])
    ]
    assert leaked == []


def test_public_surface_is_pinned() -> None:
    """The names each public module exports are exactly the intended ones."""
    assert sorted(provcfg.plugin.__all__) == sorted(
        [
            "ENTRY_POINT_GROUP",
            "BaseProvider",
            "Chunk",
            "ChunkType",
            "ErrorKind",
            "KindRegistry",
            "ProvcfgError",
            "Provider",
            "ProviderConformance",
            "ProviderContext",
            "ProviderError",
            "ProviderFactory",
            "ProviderKind",
            "Request",
            "Result",
            "RuntimeClosedError",
            "Session",
            "Timings",
            "Usage",
            "make_context",
        ]
    )
    assert sorted(provcfg.testing.__all__) == ["ProviderConformance", "Request", "make_context"]
    assert "StubServer" in provcfg.stub.__all__ and "StubProcess" in provcfg.stub.__all__
    for module in (provcfg, provcfg.plugin, provcfg.testing, provcfg.stub):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_the_provider_protocol_names_every_method_the_runtime_calls() -> None:
    """The runtime reaches providers through the typed protocol only (no getattr probing)."""
    protocol = provcfg.plugin.Provider
    members = {n for n in vars(protocol) if not n.startswith("_")} | set(protocol.__annotations__)
    assert {
        "stream",
        "complete",
        "session",
        "initialize",
        "prepare_now",
        "inflight",
        "closed",
        "wait_idle",
        "aclose",
    } <= members
    runtime_sources = "\n".join(
        (PACKAGE / name).read_text()
        for name in ("_runtime.py", "_store.py", "_handle.py", "_build.py")
    )
    probes = re.findall(
        r"getattr\(\w+, \"(prepare_now|wait_idle|inflight|aclose)\"", runtime_sources
    )
    assert probes == []


def _statements(node: ast.AST) -> Iterator[ast.stmt]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        if isinstance(child, ast.stmt):
            yield child
        yield from _statements(child)


def test_no_function_in_providers_is_deeper_than_four_levels() -> None:
    """Every statement of a provider function is at most 4 indentation levels into it."""
    deep = []
    for path in sorted((PACKAGE / "_providers").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            base = node.body[0].col_offset
            for stmt in _statements(node):
                level = (stmt.col_offset - base) // 4 + 1
                if level > 4:
                    deep.append(f"{path.name}:{stmt.lineno} in {node.name} (level {level})")
    assert deep == []


def test_a_plugin_written_against_the_public_surface_type_checks() -> None:
    """tests/plugin_example passes mypy --strict using provcfg.plugin and provcfg.testing only."""
    source = (ROOT / "tests" / "plugin_example" / "shout.py").read_text()
    imported = set(re.findall(r"^from (provcfg[\w.]*) import", source, re.MULTILINE))
    assert imported <= PUBLIC_MODULES
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "tests/plugin_example"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


async def test_the_plugin_example_runs() -> None:
    """The type-checked plugin also works: it streams through the public API."""
    from tests.plugin_example.shout import shout

    assert await shout("be loud") == "BE LOUD "


def test_docs_plugin_sections_import_only_the_public_surface() -> None:
    """docs/providers.md tells plugin authors to import from the public modules only."""
    text = (ROOT / "docs" / "providers.md").read_text()
    imports = set(re.findall(r"^\s*(?:from|import) (provcfg[\w.]*)", text, re.MULTILINE))
    assert imports, "the plugin section shows imports"
    assert {m for m in imports if m.split(".")[:2] != ["provcfg", "stub"]} <= PUBLIC_MODULES


@pytest.mark.parametrize("name", sorted(PUBLIC_MODULES))
def test_public_modules_have_a_docstring(name: str) -> None:
    """Each public module says what it is for."""
    module = importlib.import_module(name)
    assert module.__doc__ and len(module.__doc__.strip()) > 40
