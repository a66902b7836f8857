"""The incremental SSE parser of the fast transport, fed byte strings split every way."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provcfg._providers._sse import SSEParser


def _feed_all(parts: list[bytes]) -> list[tuple[str, str]]:
    parser = SSEParser()
    out: list[tuple[str, str]] = []
    for part in parts:
        out.extend(parser.feed(part))
    out.extend(parser.finish())
    return out


STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start"}\n\n'
    b": a comment line\n\n"
    b"event: ping\ndata: {}\n\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"h\xc3\xa9"}}\n\n'
    b"event: multi\ndata: line one\ndata: line two\nid: 7\nretry: 100\n\n"
    b"data:no-space\n\n"
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n\n'
)
EXPECTED = [
    ("message_start", '{"type":"message_start"}'),
    ("ping", "{}"),
    (
        "content_block_delta",
        '{"type":"content_block_delta","delta":{"type":"text_delta","text":"hé"}}',
    ),
    ("multi", "line one\nline two"),
    ("", "no-space"),
    ("message_stop", '{"type":"message_stop"}'),
]


def test_whole_stream_in_one_chunk() -> None:
    """One chunk holding every event shape yields the events in order, comments dropped."""
    assert _feed_all([STREAM]) == EXPECTED


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_other_line_endings(newline: bytes) -> None:
    """\\r\\n and bare \\r line ends parse the same as \\n."""
    assert _feed_all([STREAM.replace(b"\n", newline)]) == EXPECTED


def test_every_split_point_byte_by_byte() -> None:
    """Feeding one byte at a time (splitting UTF-8 and \\r\\n pairs) gives the same events."""
    for stream in (STREAM, STREAM.replace(b"\n", b"\r\n"), STREAM.replace(b"\n", b"\r")):
        assert _feed_all([stream[i : i + 1] for i in range(len(stream))]) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_splits(data: st.DataObject) -> None:
    """Any split of the stream into chunks, with any line ending, gives the same events."""
    newline = data.draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    stream = STREAM.replace(b"\n", newline)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=20)))
    parts = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _feed_all(parts) == EXPECTED


def test_crlf_split_between_chunks_does_not_dispatch_early() -> None:
    """A \\r ending one chunk and its \\n starting the next count as one line end."""
    parser = SSEParser()
    assert parser.feed(b"event: a\r") == []
    assert parser.feed(b"\ndata: 1\r") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\r\n") == [("a", "1")]


def test_unterminated_event_is_discarded_and_reported_pending() -> None:
    """An event cut before its blank line is not returned, and pending says bytes were left."""
    parser = SSEParser()
    assert parser.feed(b'event: a\ndata: 1\n\nevent: b\ndata: {"par') == [("a", "1")]
    assert parser.pending
    assert parser.finish() == []


def test_event_without_data_is_not_dispatched() -> None:
    """An event with no data line is dropped, as the SSE spec says."""
    assert _feed_all([b"event: lonely\n\nevent: x\ndata: y\n\n"]) == [("x", "y")]


def test_extra_blank_lines_between_events() -> None:
    """Runs of blank lines between events do not produce empty events."""
    assert _feed_all([b"\n\n\nevent: x\ndata: 1\n\n\n\n\nevent: y\ndata: 2\n\n"]) == [
        ("x", "1"),
        ("y", "2"),
    ]


def test_field_without_colon_and_empty_data() -> None:
    """A bare ``data`` line is an empty data line; unknown fields are ignored."""
    assert _feed_all([b"event: e\ndata\nfoo: bar\ndata: x\n\n"]) == [("e", "\nx")]


def test_large_stream_many_chunks() -> None:
    """Ten thousand deltas split at 4 KiB boundaries arrive intact and in order."""
    events = [
        b"event: content_block_delta\ndata: "
        + json.dumps({"type": "content_block_delta", "delta": {"text": f"t{i}"}}).encode()
        + b"\n\n"
        for i in range(10_000)
    ]
    blob = b"".join(events)
    got = _feed_all([blob[i : i + 4096] for i in range(0, len(blob), 4096)])
    assert [json.loads(d)["delta"]["text"] for _, d in got] == [f"t{i}" for i in range(10_000)]
