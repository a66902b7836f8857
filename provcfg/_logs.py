"""Logging of provcfg: structlog events that travel through the standard ``logging`` module.

Library side (global state lives here and nowhere else): every module of provcfg takes
its logger from :func:`get_logger`, a structlog logger wrapped around the standard
library logger of the module's name (``provcfg._reload``, ...). So, as with httpx, the
application's ``logging`` configuration decides what is shown and where; provcfg never
writes to stdout and never configures logging itself. With no configuration at all,
Python's last-resort handler prints warnings and errors to stderr and drops the rest.
An event is handed to the processors of the application's structlog configuration
(structlog's defaults when it has none) only when its stdlib logger is enabled for the
event's level, so a debug event costs one ``isEnabledFor`` call when nobody listens.

Command side: the ``provcfg`` command calls :func:`configure` once, which gives the
``provcfg`` logger its own stderr handler (stdout belongs to ``show``, ``schema`` and
``run``) at ``PROVCFG_LOG_LEVEL`` (default ``warning``), rendered as console text or
JSON (``PROVCFG_LOG_FORMAT``). A processor masks any event field whose name says it
holds a secret, as a second line of defence: provcfg's own events never carry secret
values in the first place. On the console, text values are printed escaped (a file
name holding a newline stays on its line); JSON escapes by itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, TextIO

import structlog

from provcfg._secrets import MASK

__all__ = [
    "ROOT_LOGGER",
    "StdlibGatedLogger",
    "configure",
    "escape_text",
    "get_logger",
    "quiet_events",
    "redact_secrets",
]

ROOT_LOGGER = "provcfg"
"""The standard-library logger every provcfg logger is a child of."""

_SECRET_FIELD = re.compile(r"(api[_-]?key|token|secret|password|authorization|credential)", re.I)
_MASK = MASK


class StdlibGatedLogger(structlog.BoundLoggerBase):
    """A structlog logger around a :class:`logging.Logger` that asks it first.

    Each method runs the processor chain only if the wrapped logger is enabled for
    that level, then calls the same-named method of the logger with the result.
    """

    def _gated(self, level: int, method: str, event: str | None, kw: dict[str, Any]) -> Any:
        if not self._logger.isEnabledFor(level):
            return None
        return self._proxy_to_logger(method, event, **kw)

    def debug(self, event: str | None = None, **kw: Any) -> Any:
        """Log ``event`` with key-value pairs ``kw`` at DEBUG level."""
        return self._gated(logging.DEBUG, "debug", event, kw)

    def info(self, event: str | None = None, **kw: Any) -> Any:
        """Log ``event`` with key-value pairs ``kw`` at INFO level."""
        return self._gated(logging.INFO, "info", event, kw)

    def warning(self, event: str | None = None, **kw: Any) -> Any:
        """Log ``event`` with key-value pairs ``kw`` at WARNING level."""
        return self._gated(logging.WARNING, "warning", event, kw)

    def error(self, event: str | None = None, **kw: Any) -> Any:
        """Log ``event`` with key-value pairs ``kw`` at ERROR level."""
        return self._gated(logging.ERROR, "error", event, kw)

    def critical(self, event: str | None = None, **kw: Any) -> Any:
        """Log ``event`` with key-value pairs ``kw`` at CRITICAL level."""
        return self._gated(logging.CRITICAL, "critical", event, kw)


def get_logger(name: str) -> Any:
    """The structlog logger of module ``name``, writing through ``logging.getLogger(name)``.

    The processors are the application's structlog configuration, read when the logger
    is first used (so ``structlog.testing.capture_logs`` sees provcfg's events too).
    """
    return structlog.wrap_logger(logging.getLogger(name), wrapper_class=StdlibGatedLogger)


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


class _CommandHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs; a later call replaces it."""


def configure(
    level: str | None = None, fmt: str | None = None, *, stream: TextIO | None = None
) -> None:
    """Send provcfg's events to ``stream`` (stderr) at ``level``, as console text or JSON.

    For the ``provcfg`` command only (a library leaves logging to the application).
    ``level`` and ``fmt`` default to ``PROVCFG_LOG_LEVEL`` / ``PROVCFG_LOG_FORMAT``;
    an unknown level falls back to ``warning``. Calling it again replaces the set-up.
    """
    name = (level or os.environ.get("PROVCFG_LOG_LEVEL") or "warning").upper()
    numeric = logging.getLevelNamesMapping().get(name, logging.WARNING)
    renderers: list[Any]
    if (fmt or os.environ.get("PROVCFG_LOG_FORMAT", "console")).lower() == "json":
        renderers = [structlog.processors.JSONRenderer()]  # JSON escapes by itself
    else:
        renderers = [escape_text, structlog.dev.ConsoleRenderer(colors=False)]
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    # The event dict travels to the handler whole (structlog's ProcessorFormatter renders
    # it there), so a filter can read the event name. Modules that still call
    # structlog.get_logger directly go through logging too.
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=StdlibGatedLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    logger = logging.getLogger(ROOT_LOGGER)
    for old in [h for h in logger.handlers if isinstance(h, _CommandHandler)]:
        logger.removeHandler(old)
    handler = _CommandHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
            foreign_pre_chain=shared,
        )
    )
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False


class _DropEvents(logging.Filter):
    def __init__(self, names: frozenset[str]) -> None:
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        return not (isinstance(message, dict) and message.get("event") in self.names)


@contextlib.contextmanager
def quiet_events(*names: str) -> Iterator[None]:
    """Leave the events ``names`` out of the command's log output for the block.

    For a command that reports these outcomes itself (``provcfg watch`` prints each
    rejected save), so that the user reads each once. Needs :func:`configure` first.
    """
    drop = _DropEvents(frozenset(names))
    handlers = [
        h for h in logging.getLogger(ROOT_LOGGER).handlers if isinstance(h, _CommandHandler)
    ]
    for handler in handlers:
        handler.addFilter(drop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(drop)
