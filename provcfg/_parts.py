"""Parts a Runtime shares with the generations before and after it, and what one generation holds.

A :class:`SharedPart` wraps a region, a pool, the CLI resolver or the provider store
with a reference count, so a reload reuses what did not change and closing an old
generation closes only what nothing newer uses. :class:`Holdings` is one generation's
list of the parts it holds a reference on (and of other things to undo), released once,
in reverse order, resumably: a release cancelled half-way goes on where it stopped.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Holdings", "SharedPart"]

T = TypeVar("T")

_REFS_LOCK = threading.Lock()
"""Guards every SharedPart.refs (parts move between generations built in threads)."""


class SharedPart(Generic[T]):
    """A part reused across generations; closed when the last generation holding it lets go."""

    __slots__ = ("closer", "digest", "obj", "refs")

    def __init__(self, obj: T, digest: str, closer: Callable[[T], Awaitable[None] | None]) -> None:
        self.obj = obj
        self.digest = digest
        self.closer = closer
        self.refs = 1

    def take(self) -> bool:
        """Add a reference unless the part is already closed (or closing); True if taken."""
        with _REFS_LOCK:
            if self.refs <= 0:
                return False
            self.refs += 1
            return True

    def drop(self) -> bool:
        """Remove a reference; True when it was the last one (the caller closes the part)."""
        with _REFS_LOCK:
            self.refs -= 1
            return self.refs == 0


class Holdings:
    """What one generation holds: parts (a reference each) and undo steps, released once."""

    def __init__(self) -> None:
        self._items: list[SharedPart[Any] | Callable[[], Awaitable[None] | None]] = []

    def new(
        self, obj: T, digest: str, closer: Callable[[T], Awaitable[None] | None]
    ) -> SharedPart[T]:
        """Hold a part just built (its one reference is ours)."""
        part = SharedPart(obj, digest, closer)
        self._items.append(part)
        return part

    def reuse(
        self, previous: Mapping[str, SharedPart[T]], name: str, digest: str
    ) -> SharedPart[T] | None:
        """Take a reference on ``previous[name]`` if its digest is ``digest`` and it is open."""
        part = previous.get(name)
        if part is None or part.digest != digest or not part.take():
            return None
        self._items.append(part)
        return part

    def undo(self, step: Callable[[], Awaitable[None] | None]) -> None:
        """Run ``step`` when released (after the parts taken after it are let go).

        An async step cancelled while it runs is run again by the next :meth:`release`,
        so it must be idempotent.
        """
        self._items.append(step)

    def __len__(self) -> int:
        """How many parts and undo steps are still held."""
        return len(self._items)

    async def release(self) -> None:
        """Let go of everything, newest first; close each part whose last reference this was.

        Resumable: each item is removed before it is handled, a part's close, once
        started, is shielded from cancellation, and an async undo step that is
        cancelled goes back on the list.
        """
        while self._items:
            item = self._items.pop()
            if not isinstance(item, SharedPart):
                pending = item()
                if pending is not None:
                    try:
                        await pending
                    except asyncio.CancelledError:
                        self._items.append(item)
                        raise
                continue
            if item.drop():
                result = item.closer(item.obj)
                if asyncio.iscoroutine(result):
                    await asyncio.shield(result)
