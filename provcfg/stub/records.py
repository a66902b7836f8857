"""What clients sent: :class:`RecordedRequest` and the bounded store that keeps the last ones.

The store is bounded twice: by count (the last 10,000 requests) and by bytes (kept
bodies and headers together at most 64 MiB), so a test that sends large bodies for
an hour cannot make the stub grow without end. A body is kept as the bytes received
(at most 256 KiB each) and parsed when a test reads it.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BODY_KEPT", "MAX_RECORDS", "MAX_RECORD_BYTES", "RecordedRequest", "Records"]

MAX_RECORDS = 10_000
MAX_RECORD_BYTES = 64 * 1024 * 1024
BODY_KEPT = 256 * 1024


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What one client request looked like, for tests to assert on.

    ``headers``: (name, value) pairs, names lower-case, credential values replaced by
    ``<redacted>``. ``body``: the parsed JSON body when it is at most 256 KiB, else
    ``None`` (``raw_body`` holds those bytes). ``directives``: the spec strings applied
    (default fault, model, headers, queue). ``connection``: the server's number for
    the TCP connection (keep-alive reuse).
    """

    method: str
    path: str
    model: str | None
    stream: bool
    headers: tuple[tuple[str, str], ...]
    body_size: int
    connection: int
    directives: tuple[str, ...]
    status: int
    raw_body: bytes = field(default=b"", repr=False)

    @property
    def body(self) -> Any:
        """Return the parsed JSON body (``None``: too large to keep, empty, or not JSON)."""
        if not self.raw_body:
            return None
        try:
            return json.loads(self.raw_body)
        except (ValueError, RecursionError):
            return None

    def header(self, name: str) -> str | None:
        """Return the value of header ``name`` (case-insensitive), or ``None``."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def to_json(self) -> dict[str, Any]:
        """Return this record as a JSON-ready dict (``body`` parsed, no raw bytes)."""
        return {
            "method": self.method,
            "path": self.path,
            "model": self.model,
            "stream": self.stream,
            "headers": [list(pair) for pair in self.headers],
            "body_size": self.body_size,
            "body": self.body,
            "connection": self.connection,
            "directives": list(self.directives),
            "status": self.status,
        }

    def weight(self) -> int:
        """Return the bytes this record holds (body and headers), for the store's budget."""
        return len(self.raw_body) + sum(len(k) + len(v) for k, v in self.headers)


class Records:
    """The last ``max_records`` requests, fewer when they hold more than ``max_bytes``.

    Safe to use from any thread.
    """

    def __init__(self, max_records: int = MAX_RECORDS, max_bytes: int = MAX_RECORD_BYTES) -> None:
        """Keep at most ``max_records`` records holding at most ``max_bytes`` in total."""
        self._items: deque[RecordedRequest] = deque()
        self._weights: deque[int] = deque()  # each record's weight(), computed once
        self._lock = threading.Lock()
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._bytes = 0

    def add(self, record: RecordedRequest, weight: int | None = None) -> None:
        """Keep ``record``, forgetting the oldest ones beyond the bounds.

        ``weight``: the record's :meth:`~RecordedRequest.weight`, if the caller knows it.
        """
        if weight is None:
            weight = record.weight()
        with self._lock:
            self._items.append(record)
            self._weights.append(weight)
            self._bytes += weight
            while len(self._items) > self._max_records or (
                self._bytes > self._max_bytes and len(self._items) > 1
            ):
                self._items.popleft()
                self._bytes -= self._weights.popleft()

    def snapshot(self) -> list[RecordedRequest]:
        """Return the kept records, oldest first."""
        with self._lock:
            return list(self._items)

    @property
    def held_bytes(self) -> int:
        """Return the bytes the kept records hold."""
        return self._bytes

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._items.clear()
            self._weights.clear()
            self._bytes = 0
