"""Run the ``provcfg`` command in this process without leaking its logging set-up.

``provcfg._cli.main`` configures structlog for the command (a logger bound to the
current stderr); in a test, that stderr is pytest's capture, closed after the test,
and every later test that logs would write to a closed file. :func:`run_cli` puts
structlog's configuration back as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from provcfg._cli import main

__all__ = ["run_cli"]


def run_cli(argv: Sequence[str]) -> int:
    """``main(argv)`` with structlog's configuration restored afterwards; the exit code."""
    saved = structlog.get_config()
    try:
        return main(list(argv))
    finally:
        structlog.configure(**saved)
