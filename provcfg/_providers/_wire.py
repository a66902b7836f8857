"""Type checks for every field read from the wire: a server's JSON or a CLI's NDJSON.

A field of the wrong type (a text that is a number, a usage count that is a string, a
list where an object belongs) must never reach a caller inside a :class:`Chunk`, nor
break provcfg with a ``TypeError`` later. Every parser reads its fields through these
functions, which return the value when it has the expected type and raise
:class:`MalformedEvent` (a ``ValueError``) naming the field and what it was otherwise.
The providers turn a :class:`MalformedEvent` into one ``ProviderError`` (kind
``server_error``) saying the server or the CLI sent a malformed event.

A missing field and a JSON ``null`` are the same thing here ("not given"): optional
fields give None (or the documented default: 0 for a count, an empty object or list),
required ones raise. Checks are exact-type tests (``bool`` is not a number), a few tens
of nanoseconds each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "EMPTY",
    "MalformedEvent",
    "count",
    "flag",
    "obj",
    "opt_int",
    "opt_number",
    "opt_obj",
    "opt_str",
    "seq",
    "string",
]

EMPTY: Final[Mapping[str, Any]] = {}
"""The empty object a missing optional object reads as (shared: never written to)."""


class MalformedEvent(ValueError):
    """An event whose shape or field types are not what the server or CLI documents."""


def _name(value: object) -> str:
    if value is None:
        return "null"
    names = {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }
    return names.get(type(value), f"a {type(value).__name__}")


def _bad(what: str, value: object, expected: str) -> MalformedEvent:
    return MalformedEvent(f"{what} is {_name(value)}, not {expected}")


def string(value: object, what: str) -> str:
    """``value`` if it is a string; raises :class:`MalformedEvent` otherwise (null too)."""
    if type(value) is not str:
        raise _bad(what, value, "a string")
    return value


def opt_str(value: object, what: str) -> str | None:
    """``value`` if it is a string, None if it is null or missing; raises otherwise."""
    if value is None or type(value) is str:
        return value
    raise _bad(what, value, "a string")


def count(value: object, what: str) -> int:
    """A non-negative integer count; null or missing is 0; raises otherwise."""
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise _bad(what, value, "a non-negative integer")
    return value


def opt_int(value: object, what: str) -> int | None:
    """``value`` if it is an integer (not a boolean), None if null or missing; raises otherwise."""
    if value is None or type(value) is int:
        return value
    raise _bad(what, value, "an integer")


def opt_number(value: object, what: str) -> float | None:
    """``value`` as a float if it is a finite number (not a boolean), None if null or
    missing; raises otherwise."""
    if value is None:
        return None
    if (type(value) is int or type(value) is float) and math.isfinite(value):
        return float(value)
    raise _bad(what, value, "a finite number")


def flag(value: object, what: str) -> bool:
    """``value`` if it is a boolean, False if null or missing; raises otherwise."""
    if value is None:
        return False
    if type(value) is not bool:
        raise _bad(what, value, "a boolean")
    return value


def obj(value: object, what: str) -> Mapping[str, Any]:
    """``value`` if it is an object, the empty object if null or missing; raises otherwise."""
    if type(value) is dict:
        return value
    if value is None:
        return EMPTY
    raise _bad(what, value, "an object")


def opt_obj(value: object, what: str) -> Mapping[str, Any] | None:
    """``value`` if it is an object, None if null or missing; raises otherwise."""
    if value is None or type(value) is dict:
        return value
    raise _bad(what, value, "an object")


def seq(value: object, what: str) -> list[Any]:
    """``value`` if it is a list, the empty list if null or missing; raises otherwise."""
    if type(value) is list:
        return value
    if value is None:
        return []
    raise _bad(what, value, "a list")
