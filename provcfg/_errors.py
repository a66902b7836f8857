"""The one error tree of provcfg.

Every failure a user can meet is one of these, so callers catch one vocabulary::

    ProvcfgError                      root: catch this to catch everything provcfg raises
    ├── ManifestError                 the manifest is invalid (.problems)
    │   └── ManifestReadError         the file cannot be read at all (missing, a folder, ...)
    ├── BackendUnavailableError       an optional extra (redis, memcached) is not installed
    ├── CacheBackendError             a cache region's server or file failed (.region, .server)
    ├── RuntimeClosedError            the Runtime was closed (aclose) and cannot serve
    ├── UnknownProviderError          rt.provider(name) / translate_model for a name not declared
    ├── UnknownModelError             a model alias is unknown and the policy says "error"
    ├── UnknownRegionError            rt.region(name) for a cache region not declared
    └── ProviderError                 a provider failed; .kind says how (see ErrorKind)
        └── CLINotFoundError          kind == "cli_not_found": the agent CLI is not installed

Messages name the place and the fix. No message, ``repr`` or ``str`` of any of these
ever holds a secret's value: secrets travel as ``pydantic.SecretStr`` and are never
formatted into text. Text that ends up on a terminal or in CI logs goes through
:func:`printable`, so a file name holding a newline cannot forge an extra line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from provcfg._suggest import hint, listing, quote

__all__ = [
    "PROBLEM_LIMIT",
    "BackendUnavailableError",
    "CLINotFoundError",
    "CacheBackendError",
    "ErrorKind",
    "ManifestError",
    "ManifestReadError",
    "Problem",
    "ProvcfgError",
    "ProviderError",
    "RuntimeClosedError",
    "UnknownModelError",
    "UnknownProviderError",
    "UnknownRegionError",
    "more_problems",
    "printable",
]

PROBLEM_LIMIT: Final = 100
"""Most problems a :class:`ManifestError` keeps (the first by position); the rest are counted."""


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (``\\n``, ``\\x1b``, ``\\u2028``).

    What a line-oriented reader (a terminal, a CI annotator) sees is then exactly one line:
    a newline, carriage return, escape sequence or Unicode line separator in a file name
    or a key cannot start a forged one. Spaces and printable Unicode are kept as they are.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    named = _NAMED_ESCAPES.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


ErrorKind = Literal[
    "authentication",
    "permission",
    "rate_limit",
    "overloaded",
    "model_not_found",
    "invalid_request",
    "timeout",
    "network",
    "pool_exhausted",
    "cli_not_found",
    "cli_failed",
    "stream_incomplete",
    "server_error",
    "cancelled",
]


class ProvcfgError(Exception):
    """Root of every error provcfg raises on purpose."""


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One positioned problem in a manifest.

    ``line`` and ``column`` are 1-based; 0 means "no position" (for example a
    problem that comes from an environment variable rather than the file).
    ``loc`` is the dotted path inside the manifest (``providers.api.base_url``);
    empty for whole-file problems.
    """

    file: str
    line: int
    column: int
    loc: str
    message: str

    def __str__(self) -> str:
        """``FILE:LINE:COL: dotted.path: message``, the form editors and CI annotate.

        Always one line: characters that are not printable are escaped (:func:`printable`).
        """
        where = f"{self.file}:{self.line}:{self.column}"
        text = f"{where}: {self.loc}: {self.message}" if self.loc else f"{where}: {self.message}"
        return printable(text)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable form used by ``provcfg validate --format json``.

        The texts are escaped as in :meth:`__str__`, so both formats show the same names.
        """
        return {
            "file": printable(self.file),
            "line": self.line,
            "column": self.column,
            "loc": printable(self.loc),
            "message": printable(self.message),
        }


class ManifestError(ProvcfgError):
    """The manifest could not be read or is invalid.

    ``problems`` holds the problems found in one run, sorted by position: all of them, or
    the first :data:`PROBLEM_LIMIT` when there are more; ``omitted`` counts the others
    (``total`` is both together). A file with thousands of problems thus gives an error of
    bounded size, whose text ends in ``... and N more problems``.
    """

    def __init__(self, problems: Iterable[Problem], *, omitted: int = 0) -> None:
        ordered = sorted(problems)
        if not ordered:
            raise ValueError("ManifestError needs at least one problem")
        self.problems: tuple[Problem, ...] = tuple(ordered[:PROBLEM_LIMIT])
        self.omitted: int = omitted + len(ordered) - len(self.problems)
        super().__init__(self._text())

    @property
    def total(self) -> int:
        """How many problems were found: ``len(problems) + omitted``."""
        return len(self.problems) + self.omitted

    @classmethod
    def single(
        cls, file: str | Path, message: str, *, line: int = 0, column: int = 0, loc: str = ""
    ) -> ManifestError:
        """Build an error holding exactly one problem."""
        return cls([Problem(str(file), line, column, loc, message)])

    def _text(self) -> str:
        count = self.total
        head = f"{count:,} problem{'s' if count != 1 else ''} in manifest"
        lines = [head, *(str(p) for p in self.problems)]
        if self.omitted:
            lines.append(more_problems(self.omitted))
        return "\n".join(lines)


def more_problems(count: int) -> str:
    """The line that ends a capped list of problems: ``... and 1,234 more problems``."""
    return f"... and {count:,} more problem{'s' if count != 1 else ''}"


class ManifestReadError(ManifestError):
    """The manifest file could not be read at all (missing, a folder, no permission).

    A :class:`ManifestError` whose one problem has line 0; ``provcfg validate`` exits 2
    for it rather than 1.
    """


class BackendUnavailableError(ProvcfgError):
    """A cache backend needs an optional dependency that is not installed."""

    def __init__(self, backend: str, extra: str, module: str) -> None:
        self.backend = backend
        self.extra = extra
        self.module = module
        super().__init__(
            f"cache backend {backend!r} needs the Python package {module!r}; "
            f"install it with: pip install 'provcfg[{extra}]'"
        )


class CacheBackendError(ProvcfgError):
    """A cache region could not be configured, or its server or file failed.

    ``server`` is ``host:port`` (or a socket or file path) and never holds a
    password; ``operation`` is what failed (``configure``, ``get``, ``set``, ...).
    """

    def __init__(self, region: str, server: str, operation: str, reason: str, fix: str) -> None:
        self.region = region
        self.server = server
        self.operation = operation
        super().__init__(f"cache region {region!r} ({server}): {operation} failed: {reason}; {fix}")


class RuntimeClosedError(ProvcfgError):
    """The Runtime has been closed with ``aclose()``; load a new one."""


class UnknownProviderError(ProvcfgError, KeyError):
    """A provider name that the manifest does not declare."""

    def __init__(self, name: str, known: Sequence[str], suggestion: str | None = None) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(
            f"no provider named {quote(name)}{hint(suggestion)} (declared: {listing(self.known)})"
        )

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message; keep it readable.
        return str(self.args[0])


class UnknownModelError(ProvcfgError, LookupError):
    """A model alias that is not in the table for this provider."""

    def __init__(self, provider: str, alias: str, suggestion: str | None, known: Sequence[str]):
        self.provider = provider
        self.alias = alias
        self.known = tuple(known)
        super().__init__(
            f"provider {quote(provider)}: unknown model alias {quote(alias)}{hint(suggestion)} "
            f"(aliases: {listing(self.known)}; or give a complete model id)"
        )


class UnknownRegionError(ProvcfgError, KeyError):
    """A cache region name that the manifest does not declare under ``cache:``."""

    def __init__(self, name: str, known: Sequence[str], suggestion: str | None = None) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(
            f"no cache region named {quote(name)}{hint(suggestion)} "
            f"(declared: {listing(self.known)}); declare it under cache: in the manifest"
        )

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message; keep it readable.
        return str(self.args[0])


@dataclass(eq=False)
class ProviderError(ProvcfgError):
    """A provider call failed.

    ``kind`` classifies the failure so callers can react without parsing text:
    retry on ``rate_limit`` after ``retry_after`` seconds, fix credentials on
    ``authentication``, install the CLI on ``cli_not_found``, and so on.
    """

    message: str
    kind: ErrorKind
    provider: str = ""
    status: int | None = None
    retry_after: float | None = None
    exit_code: int | None = None
    stderr_tail: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f"provider {self.provider!r}: " if self.provider else ""
        text = f"{where}{self.kind}: {self.message}"
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:g}s)"
        if self.exit_code is not None:
            text += f" (exit code {self.exit_code})"
        return text


class CLINotFoundError(ProviderError):
    """The agent CLI a provider needs was not found; the message says where we looked."""

    def __init__(
        self,
        command: str,
        searched: Sequence[str],
        install_hint: str,
        provider: str = "",
    ) -> None:
        self.command = command
        self.searched = tuple(searched)
        looked = ", ".join(self.searched) or "(nowhere)"
        super().__init__(
            message=f"CLI {command!r} not found; looked in: {looked}. {install_hint}",
            kind="cli_not_found",
            provider=provider,
        )
