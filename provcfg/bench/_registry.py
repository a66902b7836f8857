"""The case registry: every ``CASES`` list of the modules in :mod:`provcfg.bench.cases`.

Selection by suite and by name pattern (``fnmatch``: ``stream.*``, ``*first-chunk*``).
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from collections.abc import Sequence

from provcfg._errors import ProvcfgError
from provcfg.bench import cases as _cases_package
from provcfg.bench._case import Case

__all__ = ["all_cases", "select"]


def all_cases() -> list[Case]:
    """Every built-in case, in module then declaration order.

    Raises:
        ValueError: two cases share a name.
    """
    found: list[Case] = []
    for info in sorted(pkgutil.iter_modules(_cases_package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_cases_package.__name__}.{info.name}")
        found.extend(getattr(module, "CASES", []))
    names = [c.name for c in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"bench cases share names: {', '.join(duplicates)}")
    return found


def select(suite: str, patterns: Sequence[str] = ()) -> list[Case]:
    """The cases of ``suite`` whose names match any of ``patterns`` (all when empty).

    Raises:
        ProvcfgError: a pattern matches no case of the suite (the message lists them).
    """
    cases = [c for c in all_cases() if suite in c.suites]
    if not patterns:
        return cases
    chosen = [c for c in cases if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(c.name, pattern) for c in cases):
            known = ", ".join(c.name for c in cases)
            raise ProvcfgError(
                f"--case {pattern!r} matches no case of suite {suite!r}; cases: {known}"
            )
    return chosen
