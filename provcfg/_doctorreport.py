"""The findings of ``provcfg doctor``: :class:`Check`, :class:`Report`, and how they are shown.

A report is rendered as text (one line per check, its fix under it, verdicts coloured
on a terminal only) or as JSON (the shape docs/cli.md documents). Before either, every
text of a report is scrubbed of the secret values the run may have met.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from pydantic import SecretStr

from provcfg._errors import ManifestError, ManifestReadError
from provcfg._manifest import Manifest, MemcachedRegionSpec, RedisRegionSpec
from provcfg._secrets import MASK, secret_forms

__all__ = [
    "FORMAT_VERSION",
    "Check",
    "Part",
    "Report",
    "Verdict",
    "invalid_report",
    "scrubbed",
    "secrets_of",
    "write_text",
]

FORMAT_VERSION = 1
"""Version of the ``--format json`` shape; raised only by a change that breaks readers."""

Verdict = Literal["ok", "warn", "fail"]
Part = Literal["manifest", "provider", "cache", "pool"]

_MASK = MASK
_MIN_SCRUBBED = 6


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict about one part of the manifest on this machine."""

    part: Part
    name: str | None
    """The provider, region or pool name; None for the manifest itself."""
    check: str
    """What was checked: ``valid``, ``cli``, ``version``, ``auth``, ``key``, ``connect``,
    ``reachable``, ``writable``, ``size``, ``limits``, ``kind``."""
    verdict: Verdict
    message: str
    fix: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """``manifest``, ``provider api``, ``cache responses``, ``pool anthropic``."""
        return self.part if self.name is None else f"{self.part} {self.name}"

    def as_dict(self) -> dict[str, Any]:
        """The check as JSON data (the shape docs/cli.md documents)."""
        return {
            "part": self.part,
            "name": self.name,
            "check": self.check,
            "verdict": self.verdict,
            "message": self.message,
            "fix": self.fix,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Every check of one run, in manifest order."""

    file: str
    checks: tuple[Check, ...]

    def count(self, verdict: Verdict) -> int:
        """How many checks have ``verdict``."""
        return sum(1 for c in self.checks if c.verdict == verdict)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return self.count("fail") == 0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON data (the shape docs/cli.md documents)."""
        return {
            "format": FORMAT_VERSION,
            "file": self.file,
            "ok": self.ok,
            "counts": {v: self.count(v) for v in ("ok", "warn", "fail")},
            "checks": [c.as_dict() for c in self.checks],
        }


# --------------------------------------------------------------------------- secrets


def secrets_of(manifest: Manifest | None) -> set[str]:
    """Every secret value this run may meet: the manifest's SecretStr values, passwords in
    its URLs, and environment values whose names say they are secret."""
    from provcfg._reloadevents import known_secrets

    found = known_secrets(manifest, None)
    urls: list[str] = []
    if manifest is not None:
        for spec in manifest.providers.values():
            base = getattr(spec, "base_url", None)
            if isinstance(base, SecretStr):  # a SecretUrl: only its password is secret
                found.discard(base.get_secret_value())
                urls.append(base.get_secret_value())
            elif isinstance(base, str):
                urls.append(base)
        for region in manifest.cache.values():
            if isinstance(region, MemcachedRegionSpec):
                urls.append(region.url)
            elif isinstance(region, RedisRegionSpec):
                # The whole URL is a SecretStr; only its password is secret, and the URL is
                # shown through mask_url.
                url = region.url.get_secret_value()
                found.discard(url)
                urls.append(url)
    forms = {form for secret in found for form in secret_forms(secret)}
    for url in urls:
        with contextlib.suppress(ValueError):
            parts = urlsplit(url)
            if parts.password:
                forms.update(secret_forms(parts.password, parts.username or ""))
    # Short values ("stub") would mask ordinary words; no message formats a value in the
    # first place, this is the second line of defence.
    return {s for s in forms if len(s) >= _MIN_SCRUBBED}


def scrubbed(check: Check, secrets: set[str]) -> Check:
    ordered = sorted(secrets, key=len, reverse=True)

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for secret in ordered:
                value = value.replace(secret, _MASK)
            return value
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return replace(
        check,
        message=clean(check.message),
        fix=clean(check.fix),
        details={key: clean(value) for key, value in check.details.items()},
    )


# --------------------------------------------------------------------------- output


def invalid_report(file: str, exc: ManifestError) -> Report:
    problems = [str(p) for p in exc.problems]
    count = len(problems)
    unreadable = isinstance(exc, ManifestReadError)
    message = (
        "cannot be read" if unreadable else f"invalid: {count} problem{'s' if count != 1 else ''}"
    )
    fix = (
        "give the manifest's path"
        if unreadable
        else "fix the problems listed; `provcfg validate` shows them too"
    )
    check = Check("manifest", None, "valid", "fail", message, fix, {"problems": problems})
    return Report(file, (scrubbed(check, secrets_of(None)),))


_COLOURS = {"ok": "\x1b[32m", "warn": "\x1b[33m", "fail": "\x1b[1;31m"}
_RESET = "\x1b[0m"


def _colour(out: TextIO) -> bool:
    """Colour the verdicts only on a terminal that wants it (https://no-color.org)."""
    isatty = getattr(out, "isatty", None)
    return (
        bool(isatty and isatty())
        and "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
    )


def _text_lines(report: Report) -> list[tuple[Verdict | None, str]]:
    lines: list[tuple[Verdict | None, str]] = []
    width = max((len(c.subject) for c in report.checks), default=8)
    for check in report.checks:
        lines.append((check.verdict, f"{check.subject:<{width}}  {check.check}: {check.message}"))
        if check.fix and check.verdict != "ok":
            lines.append((None, f"{'':<{width}}  fix: {check.fix}"))
        lines.extend(
            (None, f"{'':<{width}}  {problem}") for problem in check.details.get("problems", ())
        )
    summary = (
        f"{report.file}: {report.count('fail')} failed, {report.count('warn')} "
        f"warning{'s' if report.count('warn') != 1 else ''}, {report.count('ok')} ok"
    )
    lines.append((None, summary))
    return lines


def write_text(report: Report, out: TextIO) -> None:
    # Three escape codes by hand, not rich: with rich installed, structlog's import (which
    # every logging command pays) pulls in rich's traceback support, measured at +57 ms.
    colour = _colour(out)
    for verdict, text in _text_lines(report):
        if verdict is None:
            out.write(f"      {text}\n")
        elif colour:
            out.write(f"{_COLOURS[verdict]}{verdict:<4}{_RESET}  {text}\n")
        else:
            out.write(f"{verdict:<4}  {text}\n")
    out.flush()
