"""Run the ``provcfg`` command in this process without leaking its logging set-up.

``provcfg._cli.main`` sets logging up for the command: structlog's configuration and
a handler on the ``provcfg`` logger bound to the current stderr, with the command's
level. In a test that stderr is pytest's capture, closed after the test, and the
level would hide the events later tests capture. :func:`run_cli` puts structlog's
configuration and the logger (handlers, level, propagation) back as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import structlog

from provcfg._cli import main

__all__ = ["run_cli"]


def run_cli(argv: Sequence[str]) -> int:
    """``main(argv)`` with structlog and the ``provcfg`` logger restored afterwards."""
    saved = structlog.get_config()
    logger = logging.getLogger("provcfg")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        return main(list(argv))
    finally:
        structlog.configure(**saved)
        for handler in list(logger.handlers):
            if handler not in handlers:
                logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
