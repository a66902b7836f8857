"""How long an anthropic-api attempt may wait for its answer, on one timer per event loop.

An attempt's *window* runs from the moment it is handed to httpx2 until its response
headers arrive (and, for an error status, its body). Two limits apply: the request's
deadline (``timeout``) and, once the request's headers start going out on a connection,
``first_byte_timeout``. A request queued for a free pooled connection is bounded by
the deadline only (its queueing is not the server's slowness).

Every window open on a loop shares one loop timer, kept by that loop's :class:`Watch`:
opening a window is a dict insert and closing it a dict delete. Windows of one provider
all last about as long (``first_byte_timeout``), so a new one nearly always ends after
those already open and the timer set for the earliest stays as it is. A timer per
window (``asyncio.timeout_at``) cost two loop timers per request (it is rescheduled
when the headers go out), each a heap push that compares Python-level
``TimerHandle.__lt__`` a few times, and leaves a cancelled handle behind: about 1 % of
a short request's time on the sdk transport, before its first chunk.

When the timer fires, the watch asks each window that is due which limit really passed
(a window set where its first-byte limit would end had the request gone out at once
may find the request still queued, or sent later): a window past a limit cancels its
task, the others are put back with their new end. :meth:`Window.stop` takes a window's
own cancellation back (as ``asyncio.timeout`` does), so a cancellation from elsewhere
stays the caller's.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from typing import Any, Final

__all__ = ["GRACE", "Limit", "LimitPassed", "Watch", "Window"]

GRACE: Final = 0.05
"""How long after the deadline a window ends (httpx2's capped timers fire first, with
their precise kind: a pool wait ends as ``pool_exhausted``)."""

_EARLY: Final = 1e-3
"""A window this close to its end when the timer fires counts as due (timers are not
exact; waking again for a millisecond would cost more than it is worth)."""


class LimitPassed(TimeoutError):
    """A :class:`Limit` ended the wait (and not some ``TimeoutError`` from the work itself)."""


class Watch:
    """The one timer of every :class:`Window` open on one event loop (see the module)."""

    __slots__ = ("_at", "_handle", "_windows")

    def __init__(self) -> None:
        self._windows: dict[Limit, float] = {}
        # Weakly: a handle holds its loop, and a watch must not keep its loop alive
        # (the loop's own timer heap holds the handle while it is pending).
        self._handle: weakref.ref[asyncio.TimerHandle] | None = None
        self._at = math.inf

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._handle is not None:
            pending = self._handle()
            if pending is not None:
                pending.cancel()
        self._at = when
        self._handle = weakref.ref(loop.call_at(when, self._fire))

    def put(self, loop: asyncio.AbstractEventLoop, window: Limit, when: float) -> None:
        """Watch ``window`` until ``when`` (loop time); the timer moves only if earlier."""
        self._windows[window] = when
        if when < self._at:
            self._arm(loop, when)

    def drop(self, window: Limit) -> None:
        """Stop watching ``window`` (the timer stays set: it finds nothing due, or others)."""
        self._windows.pop(window, None)

    def __len__(self) -> int:
        return len(self._windows)

    def _fire(self) -> None:
        self._handle = None
        self._at = math.inf
        windows = self._windows
        if not windows:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        due = [window for window, when in windows.items() if when <= now + _EARLY]
        for window in due:
            del windows[window]
            window.expire(now)  # cancels its task, or puts itself back with its new end
        if windows:
            earliest = min(windows.values())
            if earliest < self._at:
                self._arm(loop, earliest)


# Weak keys: a loop's watch goes with the loop. (Holding loops here kept a closed loop,
# and whatever a test had left open on it, alive into the next test.)
_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watch] = weakref.WeakKeyDictionary()


def watch_of(loop: asyncio.AbstractEventLoop) -> Watch:
    """``loop``'s watch (made on first use; it goes when the loop does)."""
    watch = _watches.get(loop)
    if watch is None:
        watch = _watches[loop] = Watch()
    return watch


