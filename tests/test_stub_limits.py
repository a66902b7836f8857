"""Every value of the stub's grammar and settings is bounded: out of range is a 400 or exit 2."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from provcfg.stub import StubConfig, StubError, StubServer, main, parse_directives
from provcfg.stub.faults import BOUNDS, STATUS_RANGE, DefaultFault, FaultQueue
from tests.support_stub import stub  # noqa: F401

ROUTES = ["/v1/messages", "/v1/responses", "/v1/chat/completions"]
TWENTY_DIGITS = "9" * 20
OPTIONAL_COUNTS = ("drop", "error", "bad-json", "stall")  # the number may be left out


def _out_of_range(word: str) -> list[str]:
    whole, low, high, _ = BOUNDS[word]
    above = f"{int(high) + 1}" if whole else f"{high + 0.5}"
    values = [TWENTY_DIGITS, above, "abc", "1e5", f"{TWENTY_DIGITS}.5", "0x10"]
    if low > 0:
        values.append("0")
    if whole:
        values.append("1.5")
    return values


CASES = [(word, value) for word in BOUNDS for value in _out_of_range(word)]


@pytest.mark.parametrize(("word", "value"), CASES)
def test_every_valued_word_refuses_values_out_of_range(word: str, value: str) -> None:
    """Each valued word refuses huge, malformed and out-of-range values, naming value and range."""
    _, low, high, what = BOUNDS[word]
    with pytest.raises(StubError) as caught:
        parse_directives(f"429-{word}-{value}", where="model 'x'")
    message = str(caught.value)
    assert message.startswith("model 'x': ")
    if word in OPTIONAL_COUNTS and not value[0].isdigit():
        # "drop-abc" reads as the word drop, then an unknown word.
        assert f"unknown stub directive '{value}'" in message
        return
    assert f"{word}-{value[:40]}" in message
    assert f"from {low:,g} to {high:,.0f}" in message
    assert what in message


@pytest.mark.parametrize(
    "word", [w for w in BOUNDS if w not in ("drop", "error", "bad-json", "stall")]
)
def test_a_word_without_its_value_names_the_form(word: str) -> None:
    """A word that needs a value and has none says which form it takes."""
    with pytest.raises(StubError, match=rf"{word} needs its value; {word}-[NS] takes"):
        parse_directives(f"429-{word}", where="here")


@pytest.mark.parametrize("word", list(BOUNDS))
def test_every_valued_word_accepts_its_bounds(word: str) -> None:
    """The documented low and high ends of each range are accepted."""
    whole, low, high, _ = BOUNDS[word]
    for value in (low, high):
        text = f"{int(value)}" if whole or float(value).is_integer() else f"{value}"
        parse_directives(f"429-{word}-{text}", where="here")


@pytest.mark.parametrize(
    "status",
    ["100", "101", "103", "199", "200", "204", "302", "304", "399", "600", "4290", TWENTY_DIGITS],
)
def test_status_outside_400_599_is_refused(status: str) -> None:
    """1xx, 2xx, 3xx (no body, or a client left waiting) and non-HTTP statuses are refused."""
    with pytest.raises(StubError, match=rf"HTTP status {status[:40]}.*give 400-599"):
        parse_directives(f"fault-{status}", where="here")


async def _post(
    server: StubServer, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=20) as http:
        return await http.post(server.base_url + path, json=body, headers=headers)


def _message(path: str, response: httpx2.Response) -> str:
    """The error message, checking the dialect's error shape on the way."""
    data = response.json()
    if path == "/v1/messages":
        assert data["type"] == "error"
        assert data["error"]["type"] == "invalid_request_error"
    else:
        assert set(data["error"]) == {"message", "type", "param", "code"}
    message = data["error"]["message"]
    assert isinstance(message, str)
    return message


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("model", "named", "allowed"),
    [
        (f"stub-length-{TWENTY_DIGITS}", "length-9999", "0 to 1,000,000,000,000"),
        (f"stub-deltas-{TWENTY_DIGITS}", "deltas-9999", "0 to 1,000,000,000"),
        (f"stub-chunk-size-{TWENTY_DIGITS}", "chunk-size-9999", "1 to 65,536"),
        (f"stub-drop-{TWENTY_DIGITS}", "drop-9999", "0 to 1,000,000,000"),
        (f"stub-headers-delay-{TWENTY_DIGITS}", "headers-delay-9999", "0 to 3,600"),
        (f"stub-delay-{TWENTY_DIGITS}", "delay-9999", "0 to 60"),
        (f"stub-429-retry-after-{TWENTY_DIGITS}", "retry-after-9999", "0 to 86,400"),
        ("stub-deltas-abc", "'abc' is not valid", "0 to 1,000,000,000"),
        ("stub-100", "HTTP status 100", "400-599"),
        ("stub-fault-101", "HTTP status 101", "400-599"),
        ("stub-204", "HTTP status 204", "400-599"),
        ("stub-304", "HTTP status 304", "400-599"),
        ("stub-retry-after-5", "needs an HTTP status", "429-retry-after-1"),
    ],
)
async def test_bad_values_answer_400_in_the_api_shape(
    stub: StubServer,  # noqa: F811
    path: str,
    stream: bool,
    model: str,
    named: str,
    allowed: str,
) -> None:
    """A bad value in a model name is a 400 JSON error naming it and its range, on every route."""
    body = {"model": model, "messages": [], "input": "hi", "stream": stream, "max_tokens": 5}
    response = await _post(stub, path, body)
    assert response.status_code == 400
    message = _message(path, response)
    assert named in message
    assert allowed in message
    assert stub.requests[-1].status == 400


