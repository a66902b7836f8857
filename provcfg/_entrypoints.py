"""The installed provider plugins: one process-wide memo of the entry-point scan.

Scanning entry points reads the metadata of every installed distribution (~7 ms
here), which alone would exceed the budget of ``load()``. What is installed is a
fact of the process, like ``sys.modules``, so the scan is remembered; the memo is
keyed by ``sys.path`` and the modification time of each of its folders, so a
package installed into (or a folder added to) the path is seen on the next call.
This module is the one place holding that global state.
"""

from __future__ import annotations

import os
import sys
import threading
from importlib.metadata import EntryPoint, entry_points

__all__ = ["GROUP", "provider_entry_points"]

GROUP = "provcfg.providers"

_lock = threading.Lock()
_memo: tuple[tuple[tuple[str, int], ...], tuple[EntryPoint, ...]] | None = None


def _path_state() -> tuple[tuple[str, int], ...]:
    state = []
    for entry in sys.path:
        try:
            mtime = os.stat(entry or ".").st_mtime_ns
        except OSError:
            mtime = -1
        state.append((entry, mtime))
    return tuple(state)


def provider_entry_points() -> tuple[EntryPoint, ...]:
    """Entry points of the group ``provcfg._providers``, rescanned only when the path changed."""
    global _memo  # noqa: PLW0603 - the one process-wide memo, see the module docstring
    state = _path_state()
    memo = _memo
    if memo is not None and memo[0] == state:
        return memo[1]
    with _lock:
        found = tuple(entry_points(group=GROUP))
        _memo = (state, found)
    return found