class Limit:
    """A task's wait that ends at a loop time, on the loop's :class:`Watch`.

    :meth:`start_at` in the waiting task, :meth:`stop` after the wait (always, in a
    ``finally``): True when the limit ended it. A subclass decides in :meth:`expire`
    whether the limit really passed.
    """

    __slots__ = ("_cancelling", "_fired", "_loop", "_task", "_watch")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._fired = False
        self._task: asyncio.Task[Any] | None = None
        self._watch: Watch | None = None
        self._cancelling = 0

    def loop_time(self) -> float:
        """The loop's clock (what :meth:`start_at` takes)."""
        return self._loop.time()

    def start_at(self, when: float) -> None:
        """Begin the wait in the current task; it ends at ``when`` (loop time)."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - always called from a coroutine
            raise RuntimeError("a limit needs a running task")
        self._task = task
        self._cancelling = task.cancelling()
        self._watch = watch = watch_of(self._loop)
        watch.put(self._loop, self, when)

    def expire(self, now: float) -> None:
        """The watch's timer found this limit due: end the wait (cancel its task)."""
        self._fired = True
        if self._task is not None:
            self._task.cancel()

    def stop(self) -> bool:
        """End the wait; True when the limit ended it (the task's cancellation that did
        it is taken back, unless someone else cancelled the task too). Idempotent."""
        if self._watch is not None:
            self._watch.drop(self)
            self._watch = None
        if not self._fired or self._task is None:
            return False
        self._fired = False
        return self._task.uncancel() <= self._cancelling


class Window(Limit):
    """How long one attempt may wait for its answer (headers, and an error body).

    ``deadline`` is on the ``time.perf_counter`` scale (the request's), ``first_byte``
    and ``total`` in seconds (``None``: no such limit). Call :meth:`start` before the
    wait, :meth:`sending` when the request's headers start going out, :meth:`stop` after
    it (always, in a ``finally``).
    """

    __slots__ = ("_by_first_byte", "_deadline_at", "_first_byte", "_late", "_sent", "total")

    def __init__(
        self, deadline: float | None, first_byte: float | None, total: float | None
    ) -> None:
        super().__init__()
        loop = self._loop
        self._first_byte = first_byte
        self.total = total or 0.0  # the request's total limit in seconds (for messages)
        self._deadline_at: float | None = None
        if deadline is not None:
            self._deadline_at = loop.time() + max(deadline - time.perf_counter(), 0.0) + GRACE
        self._sent: float | None = None  # loop time the headers started going out
        self._by_first_byte = False
        self._fired = False
        self._late = False  # the timer found the request still queued

    @property
    def limited(self) -> bool:
        """Whether any limit applies (``timeout: none`` and ``first_byte_timeout: none``: no)."""
        return self._deadline_at is not None or self._first_byte is not None

    def at(self) -> float | None:
        """The loop time the wait must end by as things stand (for ``asyncio.timeout_at``).

        Before the request is sent its first-byte limit is counted from now: the end it
        would have if the request went out at once.
        """
        when = self._deadline_at
        if self._first_byte is not None:
            base = self._sent if self._sent is not None else self._loop.time()
            first = base + self._first_byte
            if when is None or first < when:
                when = first
        return when

    def start(self) -> None:
        """Begin the wait in the current task."""
        when = self.at()
        if when is not None:
            self.start_at(when)

    def sending(self) -> None:
        """The request is on a connection: its first-byte limit starts now."""
        if self._sent is not None:
            return
        self._sent = self._loop.time()
        if self._late and self._watch is not None:  # it waits for the deadline: sooner now
            when = self.at()
            if when is not None:
                self._watch.put(self._loop, self, when)

    def expire(self, now: float) -> None:
        """The watch's timer found this window due: end the wait, or set its new end."""
        now += _EARLY
        if self._deadline_at is not None and now >= self._deadline_at:
            self._by_first_byte = False
        elif (
            self._first_byte is not None
            and self._sent is not None
            and now >= self._sent + self._first_byte
        ):
            self._by_first_byte = True
        else:  # queued (or sent later than the end assumed): look again then
            self._late = self._sent is None
            when = self.at()
            if when is not None and self._watch is not None:
                self._watch.put(self._loop, self, when)
            return
        super().expire(now)

    @property
    def by_first_byte(self) -> bool:
        """Whether the first-byte limit (not the deadline) ended the wait."""
        return self._by_first_byte and self._first_byte is not None
