"""The history store: one JSON line per saved run, in ``.provcfg/bench/history.jsonl``.

The folder is relative to the project (the current folder) unless ``--history``
names another file. Lines are whole :class:`~provcfg.bench._results.RunResult`
objects (every sample), appended with one ``write``; a torn or foreign line is
skipped with a warning instead of failing the read.
"""

from __future__ import annotations

import json
from pathlib import Path

from provcfg._errors import ProvcfgError
from provcfg._logs import get_logger
from provcfg.bench._results import RunResult

__all__ = ["DEFAULT_HISTORY", "append", "read", "series"]

DEFAULT_HISTORY = Path(".provcfg") / "bench" / "history.jsonl"

log = get_logger(__name__)


def append(run: RunResult, path: Path = DEFAULT_HISTORY) -> Path:
    """Append ``run`` as one line to ``path`` (creating its folder); return the path.

    Raises:
        ProvcfgError: the file cannot be written (the message names it).
    """
    line = json.dumps(run.as_dict(), separators=(",", ":"), allow_nan=True) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line)
    except OSError as exc:
        raise ProvcfgError(f"cannot append to the bench history {path}: {exc.strerror}") from None
    return path


def read(path: Path = DEFAULT_HISTORY) -> list[RunResult]:
    """Every run in ``path``, oldest first (an absent file is an empty history).

    Raises:
        ProvcfgError: the file exists but cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvcfgError(f"cannot read the bench history {path}: {exc}") from None
    runs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            runs.append(RunResult.from_dict(json.loads(line)))
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("bench.history_line_skipped", file=str(path), line=number)
    return runs


def series(
    runs: list[RunResult], roles: tuple[str, ...] = ("subject",)
) -> dict[str, list[tuple[str, float]]]:
    """Per ratio key (of ``roles``): ``(run start, median)`` for each run holding it."""
    out: dict[str, list[tuple[str, float]]] = {}
    for run in runs:
        for key, entry in run.ratio_entries().items():
            if entry.role in roles:
                out.setdefault(key, []).append((run.started, entry.estimate.median))
    return dict(sorted(out.items()))
