"""The stub's directive grammar (model names, x-stub-* headers, queue) and fault shaping."""

from __future__ import annotations

import pytest

from provcfg.stub import Fault, StubConfig, StubError, parse_directives
from provcfg.stub.faults import Directives, FaultQueue
from provcfg.stub.wire import GARBAGE, shape


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("thinking", Directives(scenario="thinking")),
        ("tool-use", Directives(scenario="tool-use")),
        (
            "fault-429-retry-after-1",
            Directives(fault=Fault(status=429, retry_after=("seconds", 1.0), retry_after_ms=1000)),
        ),
        (
            "429; retry-after-0.5",
            Directives(fault=Fault(status=429, retry_after=("seconds", 0.5), retry_after_ms=500)),
        ),
        ("529-retry-after-seconds-2", Directives(fault=Fault(529, retry_after=("seconds", 2.0)))),
        ("503-retry-after-date-7", Directives(fault=Fault(503, retry_after=("date", 7.0)))),
        ("429-retry-after-ms-1500", Directives(fault=Fault(429, retry_after_ms=1500))),
        ("echo-conversation", Directives(echo=True)),
        ("thinking-echo", Directives(scenario="thinking", echo=True)),
        ("drop-3", Directives(fault=Fault(drop_after=3))),
        ("drop", Directives(fault=Fault(drop_after=1))),
        ("error", Directives(fault=Fault(error_after=1))),
        ("bad-json-2", Directives(fault=Fault(bad_json_after=2))),
        ("stall", Directives(fault=Fault(stall_after=1))),
        ("no-stop,garbage", Directives(fault=Fault(no_stop=True, garbage=True))),
        ("hang", Directives(fault=Fault(hang=True))),
        ("headers-delay-2.5+delay-0.01", Directives(fault=Fault(headers_delay=2.5, delay=0.01))),
        ("deltas-100-chunk-size-1", Directives(reply=(("deltas", 100), ("chunk_size", 1)))),
        (
            "thinking-fault-drop-2",
            Directives(scenario="thinking", fault=Fault(drop_after=2)),
        ),
        ("", Directives()),
    ],
)
def test_grammar(spec: str, expected: Directives) -> None:
    """Each documented word parses to the intended directive."""
    assert parse_directives(spec, where="test") == expected


@pytest.mark.parametrize("spec", ["drpo", "429x", "drop3", "thinking-sonnet", "echoes", "1.5"])
def test_unknown_words_are_errors(spec: str) -> None:
    """A word outside the grammar raises StubError naming the word and the place."""
    with pytest.raises(StubError, match=r"^here: unknown stub directive '.+'; known: "):
        parse_directives(spec, where="here")


def test_later_directives_win() -> None:
    """Merging keeps earlier settings and lets later ones override field by field."""
    model = parse_directives("thinking-429", where="model")
    header = parse_directives("retry-after-2-drop-1", where="header")
    merged = model.merged(header)
    assert merged.scenario == "thinking"
    assert merged.fault == Fault(
        status=429, retry_after=("seconds", 2.0), retry_after_ms=2000, drop_after=1
    )
    config = parse_directives("deltas-5-delay-0.5-tool-use", where="x").apply(StubConfig())
    assert (config.deltas, config.delay, config.scenario) == (5, 0.5, "tool-use")
    later = parse_directives("retry-after-date-5", where="queue")
    assert merged.merged(later).fault.retry_after == ("date", 5.0)


def test_queue_matches_path_and_counts_uses() -> None:
    """Queued entries hit only matching paths, as many times as asked, in order."""
    queue = FaultQueue()
    queue.put("401", path="/v1/responses", times=2)
    queue.put("529")
    assert queue.take("/v1/messages") == (parse_directives("529", where="q"), "529")
    assert queue.take("/v1/messages") is None
    assert [queue.take("/v1/responses") is not None for _ in range(3)] == [True, True, False]
    with pytest.raises(StubError, match="times"):
        queue.put("500", times=0)
    with pytest.raises(StubError, match="'boom'"):
        queue.put("boom")


def _frames(fault: Fault) -> tuple[list[bytes], str]:
    # Frames are whole SSE events (ending in a blank line); the names keep the table short.
    sections = [(False, [b"head"]), (True, [b"d1", b"d2", b"d3"]), (False, [b"tail"])]
    events = [(d, [f + b"\n\n" for f in fs]) for d, fs in sections]
    frames, end = shape(
        events, [b"stop\n\n"], fault, error_frame=lambda: b"err\n\n", bad_frame=b"bad\n\n"
    )
    return [f.removesuffix(b"\n\n") if f != GARBAGE else f for f in frames], end


@pytest.mark.parametrize(
    ("fault", "frames", "end"),
    [
        (Fault(), [b"head", b"d1", b"d2", b"d3", b"tail", b"stop"], "complete"),
        (Fault(drop_after=2), [b"head", b"d1", b"d2"], "drop"),
        (Fault(drop_after=0), [b"head"], "drop"),
        (Fault(stall_after=1), [b"head", b"d1"], "hang"),
        (Fault(error_after=1), [b"head", b"d1", b"err"], "complete"),
        (Fault(bad_json_after=3), [b"head", b"d1", b"d2", b"d3", b"bad"], "complete"),
        (Fault(error_after=9), [b"head", b"d1", b"d2", b"d3", b"tail", b"err"], "complete"),
        (Fault(no_stop=True), [b"head", b"d1", b"d2", b"d3", b"tail"], "complete"),
        (Fault(drop_after=2, error_after=1), [b"head", b"d1", b"err"], "complete"),
    ],
)
def test_shape(fault: Fault, frames: list[bytes], end: str) -> None:
    """Faults cut, end and complete a stream exactly where they say."""
    assert _frames(fault) == (frames, end)


def test_garbage_interleaves_skippable_blocks() -> None:
    """garbage puts a comment + unknown-field block after every frame, changing nothing else."""
    frames, end = _frames(Fault(garbage=True))
    assert frames[0::2] == [b"head", b"d1", b"d2", b"d3", b"tail", b"stop"]
    assert set(frames[1::2]) == {GARBAGE}
    assert end == "complete"


def test_public_names() -> None:
    """provcfg.stub exports exactly the documented API."""
    import provcfg.stub

    assert sorted(provcfg.stub.__all__) == [
        "Directives",
        "Fault",
        "RecordedRequest",
        "StubConfig",
        "StubError",
        "StubProcess",
        "StubServer",
        "main",
        "parse_directives",
        "tool_words",
    ]
    assert all(hasattr(provcfg.stub, name) for name in provcfg.stub.__all__)
