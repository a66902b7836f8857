"""Logging set-up for the ``provcfg`` command (the library itself never configures logging).

provcfg logs through structlog everywhere. An application embedding provcfg keeps
its own structlog configuration; the command line calls :func:`configure` once so
that logs go to stderr (stdout belongs to ``show``, ``schema`` and ``run``), at the
level and in the format chosen by ``PROVCFG_LOG_LEVEL`` (default ``warning``) and
``PROVCFG_LOG_FORMAT`` (``console`` or ``json``). A last processor masks any event
field whose name says it holds a secret, as a second line of defence: provcfg's own
events never carry secret values in the first place. On the console, text values are
printed escaped (a file name holding a newline stays on its line).
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from provcfg._secrets import MASK

__all__ = ["configure", "escape_text", "redact_secrets"]

_SECRET_FIELD = re.compile(r"(api[_-]?key|token|secret|password|authorization|credential)", re.I)
_MASK = MASK


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask values of fields named like secrets."""
    for key in list(event):
        if _SECRET_FIELD.search(key):
            event[key] = _MASK
    return event


def escape_text(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: escape characters that are not printable in text values."""
    from provcfg._errors import printable

    for key, value in event.items():
        if isinstance(value, str) and not value.isprintable():
            event[key] = printable(value)
    return event


def configure(
    level: str | None = None, fmt: str | None = None, *, stream: TextIO | None = None
) -> None:
    """Send structlog events to ``stream`` (stderr) at ``level``, as console text or JSON.

    ``level`` and ``fmt`` default to ``PROVCFG_LOG_LEVEL`` / ``PROVCFG_LOG_FORMAT``;
    an unknown level falls back to ``warning``.
    """
    name = (level or os.environ.get("PROVCFG_LOG_LEVEL") or "warning").upper()
    numeric = logging.getLevelNamesMapping().get(name, logging.WARNING)
    renderers: list[Any]
    if (fmt or os.environ.get("PROVCFG_LOG_FORMAT", "console")).lower() == "json":
        renderers = [structlog.processors.JSONRenderer()]  # JSON escapes by itself
    else:
        renderers = [escape_text, structlog.dev.ConsoleRenderer(colors=False)]
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            *renderers,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
