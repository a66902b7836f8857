"""An incremental Server-Sent Events parser for the ``fast`` anthropic-api transport.

Fed raw network chunks as they arrive (``response.aiter_bytes()``), it returns the
events completed by each chunk as ``(event, data)`` string pairs. It follows the
WHATWG event-stream rules that matter to the Anthropic Messages API: lines end in
``\\n``, ``\\r\\n`` or ``\\r`` (also when a ``\\r\\n`` pair is split across two chunks),
``:`` lines are comments, ``data`` lines accumulate joined by ``\\n``, one space after
the colon is dropped, a field without a colon has an empty value, a blank line
dispatches, and an unterminated event at the end of the stream is discarded.

Why hand-written rather than httpx-sse or the SDK's decoder: both work line by line
with a Python-level loop per line and build an event object per event; this one
splits whole chunks at blank lines with ``bytes.split`` and takes a fast path for
the two-line ``event:``/``data:`` shape every Anthropic event has, which is what
lets the fast transport forward a delta in a fraction of the SDK's time.
"""

from __future__ import annotations

__all__ = ["MAX_EVENT_BYTES", "SSEParser"]

#: Largest event accepted by default; a server that never ends an event must not grow the
#: buffer forever (the byte-stream guard in front, :mod:`provcfg._providers._guard`, stops
#: such a stream at the same size).
MAX_EVENT_BYTES = 8 * 1024 * 1024


class SSEParser:
    """Turn a byte stream into ``(event, data)`` pairs, chunk by chunk.

    ``event`` is ``""`` when the event had no ``event:`` field (the Anthropic SDK
    skips those; so does the fast transport). ``data`` is the joined ``data``
    lines. Events without any ``data`` line are not returned, as the spec says.
    """

    __slots__ = ("_limit", "_tail")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._tail = b""
        self._limit = max_event_bytes

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (a stream cut mid-event)."""
        return bool(self._tail.strip(b"\r\n"))

    def feed(self, raw: bytes) -> list[tuple[str, str]]:
        """Add one network chunk; return the events it completed, in order.

        Raises:
            ValueError: an event grew beyond the cap (:data:`MAX_EVENT_BYTES` by default),
                or is not UTF-8.
        """
        buf = self._tail + raw if self._tail else raw
        if b"\r" in buf:
            buf = self._normalize(buf)
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            if len(buf) > self._limit:
                raise ValueError(f"an SSE event exceeds {self._limit} bytes")
            self._tail = buf
            return []
        self._tail = buf[cut + 2 :]
        # One decode per network chunk (cut at a blank line, so no character is split).
        out: list[tuple[str, str]] = []
        for block in buf[:cut].decode().split("\n\n"):
            # Fast path: exactly "event: X\ndata: Y" (the shape of every Anthropic event).
            if block.startswith("event: "):
                nl = block.find("\n")
                if nl > 0 and block.startswith("data: ", nl + 1) and block.find("\n", nl + 1) < 0:
                    out.append((block[7:nl], block[nl + 7 :]))
                    continue
            self._parse_block(block, out)
        return out

    @staticmethod
    def _normalize(buf: bytes) -> bytes:
        # A trailing "\r" may be the first half of a "\r\n" split across chunks: keep it
        # raw (it stays in the tail) so that a "\n" arriving next is not a second line end.
        if buf.endswith(b"\r"):
            return buf[:-1].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + b"\r"
        return buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

    def finish(self) -> list[tuple[str, str]]:
        """End of stream: return events completed only by a held trailing ``\\r``.

        Anything else still buffered is an unterminated event and is discarded.
        """
        tail, self._tail = self._tail, b""
        if not tail.endswith(b"\r"):
            return []
        events = self.feed(tail[:-1] + b"\n")
        self._tail = b""
        return events

    @staticmethod
    def _parse_block(block: str, out: list[tuple[str, str]]) -> None:
        event = ""
        data: list[str] = []
        for line in block.split("\n"):
            if not line:
                # A blank line inside a block: "\n\n\n" runs leave one at a block's start.
                if data:
                    out.append((event, "\n".join(data)))
                event, data = "", []
                continue
            if line[0] == ":":  # a comment
                continue
            name, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            # "id" and "retry" carry nothing the Messages API uses; unknown fields are ignored.
        if data:
            out.append((event, "\n".join(data)))
