"""The reply the server writes, and the SSE framing and fault shaping every API dialect shares.

An API dialect (``anthropic``, ``openai``) renders a stream as *sections*: runs of
frames (one SSE event each) flagged as deltas or not, plus the *terminal* frames
that say "done" (``message_stop``, ``response.completed``, ``data: [DONE]``).
:func:`shape` turns them into the frames to send under a :class:`Fault`: cut after N
deltas, add an error event, leave out the terminal frames, or interleave garbage.
Frames are produced lazily, so a 100,000-delta reply never sits in memory whole; an
event that must carry the whole reply text (the Responses API's ``*.done`` events)
is rendered around a hole and the text poured in piece by piece
(:func:`with_text`), so one frame may arrive as several byte strings.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from provcfg.stub.config import ReplyText, StubConfig
from provcfg.stub.faults import Fault

__all__ = [
    "FRAME_CACHE_BYTES",
    "TEXT_HOLE",
    "Call",
    "End",
    "Reply",
    "Section",
    "dumps",
    "json_reply",
    "shape",
    "sse",
    "sse_headers",
    "with_text",
]

End = Literal["complete", "drop", "hang"]
Section = tuple[bool, Iterable[bytes]]

# Lines a conforming SSE parser must skip: a comment and an unknown field, as their own block.
GARBAGE = b": stub garbage, a comment line\nx-stub-noise: an unknown field\n\n"
# A placeholder string for the reply text in an event rendered by with_text (a NUL
# cannot come from the reply text unescaped, so the escaped marker is unambiguous).
TEXT_HOLE = "\x00provcfg-stub-text\x00"
# How many bytes of rendered delta frames a reply may keep for reuse: long replies
# repeat a short text, so a few distinct frames serve the whole stream.
FRAME_CACHE_BYTES = 1 << 22


@dataclass(frozen=True, slots=True)
class Call:
    """One API request as a dialect sees it, after directives were resolved.

    ``ident`` makes the message/response ids unique; ``input_tokens`` is derived from
    the request size; ``tool_result`` says the last message carries a tool result (so
    the tool-use scenario answers with text and agent loops end).
    """

    model: str
    config: StubConfig
    fault: Fault
    ident: int
    input_tokens: int
    tool_result: bool = False
    include_usage: bool = False


@dataclass(slots=True)
class Reply:
    """One HTTP response as the server should write it.

    ``frames`` set: a streamed (chunked) body, written as produced with ``delay``
    seconds between frames. Otherwise ``body`` with a Content-Length. ``end`` says
    how the body finishes: ``complete``; ``drop`` (close the connection without
    finishing the body); ``hang`` (send nothing more until the client leaves).
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    frames: Iterator[bytes] | None = None
    end: End = "complete"
    delay: float = 0.0
    headers_delay: float = 0.0
    hang_before_headers: bool = False


# One encoder, built once: json.dumps with non-default options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_HOLE_BYTES = _ENCODE(TEXT_HOLE)[1:-1].encode()


def dumps(obj: Any) -> str:
    """Return compact JSON text (no spaces), as the real APIs send it."""
    return _ENCODE(obj)


def sse(event: str | None, data: Any) -> bytes:
    """Return one SSE event block; ``data`` is JSON-encoded unless it is already a str."""
    text = data if isinstance(data, str) else dumps(data)
    if event is None:
        return f"data: {text}\n\n".encode()
    return f"event: {event}\ndata: {text}\n\n".encode()


def with_text(frame: bytes, text: ReplyText) -> Iterator[bytes]:
    """Yield ``frame`` with each :data:`TEXT_HOLE` replaced by ``text``, JSON-escaped, lazily.

    JSON escaping works character by character, so escaping the text piece by piece
    gives the same bytes as escaping it whole.
    """
    parts = frame.split(_HOLE_BYTES)
    yield parts[0]
    for part in parts[1:]:
        for piece in text.pieces(65536):
            yield _ENCODE(piece)[1:-1].encode()
        yield part


def json_reply(status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> Reply:
    """Return a JSON :class:`Reply` with ``status`` and extra ``headers``."""
    return Reply(
        status=status,
        headers=[("content-type", "application/json"), *headers],
        body=dumps(obj).encode(),
    )


def sse_headers() -> list[tuple[str, str]]:
    """Return the response headers of an SSE stream."""
    return [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]


def shape(
    sections: Iterable[Section],
    terminal: Iterable[bytes],
    fault: Fault,
    *,
    error_frame: Callable[[], bytes],
    bad_frame: bytes,
) -> tuple[Iterator[bytes], End]:
    """Return the frames to send for ``sections`` + ``terminal`` under ``fault``, and the ending.

    ``error_frame`` renders the dialect's in-stream error event (``error-N``);
    ``bad_frame`` is its event with a data line that is not JSON (``bad-json-N``).
    """
    cut = fault.cut_after()
    end: End = "complete"
    if fault.drop_after is not None and fault.drop_after == cut:
        end = "drop"
    elif fault.stall_after is not None and fault.stall_after == cut:
        end = "hang"
    if cut is None and not fault.no_stop and not fault.garbage:
        # The fast path: nothing to count or interleave.
        return itertools.chain(*(frames for _, frames in sections), terminal), end
    frames = _shaped(sections, terminal, fault, cut, (error_frame, bad_frame))
    return (_interleave(frames) if fault.garbage else frames), end


def _shaped(
    sections: Iterable[Section],
    terminal: Iterable[bytes],
    fault: Fault,
    cut: int | None,
    endings: tuple[Callable[[], bytes], bytes],
) -> Iterator[bytes]:
    sent = 0
    for is_delta, frames in sections:
        for frame in frames:
            if is_delta and sent == cut:  # cut == 0: strike before the first delta
                yield from _cut_ending(fault, cut, endings)
                return
            yield frame
            if is_delta:
                sent += 1
                if sent == cut:
                    yield from _cut_ending(fault, cut, endings)
                    return
    if cut is not None:
        # Fewer deltas than the cut: strike at the end instead of silently not at all.
        yield from _cut_ending(fault, cut, endings)
        return
    if not fault.no_stop:
        yield from terminal


def _cut_ending(
    fault: Fault, cut: int, endings: tuple[Callable[[], bytes], bytes]
) -> Iterator[bytes]:
    if fault.error_after == cut:
        yield endings[0]()
    elif fault.bad_json_after == cut:
        yield endings[1]


def _interleave(frames: Iterator[bytes]) -> Iterator[bytes]:
    for frame in frames:
        yield frame
        if frame.endswith(b"\n\n"):  # not inside an event that arrives in pieces
            yield GARBAGE
