"""Cache keys: every key is prefixed ``provcfg:{region}:{namespace}:`` and made backend-safe.

The namespace is the digest the runtime passes of what the region's entries depend
on (its spec and its ``invalidate_on``), so an entry written under one such input
is never read under another, also by other processes sharing the server. Keys that
are long or hold characters memcached or redis tooling dislike (space, control,
non-ASCII, ``#``) are replaced by their sha256, marked with ``#`` so a hashed key
can never collide with a literal one. Nothing here uses ``hash()`` (salted per process) or
``str()`` of an object (unstable, may hold secrets): keys must be strings.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable

__all__ = ["MAX_KEY_LENGTH", "fields_key", "key_prefix", "make_key_mangler"]

MAX_KEY_LENGTH = 250
"""memcached's limit, the strictest of the backends."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_part(what: str, value: str) -> None:
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise ValueError(
            f"cache {what} {value!r} must be 1-64 characters of letters, digits, '_', '.', '-'"
        )


def key_prefix(region: str, namespace: str) -> str:
    """``provcfg:{region}:{namespace}:``, the prefix of every key of a region.

    Raises:
        ValueError: ``region`` or ``namespace`` is empty, longer than 64 characters,
            or holds characters other than letters, digits, ``_``, ``.``, ``-``.
    """
    _check_part("region name", region)
    _check_part("namespace", namespace)
    return f"provcfg:{region}:{namespace}:"


def fields_key(kind: str, *fields: str | tuple[str, ...] | None) -> str:
    """A key for ``fields`` that is the same in every process: ``kind:sha256(JSON)``.

    The fields are written as compact JSON (``None`` and a tuple stay distinct from
    a string), so ``("a b", None)`` and ``("a", "b")`` never share a key. Strings
    may hold lone surrogates (an undecodable PATH byte): JSON escapes them.

    Returns:
        ``kind`` + ``":"`` + 64 hex digits.
    """
    text = json.dumps([kind, *fields], separators=(",", ":"))
    return f"{kind}:{hashlib.sha256(text.encode('ascii')).hexdigest()}"


def make_key_mangler(region: str, namespace: str) -> Callable[[str], str]:
    """Return the dogpile ``key_mangler`` of one region and namespace.

    The mangler returns ``prefix + key`` for short printable-ASCII keys and
    ``prefix + "#" + sha256(key)`` for the rest; the result is at most
    :data:`MAX_KEY_LENGTH` characters.

    Raises:
        ValueError: see :func:`key_prefix`.
    """
    prefix = key_prefix(region, namespace)
    limit = MAX_KEY_LENGTH - len(prefix)

    def mangle(key: str) -> str:
        if type(key) is not str:
            raise TypeError(
                f"cache keys must be str, got {type(key).__name__}; build the key from "
                "stable fields (name, digest), never hash() or str() of an object"
            )
        if (
            len(key) <= limit
            and key.isascii()
            and key.isprintable()
            and " " not in key
            and "#" not in key
        ):
            return prefix + key
        return prefix + "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()

    return mangle