async def test_bad_values_from_headers_queue_and_default_are_400s(stub: StubServer) -> None:  # noqa: F811
    """Header directives with bad values are 400s; the queue and default refuse them up front."""
    body = {"model": "m", "messages": []}
    for header in ("x-stub-fault", "x-stub-reply", "x-stub-scenario"):
        response = await _post(stub, "/v1/messages", body, {header: f"deltas-{TWENTY_DIGITS}"})
        assert response.status_code == 400
        assert f"header {header}: deltas-" in _message("/v1/messages", response)
    with pytest.raises(StubError, match="out of range"):
        FaultQueue().put(f"stall-{TWENTY_DIGITS}")
    with pytest.raises(StubError, match="out of range"):
        DefaultFault().set(f"headers-delay-{TWENTY_DIGITS}")
    async with httpx2.AsyncClient(timeout=20) as http:
        queued = await http.post(stub.base_url + "/_stub/faults", json={"faults": ["150"]})
    assert queued.status_code == 400
    assert "400-599" in queued.json()["error"]["message"]


async def test_edge_statuses_are_served(stub: StubServer) -> None:  # noqa: F811
    """400 and 599, the ends of the status range, are answered as asked."""
    for status in STATUS_RANGE:
        response = await _post(stub, "/v1/messages", {"model": f"stub-{status}", "messages": []})
        assert response.status_code == status


async def test_a_long_hostile_model_name_gets_a_short_error(stub: StubServer) -> None:  # noqa: F811
    """A megabyte-long model name is refused with a message of bounded length."""
    model = "stub-" + "x" * 1_000_000
    response = await _post(stub, "/v1/messages", {"model": model, "messages": []})
    assert response.status_code == 400
    assert len(_message("/v1/messages", response)) < 2000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deltas": 10**20}, "deltas is out of range"),
        ({"length": 10**13}, "length is out of range"),
        ({"chunk_size": 65537}, "chunk_size is out of range"),
        ({"delay": float("nan")}, "delay must be a finite number"),
        ({"delay": float("inf")}, "delay must be a finite number"),
        ({"delay": 61.0}, "delay is out of range"),
        ({"text": "x" * 1_048_577}, "text is 1,048,577 characters"),
        ({"text": "\udc80"}, "lone surrogates"),
        ({"tool_name": "a b"}, "tool_name 'a b'"),
        ({"tool_name": "t" * 129}, "1-128 letters"),
        ({"tool_input": '{"a": "' + "x" * 70_000 + '"}'}, "at most 65,536"),
        # Refused either way: too deep for the parser, or (with a raised recursion limit,
        # as hypothesis sets one while it runs) not an object.
        (
            {"tool_input": "[" * 30_000 + "]" * 30_000},
            "tool_input: the tool input (is not valid JSON|must be a JSON object)",
        ),
    ],
)
def test_config_values_are_bounded(kwargs: dict[str, Any], message: str) -> None:
    """StubConfig refuses absurd sizes, non-finite delays and unencodable text, naming the field."""
    with pytest.raises(StubError, match=message):
        StubConfig(**kwargs)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--deltas", TWENTY_DIGITS], "deltas is out of range"),
        (["--length", "-5"], "length is out of range"),
        (["--delay", "nan"], "delay must be a finite number"),
        (["--chunk-size", TWENTY_DIGITS], "chunk_size is out of range"),
        (["--backlog", "0"], "backlog is out of range"),
        (["--backlog", TWENTY_DIGITS], "backlog is out of range"),
        (["--max-body-size", "10"], "max_body_size is out of range"),
        (["--request-timeout", "inf"], "request_timeout must be a finite number"),
        (["--idle-timeout", "-1"], "idle_timeout is out of range"),
        (["--port", TWENTY_DIGITS], "port 9999"),
    ],
)
def test_cli_bounds_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Out-of-range CLI values exit 2 with the value's name and range, before listening."""
    # --port 0 first: were a value accepted, the server would start on a free port (and the
    # test would fail on its timeout) rather than collide with another test's port.
    assert main(["--port", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("provcfg stub: ")
    assert message in err
    assert "Traceback" not in err
