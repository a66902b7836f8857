"""The one retry policy of the anthropic-api kind (the SDK's own retries are switched off).

What is retried, and why:

* ``rate_limit`` (429), ``overloaded`` (529 or an ``overloaded_error`` event),
  ``server_error`` (500, 502, 503, 504, ``api_error``) and ``network`` (connection
  refused or reset before any answer): the server asks for, or a fresh attempt
  plausibly gets, a different outcome.
* Only while no chunk has reached the caller: a retry after that would replay text
  the caller already holds, so the error is raised instead.

What is not: ``timeout`` (the request's deadline is total, a retry cannot beat it,
and a connect timeout usually means an unreachable host, which a retry only makes
slower), ``pool_exhausted`` (the pool already waited its ``timeouts.pool``; waiting
again behind the same busy connections hides the saturation the user must see),
``stream_incomplete`` and every 4xx other than 429 (the same request fails the same way).

The wait honours the server's ``retry-after-ms`` / ``retry-after`` (seconds or an
HTTP date); otherwise it is exponential (0.5 s, 1 s, 2 s, ...) with equal jitter so
that many clients do not retry in lockstep. Either way it is capped by the spec's
``retry_max_wait``, and a wait that would overrun the request's deadline is not taken.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from provcfg._errors import ProviderError

__all__ = ["RETRYABLE_KINDS", "RetryPolicy"]

RETRYABLE_KINDS = frozenset({"rate_limit", "overloaded", "server_error", "network"})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and how long to wait; built from the provider spec."""

    max_retries: int
    max_wait: float
    base_wait: float = 0.5

    def delay(self, error: ProviderError, retries_done: int) -> float | None:
        """Seconds to wait before the next attempt, or None when ``error`` must be raised.

        ``retries_done`` counts the retries already made for this request.
        """
        if retries_done >= self.max_retries or error.kind not in RETRYABLE_KINDS:
            return None
        if error.retry_after is not None:
            return min(error.retry_after, self.max_wait)
        backoff = min(self.max_wait, self.base_wait * (2.0**retries_done))
        # Equal jitter: at least half the backoff, so the wait still grows per attempt.
        return backoff / 2.0 + random.uniform(0.0, backoff / 2.0)  # noqa: S311 - not crypto
