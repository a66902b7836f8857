"""Translate Anthropic API failures into :class:`~provcfg._errors.ProviderError` kinds.

Both anthropic-api transports end here, so a failure looks the same whichever one
met it: an HTTP error status (with its JSON body and ``retry-after`` headers), an
``error`` event inside an SSE stream, an httpx2 transport exception, or an anthropic
SDK exception (which wraps the same three). Every message names the endpoint and
the fix and is scrubbed of the API key and of a ``base_url`` password, in every
spelling (:func:`~provcfg._secrets.secret_forms`: plain, URL-encoded, the base64 of
``user:password`` that HTTP Basic sends), whatever the server or a library echoed;
text is scrubbed before it is cut to length, so no prefix of a secret survives either.
No exception is chained: a ``__cause__`` or ``__context__`` could carry request headers
(:func:`~provcfg._providers.base.metered` clears both on the way out).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx2

from provcfg._errors import ErrorKind, ProviderError
from provcfg._manifest import mask_url
from provcfg._poolhooks import RedirectRefused
from provcfg._providers._status import kind_for_status
from provcfg._providers.base import ClientPool
from provcfg._secrets import every_form, scrub, secret_forms

__all__ = [
    "ErrorMapper",
    "parse_retry_after",
]

# error.type of an Anthropic error body -> kind.
_TYPE_KINDS: dict[str, ErrorKind] = {
    "invalid_request_error": "invalid_request",
    "request_too_large": "invalid_request",
    "authentication_error": "authentication",
    "permission_error": "permission",
    "billing_error": "permission",
    "not_found_error": "invalid_request",  # refined to model_not_found below
    "rate_limit_error": "rate_limit",
    "overloaded_error": "overloaded",
    "api_error": "server_error",
    "timeout_error": "timeout",
}

_HINTS: dict[str, str] = {
    "authentication": "check providers.{name}.api_key (for example ${{ANTHROPIC_API_KEY}})",
    "permission": "the API key is not allowed to do this; check its workspace and model access",
    "model_not_found": "check the model id or alias (providers.{name}.model or the models: table)",
    "invalid_request": "fix the request (model, max_tokens, system or the options passed)",
    "rate_limit": "slow down, lower concurrency, or raise providers.{name}.max_retries",
    "overloaded": "the API is overloaded; retry later or raise providers.{name}.max_retries",
    "server_error": "the API failed; retry later",
    "timeout": "raise providers.{name}.timeout or pass timeout=",
    "network": "check providers.{name}.base_url and that the server is reachable",
    "pool_exhausted": "raise pools.<pool>.max_connections, or lower concurrency",
    "stream_incomplete": "the connection dropped mid-answer; retry the request",
}

_MESSAGE_LIMIT = 300
_CHAIN_LIMIT = 8


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``retry-after`` (seconds or an HTTP date).

    Returns None when neither header is present or parseable; never a negative number.
    """
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ErrorMapper:
    """Builds ProviderErrors for one provider: its name, endpoint, pool and secrets to scrub."""

    __slots__ = ("_endpoint", "_name", "_place", "_pool", "_secrets")

    def __init__(
        self,
        name: str,
        url: str,
        secrets: tuple[str, ...],
        pool: ClientPool | None = None,
        endpoint: str = "/v1/messages",
    ) -> None:
        self._name = name
        self._pool = pool
        self._endpoint = endpoint
        # A base_url may carry a password (http://user:pw@host): the place shows it masked,
        # and the password is scrubbed wherever else it turns up, in every spelling.
        self._place = f"POST {mask_url(url)}"
        # The URL's password in every spelling too (as typed, decoded, and the base64 of
        # user:password that HTTP Basic sends), not the whole URL: that stays readable.
        url_forms = set(every_form([url])) - set(secret_forms(url))
        forms = {form for secret in secrets for form in secret_forms(secret)} | url_forms
        self._secrets = tuple(sorted(forms, key=len, reverse=True))

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def make(
        self,
        kind: ErrorKind,
        what: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
        hint: bool = True,
    ) -> ProviderError:
        """A ProviderError whose message is ``<place>: <what>; <fix>``, scrubbed of secrets."""
        hint_text = _HINTS.get(kind, "").format(name=self._name) if hint else ""
        text = f"{self._place}: {what}" + (f"; {hint_text}" if hint_text else "")
        return ProviderError(
            message=self._scrub(text),
            kind=kind,
            provider=self._name,
            status=status,
            retry_after=retry_after,
            details={k: self._scrub(v) if isinstance(v, str) else v for k, v in details.items()}
            if details
            else {},
        )

    def from_body(
        self, status: int, body: object, headers: Mapping[str, str] | None = None
    ) -> ProviderError:
        """Map an error status (or, with status 200, an SSE ``error`` event) and its body.

        ``body`` is the decoded JSON body, or its text when it was not JSON.
        """
        error = body.get("error") if isinstance(body, dict) else None
        err_type = error.get("type") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str):
            message = body if isinstance(body, str) else ""
        # Scrubbed before it is cut: a cut through a secret would leave its prefix behind.
        message = " ".join(self._scrub(message).split())[:_MESSAGE_LIMIT]
        kind: ErrorKind | None = _TYPE_KINDS.get(err_type) if isinstance(err_type, str) else None
        if kind is None:
            kind = kind_for_status(status, message)
        elif err_type == "not_found_error" and "model" in message.lower():
            kind = "model_not_found"
        where = f"HTTP {status}" if status >= 400 else "error event in the stream"
        label = f" {err_type}" if isinstance(err_type, str) else ""
        what = f"{where}{label}" + (f": {message}" if message else "")
        retry_after = parse_retry_after(headers)
        return self.make(
            kind,
            what,
            status=status if status >= 400 else None,
            retry_after=retry_after if kind in ("rate_limit", "overloaded") else None,
            details={"error_type": err_type} if isinstance(err_type, str) else None,
        )

    def from_event_data(self, data: str) -> ProviderError:
        """Map the data of an SSE ``error`` event."""
        try:
            body: object = json.loads(data)
        except ValueError:
            body = data
        return self.from_body(200, body)

    def from_transport(self, exc: BaseException, *, streaming: bool) -> ProviderError:
        """Map an httpx2 exception; ``streaming`` says the response headers had arrived.

        A connection that breaks mid-stream is ``stream_incomplete``; everything else
        goes through the pools' one mapping (:func:`provcfg._pools.map_http_error`).
        """
        refused = _redirect_in(exc)
        if refused is not None:
            return self.redirect(refused.status, refused.target)
        name = type(exc).__name__
        if (
            streaming
            and isinstance(exc, httpx2.TransportError)
            and not isinstance(exc, httpx2.TimeoutException)
        ):
            return self.make(
                "stream_incomplete", f"the stream broke before message_stop ({name}: {exc})"
            )
        setting = f"providers.{self._name}.base_url"
        if self._pool is not None:
            mapped = self._pool.map_error(exc, provider=self._name, base_url_setting=setting)
        else:
            from provcfg._pools import map_http_error

            mapped = map_http_error(exc, provider=self._name, base_url_setting=setting)
        if mapped is None:
            return self.make("network", f"unexpected transport failure ({name})")
        # The pools' mapping already names the fix for an exhausted pool and for a
        # network failure (with this provider's base_url); a timeout also gets ours.
        return self.make(
            mapped.kind, mapped.message, hint=mapped.kind not in ("pool_exhausted", "network")
        )

    def redirect(self, status: int, target: str) -> ProviderError:
        """The server redirected to another origin; nothing was sent there."""
        parts = urlsplit(target)
        path = parts.path
        if path.endswith(self._endpoint):
            path = path[: -len(self._endpoint)]
        final = urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))
        return self.make(
            "invalid_request",
            f"the server redirected (HTTP {status}) to another origin, {mask_url(target)}; "
            "provcfg never sends credentials to another origin, so it did not follow; if "
            f"that server is the right one, set providers.{self._name}.base_url to the final "
            f"URL ({mask_url(final)})",
            status=status,
            hint=False,
        )

    def first_byte(self, seconds: float) -> ProviderError:
        """No response headers arrived within ``first_byte_timeout``."""
        return self.make(
            "timeout",
            f"no answer within first_byte_timeout ({seconds:g}s): the server took the request "
            f"but sent no response headers; raise providers.{self._name}.first_byte_timeout "
            "(none: no limit of its own) or check the server",
            details={"timeout": "first_byte"},
            hint=False,
        )

    def incomplete(self, why: str) -> ProviderError:
        """The stream ended without ``message_stop``."""
        return self.make("stream_incomplete", why)

    def deadline(self, seconds: float) -> ProviderError:
        """The request's total deadline passed."""
        return self.make(
            "timeout",
            f"no complete answer within the deadline of {seconds:g}s",
            details={"timeout": "total"},
        )

    def oversize(self, limit: int) -> ProviderError:
        """One stream event grew past ``limit`` bytes without ending."""
        return self.make(
            "server_error",
            f"a stream event grew past {limit} bytes without ending; the server is not "
            "sending Messages API events",
            hint=False,
        )

    def malformed(self, why: str) -> ProviderError:
        """The server sent an event of the wrong shape or with a field of the wrong type."""
        return self.make("server_error", f"malformed stream event: {why}", hint=False)

    def from_sdk(self, exc: BaseException, *, streaming: bool) -> ProviderError:
        """Map an anthropic SDK exception (or an httpx2 one raised through the SDK)."""
        import anthropic

        if isinstance(exc, anthropic.APIStatusError):
            return self.from_body(exc.status_code, exc.body, exc.response.headers)
        refused = _redirect_in(exc)
        if refused is not None:
            return self.redirect(refused.status, refused.target)
        if isinstance(exc, anthropic.APIConnectionError):
            cause = exc.__cause__
            if isinstance(cause, httpx2.HTTPError):
                return self.from_transport(cause, streaming=streaming)
            kind: ErrorKind = "timeout" if isinstance(exc, anthropic.APITimeoutError) else "network"
            return self.make(kind, f"{type(exc).__name__}")
        if isinstance(exc, httpx2.HTTPError):
            return self.from_transport(exc, streaming=streaming)
        if isinstance(exc, anthropic.APIResponseValidationError):
            return self.make("server_error", "the API answered with an unexpected shape")
        return self.make("network", f"anthropic SDK failure ({type(exc).__name__})")


def _redirect_in(exc: BaseException) -> RedirectRefused | None:
    """The :class:`RedirectRefused` in ``exc``'s cause/context chain (the SDK wraps it)."""
    current: BaseException | None = exc
    for _ in range(_CHAIN_LIMIT):
        if current is None:
            return None
        if isinstance(current, RedirectRefused):
            return current
        current = current.__cause__ or current.__context__
    return None
