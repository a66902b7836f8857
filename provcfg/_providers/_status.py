"""The one HTTP status -> error kind table, shared by the API kind and the CLI kinds.

A status the Anthropic API answers with and a status an agent CLI reports in its
error text mean the same thing, so both go through :func:`kind_for_status`. Every
status from 400 to 599 has a kind (tests/test_error_tables.py checks each one).

Choices worth knowing: 402 (payment required) and 403 are ``permission`` (the key
may not do this: billing or access); 404 is ``model_not_found`` when the text
mentions a model, else ``invalid_request`` (a wrong path or resource); 503 and 529
are ``overloaded`` (come back later); 504 is ``server_error`` (an upstream gateway
gave up: retryable, unlike our own deadline, which is ``timeout``); 408 is
``timeout``; any other 5xx is ``server_error``, any other 4xx ``invalid_request``.
"""

from __future__ import annotations

from typing import Final

from provcfg._errors import ErrorKind

__all__ = ["STATUS_KINDS", "kind_for_status", "listed_kind_for_status"]

STATUS_KINDS: Final[dict[int, ErrorKind]] = {
    400: "invalid_request",
    401: "authentication",
    402: "permission",
    403: "permission",
    404: "invalid_request",  # model_not_found when the text names a model
    408: "timeout",
    413: "invalid_request",
    429: "rate_limit",
    500: "server_error",
    502: "server_error",
    503: "overloaded",
    504: "server_error",
    529: "overloaded",
}


def listed_kind_for_status(status: int, text: str = "") -> ErrorKind | None:
    """The kind the table gives ``status`` (any 5xx included), or None for another status.

    ``text`` (the error message) refines a 404. The CLI kinds use this form: for a
    status the table does not list, the words of the CLI's message decide.
    """
    kind = STATUS_KINDS.get(status)
    if kind is None:
        return "server_error" if 500 <= status <= 599 else None
    if status == 404 and "model" in text.lower():
        return "model_not_found"
    return kind


def kind_for_status(status: int, text: str = "") -> ErrorKind:
    """The error kind of an HTTP answer with ``status``; ``text`` refines a 404.

    A status the table does not list is ``invalid_request`` when it is a 4xx and
    ``server_error`` otherwise (an answer the client cannot use: an error event inside
    a 200 stream without a type, or a redirect that was not followed).
    """
    kind = listed_kind_for_status(status, text)
    if kind is not None:
        return kind
    return "invalid_request" if 400 <= status <= 499 else "server_error"
