"""What a reload tells the world: :class:`ReloadEvent`, its fan-out, and secret-free text.

:class:`EventHub` hands every outcome to the callers awaiting the next one and to
every ``events()`` subscriber (a bounded queue each, so a reader that stopped
reading cannot grow memory without bound). Error text leaving a reload passes
through :func:`scrub`, which masks every secret value we know of, so a log line,
a metric value or an event never carries one even if a message slipped one in.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, SecretStr

from provcfg._errors import ManifestError, ProvcfgError, RuntimeClosedError, printable
from provcfg._secrets import MASK, every_form

__all__ = ["EventHub", "ReloadEvent", "error_text", "known_secrets", "problem_lines", "scrub"]

_MAX_QUEUED_EVENTS: Final = 256
_MASK: Final = MASK
_SECRET_NAME_PARTS: Final = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")


@dataclass(frozen=True, slots=True)
class ReloadEvent:
    """The outcome of one reload attempt.

    Attributes:
        generation: the generation live after the attempt (unchanged when it failed).
        ok: whether the file's content is live.
        changes: per provider, ``unchanged`` / ``rebuilt`` / ``added`` / ``removed``
            (empty when the attempt failed, or when content already live came back).
        latency_s: seconds from the save (the file's mtime) to the new runtime being
            live; None when nothing was built.
        problems: ``FILE:LINE:COL: loc: message`` lines when it failed (no secret), at
            most :data:`~provcfg._errors.PROBLEM_LIMIT` of them.
        error: the failure as one text (no secret); empty when ok.
        timestamp: wall-clock time (``time.time()``) of the outcome.
        digest: sha256 of the content tried (hex), or ``<missing>``.
        omitted: problems found beyond those in ``problems`` (a file with thousands).
        build_s: seconds from provcfg noticing the change (the watcher reporting it, or
            ``reload()`` being called) to the new runtime being live: waiting for an
            attempt already running, then read, hash, validate, build and swap;
            provcfg's own share of ``latency_s``, the rest being the watcher's wait for
            the save to settle (when the file's mtime is not plausible, ``latency_s``
            is counted from the notice too, and the two are equal). None when nothing
            was built: a failed attempt, or content already live that came back.
    """

    generation: int
    ok: bool
    changes: Mapping[str, str]
    latency_s: float | None
    problems: tuple[str, ...]
    error: str
    timestamp: float
    digest: str
    omitted: int = 0
    build_s: float | None = None

    def summary(self) -> str:
        """One human line: what changed and how fast, or why it failed."""
        if not self.ok:
            count = len(self.problems) + self.omitted
            what = f"{count:,} problem{'s' if count != 1 else ''}" if count else self.error
            return f"reload failed ({what}); generation {self.generation} stays live"
        parts = ", ".join(f"{name} {state}" for name, state in self.changes.items())
        latency = "" if self.latency_s is None else f" in {self.latency_s * 1000:.0f} ms"
        return f"generation {self.generation} live{latency}: {parts or 'content unchanged'}"


class EventHub:
    """Delivers each :class:`ReloadEvent` to one-shot waiters and to subscribers."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[ReloadEvent]] = []
        self._queues: list[asyncio.Queue[ReloadEvent | None]] = []
        self._closed = False

    def publish(self, event: ReloadEvent) -> None:
        """Hand ``event`` to everyone listening (synchronously; never blocks)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(event)
        for queue in self._queues:
            if queue.qsize() >= _MAX_QUEUED_EVENTS:
                queue.get_nowait()
            queue.put_nowait(event)

    async def next(self, timeout: float | None = None) -> ReloadEvent:
        """The next published event.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
            RuntimeClosedError: the hub was closed.
        """
        if self._closed:
            raise RuntimeClosedError("the watch was closed")
        waiter: asyncio.Future[ReloadEvent] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def subscribe(self) -> AsyncIterator[ReloadEvent]:
        """Every event from the first iteration on, until :meth:`close`.

        A reader more than 256 events behind loses the oldest ones.
        """
        if self._closed:
            return
        queue: asyncio.Queue[ReloadEvent | None] = asyncio.Queue()
        self._queues.append(queue)
        try:
            while True:
                event = await queue.get()
                if event is None:
                    return
                yield event
        finally:
            self._queues.remove(queue)

    def close(self) -> None:
        """Fail the waiters with RuntimeClosedError and end every subscription."""
        self._closed = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeClosedError("the watch was closed"))
        for queue in self._queues:
            queue.put_nowait(None)


def problem_lines(error: ProvcfgError) -> tuple[str, ...]:
    """``FILE:LINE:COL: loc: message`` per problem of a ManifestError; empty otherwise."""
    return tuple(str(p) for p in error.problems) if isinstance(error, ManifestError) else ()


def error_text(error: ProvcfgError) -> str:
    """The failure as one line of text (characters that are not printable escaped)."""
    if isinstance(error, ManifestError):
        return "; ".join(str(p) for p in error.problems)
    return printable(" ".join(str(error).split()))


def scrub(text: str, manifest: BaseModel | None, environ: Mapping[str, str] | None) -> str:
    """``text`` with every known secret masked.

    Known secrets: the ``SecretStr`` values of ``manifest`` (the live one) and the
    values of environment variables whose names say they are secret (``*KEY*``,
    ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ...), ``environ`` or ``os.environ``.
    """
    for secret in every_form(known_secrets(manifest, environ)):  # URL-encoded, base64, ...
        text = text.replace(secret, _MASK)
    return text


def known_secrets(manifest: BaseModel | None, environ: Mapping[str, str] | None) -> set[str]:
    """The values :func:`scrub` masks: ``manifest``'s ``SecretStr`` values (4 characters or
    more) and secret-named variables of ``environ`` (``os.environ`` when None; 6 or more)."""
    secrets = set(_manifest_secrets(manifest))
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if len(value) >= 6 and any(part in name.upper() for part in _SECRET_NAME_PARTS):
            secrets.add(value)
    return secrets


def _manifest_secrets(value: object) -> Iterable[str]:
    # Walked only when a reload fails, so the cost never touches a good reload.
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, SecretStr):
            secret = item.get_secret_value()
            if len(secret) >= 4:
                yield secret
        elif isinstance(item, BaseModel):
            stack.extend(getattr(item, name) for name in type(item).model_fields)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, tuple | list):
            stack.extend(item)
