"""The one mask and the one scrubber: how a secret's value is kept out of every text.

Every message, log line, ``repr`` and error that could quote a secret goes through
:func:`scrub` (or never sees the value at all). :data:`MASK` is the one replacement.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, quote_plus, unquote, urlsplit

__all__ = ["MASK", "MIN_SECRET_LENGTH", "every_form", "scrub", "secret_forms"]

MASK: Final = "**********"
"""What a secret's value is replaced by, everywhere."""

MIN_SECRET_LENGTH: Final = 4
"""Shorter values are not scrubbed: masking every ``a`` or ``1`` would shred the text."""


def secret_forms(secret: str, user: str | None = None) -> tuple[str, ...]:
    """Every spelling of ``secret`` a server or library may echo back.

    The value itself, its URL-encoded forms, and, when it is a password that goes with
    ``user`` (``http://user:password@host``), the base64 of ``user:password`` that HTTP
    Basic authentication sends. Forms shorter than :data:`MIN_SECRET_LENGTH` are left out.
    """
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    if user is not None:
        pair = f"{user}:{secret}".encode()
        forms.add(base64.b64encode(pair).decode("ascii"))
        forms.add(base64.urlsafe_b64encode(pair).decode("ascii"))
    # Longest first: a form containing another is replaced whole.
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def every_form(values: Iterable[str]) -> tuple[str, ...]:
    """:func:`secret_forms` of each value, and, for a URL with a password in it
    (``https://user:password@host``), of that password with its user: what a scrubber
    that knows only whole secret values should mask. Longest first."""
    forms: set[str] = set()
    for value in values:
        forms.update(secret_forms(value))
        if "@" in value and "://" in value:
            try:
                parts = urlsplit(value)
                password, user = parts.password, parts.username
            except ValueError:
                continue
            if password:
                forms.update(secret_forms(unquote(password), unquote(user or "")))
                forms.update(secret_forms(password))
    return tuple(sorted(forms, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret value replaced by :data:`MASK`.

    Pass the result of :func:`secret_forms` to also catch encoded spellings.
    """
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    return text
