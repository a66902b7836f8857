"""The one mask and the one scrubber: how a secret's value is kept out of every text.

Every message, log line, ``repr`` and error that could quote a secret goes through
:func:`scrub` (or never sees the value at all). :data:`MASK` is the one replacement.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_LENGTH", "scrub", "secret_forms"]

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


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret value replaced by :data:`MASK`.

    Pass the result of :func:`secret_forms` to also catch encoded spellings.
    """
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    return text
