"""Per-request directives (scenario, fault, reply size), the fault queue and the default fault.

One small grammar serves four places, so a real CLI that can only pick a model name
can reach every fault a Python test can:

* the model name: everything after the first ``stub-`` (``stub-thinking``,
  ``stub-fault-429-retry-after-1``, ``anthropic/stub-tool-use-drop-3``);
* the headers ``x-stub-scenario``, ``x-stub-fault`` and ``x-stub-reply``;
* the server-side queue (``POST /_stub/faults`` or ``StubServer.enqueue_fault``);
* the default fault (``POST /_stub/default-fault`` or ``StubServer.set_default_fault``),
  applied to every request (or a share of them) until it is cleared.

The header ``x-stub-tool-input`` takes the tool input as plain JSON instead.

Tokens are separated by ``-``, ``,``, ``;``, ``+`` or spaces; a number belongs to the
word before it. The words (``N`` a whole number, ``S`` seconds as a decimal; every
value has a range, see :data:`BOUNDS` and docs/stub.md)::

    text | tool-use | thinking         scenario
    echo-conversation | echo            the reply text summarises the conversation received
    tool-NAME                           the tool the tool-use scenario calls (``tool-Read``)
    input-HEX                           its input: a JSON object, UTF-8, hex-encoded (model
                                        names cannot carry JSON; see :func:`tool_words`)
    NNN                                 reply with that HTTP status (400-599)
    retry-after-S                       add retry-after: S and retry-after-ms to a status reply
    retry-after-seconds-S               add retry-after: S only
    retry-after-date-S                  add retry-after as an HTTP date S seconds from now
    retry-after-ms-N                    add retry-after-ms: N only
    drop[-N]                            close the connection after N deltas (default 1)
    no-stop                             end without the final event (message_stop,
                                        response.completed, data: [DONE])
    error[-N]                           an in-stream error event after N deltas (default 1)
    bad-json[-N]                        a data line that is not JSON after N deltas
    headers-delay-S                     wait S seconds before the response headers
    delay-S                             wait S seconds between streamed events
    hang                                never answer (until the client gives up)
    stall[-N]                           stop sending after N deltas, keep the connection open
    garbage                             SSE comment and unknown-field lines between events
    length-N | chunk-size-N | deltas-N  reply size
    fault | stub                        ignored (readability: ``stub-fault-429``)
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from provcfg.stub.config import (
    MAX_CHUNK_SIZE,
    MAX_COUNT,
    MAX_DELAY,
    MAX_HEADERS_DELAY,
    MAX_LENGTH,
    MAX_RETRY_AFTER,
    MAX_TOOL_NAME,
    Scenario,
    StubConfig,
    StubError,
    parse_tool_input,
)

__all__ = [
    "BOUNDS",
    "MAX_QUEUED",
    "STATUS_RANGE",
    "DefaultFault",
    "Directives",
    "Fault",
    "FaultQueue",
    "RetryAfter",
    "parse_directives",
    "tool_words",
]

# retry-after as ("seconds", S) or ("date", S): a delay in seconds, or the HTTP date S from now.
RetryAfter = tuple[Literal["seconds", "date"], float]
STATUS_RANGE = (400, 599)  # error statuses: each carries a body and ends the exchange
MAX_QUEUED = 10_000  # entries the fault queue holds
MAX_TIMES = 1_000_000_000  # uses of one queued entry

# Every word that takes a value: (whole number?, low, high, what the value is).
BOUNDS: dict[str, tuple[bool, float, float, str]] = {
    "retry-after": (False, 0, MAX_RETRY_AFTER, "seconds"),
    "retry-after-seconds": (False, 0, MAX_RETRY_AFTER, "seconds"),
    "retry-after-date": (False, 0, MAX_RETRY_AFTER, "seconds from now"),
    "retry-after-ms": (True, 0, MAX_RETRY_AFTER * 1000, "milliseconds"),
    "drop": (True, 0, MAX_COUNT, "deltas"),
    "error": (True, 0, MAX_COUNT, "deltas"),
    "bad-json": (True, 0, MAX_COUNT, "deltas"),
    "stall": (True, 0, MAX_COUNT, "deltas"),
    "headers-delay": (False, 0, MAX_HEADERS_DELAY, "seconds"),
    "delay": (False, 0, MAX_DELAY, "seconds"),
    "length": (True, 0, MAX_LENGTH, "characters"),
    "chunk-size": (True, 1, MAX_CHUNK_SIZE, "characters"),
    "deltas": (True, 0, MAX_COUNT, "deltas"),
}


@dataclass(frozen=True, slots=True)
class Fault:
    """What to break in one reply; the default breaks nothing.

    Counts are text/thinking/tool deltas sent before the fault strikes; times are seconds.
    ``retry_after`` is the ``retry-after`` header (a delay, or a date that far ahead);
    ``retry_after_ms`` the ``retry-after-ms`` header.
    """

    status: int | None = None
    retry_after: RetryAfter | None = None
    retry_after_ms: int | None = None
    drop_after: int | None = None
    no_stop: bool = False
    error_after: int | None = None
    bad_json_after: int | None = None
    headers_delay: float = 0.0
    delay: float | None = None
    hang: bool = False
    stall_after: int | None = None
    garbage: bool = False

    def merged(self, later: Fault) -> Fault:
        """Return this fault with every field that ``later`` sets taken from ``later``."""
        changes = {
            f.name: getattr(later, f.name)
            for f in fields(Fault)
            if getattr(later, f.name) != f.default
        }
        return replace(self, **changes) if changes else self

    def cut_after(self) -> int | None:
        """Return after how many deltas the stream stops early, or ``None`` to run to the end."""
        cuts = [
            n
            for n in (self.drop_after, self.error_after, self.bad_json_after, self.stall_after)
            if n is not None
        ]
        return min(cuts) if cuts else None


@dataclass(frozen=True, slots=True)
class Directives:
    """The parsed form of one spec string: scenario, tool, fault and reply-size overrides.

    ``tool_input`` is the text of a JSON object (kept as text: hashable).
    """

    scenario: Scenario | None = None
    fault: Fault = field(default_factory=Fault)
    reply: tuple[tuple[str, int], ...] = ()
    tool_name: str | None = None
    tool_input: str | None = None
    echo: bool = False

    def merged(self, later: Directives) -> Directives:
        """Return these directives overridden by whatever ``later`` sets."""
        return Directives(
            scenario=later.scenario or self.scenario,
            fault=self.fault.merged(later.fault),
            reply=self.reply + later.reply,
            tool_name=later.tool_name or self.tool_name,
            tool_input=later.tool_input or self.tool_input,
            echo=later.echo or self.echo,
        )

    def apply(self, config: StubConfig) -> StubConfig:
        """Return ``config`` with this scenario and reply-size overrides applied.

        Raises:
            StubError: an override makes the configuration invalid, or a retry-after
                word has no HTTP status to go with.
        """
        fault = self.fault
        if fault.status is None and (fault.retry_after or fault.retry_after_ms is not None):
            raise StubError(
                "a retry-after word needs an HTTP status word to go with, like "
                "429-retry-after-1 or 529-retry-after-ms-1500"
            )
        changes: dict[str, Any] = dict(self.reply)
        if self.scenario is not None:
            changes["scenario"] = self.scenario
        if fault.delay is not None:
            changes["delay"] = fault.delay
        if self.tool_name is not None:
            changes["tool_name"] = self.tool_name
        if self.tool_input is not None:
            changes["tool_input"] = self.tool_input
        if self.echo:
            changes["echo_conversation"] = True
        return replace(config, **changes) if changes else config


_SEP = r"-,;+\s"
_VALUE = rf"[^{_SEP}]*"  # a required value: whatever stands before the next separator
_COUNT = rf"[0-9][^{_SEP}]*"  # an optional count: only when it starts with a digit
# Each alternative is one named group (the word's kind, ``match.lastgroup``); a value
# sits in an inner ``v_`` group.
_TOKEN = re.compile(
    rf"""
    (?:
    (?P<scenario>text|tool[-_]use|thinking)
    |(?P<echo>echo-conversation|echo)
    |(?P<tool>tool-(?P<v_tool>[A-Za-z_][A-Za-z0-9_]*))
    |(?P<input>input-(?P<v_input>[0-9A-Fa-f]+))
    |(?P<status>[0-9]+)
    |(?P<retry_after_ms>retry-after-ms(?:-(?P<v_retry_after_ms>{_VALUE}))?)
    |(?P<retry_after_seconds>retry-after-seconds(?:-(?P<v_retry_after_seconds>{_VALUE}))?)
    |(?P<retry_after_date>retry-after-date(?:-(?P<v_retry_after_date>{_VALUE}))?)
    |(?P<retry_after>retry-after(?:-(?P<v_retry_after>{_VALUE}))?)
    |(?P<drop>drop(?:-(?P<v_drop>{_COUNT}))?)
    |(?P<no_stop>no-stop)
    |(?P<error>error(?:-(?P<v_error>{_COUNT}))?)
    |(?P<bad_json>bad-json(?:-(?P<v_bad_json>{_COUNT}))?)
    |(?P<headers_delay>headers-delay(?:-(?P<v_headers_delay>{_VALUE}))?)
    |(?P<delay>delay(?:-(?P<v_delay>{_VALUE}))?)
    |(?P<hang>hang)
    |(?P<stall>stall(?:-(?P<v_stall>{_COUNT}))?)
    |(?P<garbage>garbage)
    |(?P<length>length(?:-(?P<v_length>{_VALUE}))?)
    |(?P<chunk_size>chunk-size(?:-(?P<v_chunk_size>{_VALUE}))?)
    |(?P<deltas>deltas(?:-(?P<v_deltas>{_VALUE}))?)
    |(?P<noise>fault|stub)
    )(?=[{_SEP}]|$)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_SEPARATORS = "-,;+ \t\r\n\f\v"
# kind -> its value group, and kind -> the word as written (computed once, not per token).
_VALUE_GROUPS = {g[2:]: g for g in _TOKEN.groupindex if g.startswith("v_")}
_WORDS = {kind: kind.replace("_", "-") for kind in _TOKEN.groupindex}
_KNOWN = (
    "known: text, tool-use, thinking, echo-conversation, tool-NAME, input-HEX, NNN (HTTP "
    "status 400-599), retry-after-S, retry-after-seconds-S, retry-after-date-S, "
    "retry-after-ms-N, drop[-N], no-stop, error[-N], bad-json[-N], headers-delay-S, delay-S, "
    "hang, stall[-N], garbage, length-N, chunk-size-N, deltas-N"
)
_NUMBER = re.compile(r"([0-9]+)(\.[0-9]+)?")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _number(word: str, raw: str | None, where: str) -> float:
    """Return the value of ``word``'s number ``raw``, checked against :data:`BOUNDS`."""
    whole, low, high, _ = BOUNDS[word]
    if raw is None or raw == "":
        raise StubError(f"{where}: {word} needs its value; {_allowed(word)}")
    number = _NUMBER.fullmatch(raw)
    if number is None or (whole and number.group(2)):
        raise StubError(
            f"{where}: {word}-{_short(raw)}: {_short(raw)!r} is not valid; {_allowed(word)}"
        )
    # A long digit string is out of range whatever it says; int() of it would be slow.
    value = -1.0 if len(number.group(1)) > 16 else (int(raw) if whole else float(raw))
    if not low <= value <= high:
        raise StubError(f"{where}: {word}-{_short(raw)} is out of range; {_allowed(word)}")
    return value


def _allowed(word: str) -> str:
    whole, low, high, what = BOUNDS[word]
    kind = "a whole number" if whole else "a number"
    return f"{word}-{'N' if whole else 'S'} takes {kind} of {what} from {low:,g} to {high:,.0f}"


def parse_directives(spec: str, *, where: str) -> Directives:
    """Parse one spec string (see the module docstring) into :class:`Directives`.

    ``where`` names the source (``model 'stub-x'``, ``header x-stub-fault``) for errors.

    Raises:
        StubError: a token is not in the grammar, or its value is missing, malformed or
            outside its range; the message names the word, the place and the range.
    """
    fault: dict[str, Any] = {}
    reply: list[tuple[str, int]] = []
    scenario: Scenario | None = None
    echo = False
    tool: dict[str, str] = {}
    pos, end = 0, len(spec)
    while pos < end:
        if spec[pos] in _SEPARATORS:
            pos += 1
            continue
        match = _TOKEN.match(spec, pos)
        if match is None:
            bad = re.split(r"[-,;+\s]", spec[pos:], maxsplit=1)[0]
            raise StubError(f"{where}: unknown stub directive {_short(bad)!r}; {_KNOWN}")
        pos = match.end()
        kind = match.lastgroup or "noise"
        token = match.group(0).lower()
        inner = _VALUE_GROUPS.get(kind)
        value = match.group(inner) if inner is not None else None
        word = _WORDS.get(kind, kind)
        if kind == "scenario":
            scenario = "tool-use" if token.startswith("tool") else token  # type: ignore[assignment]
        elif kind == "echo":
            echo = True
        elif kind == "tool":
            name = match.group("v_tool")  # as written: tool names are case-sensitive
            if len(name) > MAX_TOOL_NAME:
                raise StubError(
                    f"{where}: tool-{_short(name)}: a tool name has 1-{MAX_TOOL_NAME} characters"
                )
            tool["tool_name"] = name
        elif kind == "input":
            tool["tool_input"] = _hex_input(match.group("v_input"), where)
        elif kind == "status":
            fault["status"] = _status(token, where)
        elif kind in ("retry_after", "retry_after_seconds", "retry_after_date"):
            seconds = _number(word, value, where)
            fault["retry_after"] = ("date" if kind == "retry_after_date" else "seconds", seconds)
            if kind == "retry_after":
                fault["retry_after_ms"] = round(seconds * 1000)
        elif kind == "retry_after_ms":
            fault["retry_after_ms"] = int(_number(word, value, where))
        elif kind in ("headers_delay", "delay"):
            fault[kind] = _number(word, value, where)
        elif kind in ("drop", "error", "bad_json", "stall"):
            fault[f"{kind}_after"] = 1 if value is None else int(_number(word, value, where))
        elif kind in ("no_stop", "hang", "garbage"):
            fault[kind] = True
        elif kind in ("length", "chunk_size", "deltas"):
            reply.append((kind, int(_number(word, value, where))))
    return Directives(
        scenario=scenario, fault=Fault(**fault), reply=tuple(reply), echo=echo, **tool
    )


def _status(token: str, where: str) -> int:
    low, high = STATUS_RANGE
    status = int(token) if len(token) <= 3 else -1
    if not low <= status <= high:
        raise StubError(
            f"{where}: HTTP status {_short(token)} cannot be a fault; give {low}-{high} "
            "(an error status: 1xx, 204 and 304 carry no body and would leave a client waiting)"
        )
    return status


def _hex_input(digits: str, where: str) -> str:
    try:
        text = bytes.fromhex(digits).decode("utf-8")
    except ValueError:
        raise StubError(
            f"{where}: input-{digits[:16]}...: not hex-encoded UTF-8; build it with "
            "provcfg.stub.tool_words(name, tool_input)"
        ) from None
    parse_tool_input(text, where=where)
    return text


def tool_words(name: str, tool_input: dict[str, Any] | None = None) -> str:
    """Return the directive words that make the tool-use scenario call ``name`` with ``tool_input``.

    For a model name: ``"stub-tool-use-" + tool_words("Read", {"file_path": "/tmp/a"})``
    gives ``stub-tool-use-tool-Read-input-7b22...``.

    Raises:
        StubError: ``name`` is not a word of letters, digits and underscores.
    """
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) is None:
        raise StubError(f"tool name {name!r}: use letters, digits and underscores only")
    if tool_input is None:
        return f"tool-{name}"
    text = json.dumps(tool_input, separators=(",", ":"), ensure_ascii=False)
    return f"tool-{name}-input-{text.encode().hex()}"


@dataclass(slots=True)
class _Queued:
    directives: Directives
    spec: str
    path: str | None
    times: int


def _check_times(times: object) -> int:
    if isinstance(times, bool) or not isinstance(times, int):
        raise StubError(f"times must be a whole number from 1 to {MAX_TIMES:,}")
    if not 1 <= times <= MAX_TIMES:
        raise StubError(f"times is out of range ({times}): give 1 to {MAX_TIMES:,}")
    return times


class FaultQueue:
    """Directives waiting for the next matching requests, each used ``times`` times.

    Safe to use from any thread: tests enqueue from their own thread while the
    server's event loop consumes. Holds at most :data:`MAX_QUEUED` entries.
    """

    def __init__(self) -> None:
        """Create an empty queue."""
        self._items: deque[_Queued] = deque()
        self._lock = threading.Lock()

    def put(self, spec: str, *, path: str | None = None, times: int = 1) -> None:
        """Enqueue ``spec`` for the next ``times`` requests whose path starts with ``path``.

        ``path`` ``None`` matches every API request (``/v1/...``), never ``/_stub/`` ones.

        Raises:
            StubError: ``spec`` is not in the grammar, ``times`` is not 1 to 1,000,000,000,
                or the queue is full.
        """
        _check_times(times)
        directives = parse_directives(spec, where=f"queued fault {_short(spec)!r}")
        with self._lock:
            if len(self._items) >= MAX_QUEUED:
                raise StubError(
                    f"the fault queue is full ({MAX_QUEUED:,} entries); use 'times' for "
                    "repeats, or POST /_stub/reset"
                )
            self._items.append(_Queued(directives, spec, path, times))

    def take(self, path: str) -> tuple[Directives, str] | None:
        """Return (and use up once) the first queued directives matching ``path``, if any."""
        if not self._items:  # the common case, without the lock
            return None
        with self._lock:
            for item in self._items:
                if item.path is None or path.startswith(item.path):
                    item.times -= 1
                    if item.times == 0:
                        self._items.remove(item)
                    return item.directives, item.spec
        return None

    def pending(self) -> list[dict[str, Any]]:
        """Return the queued entries as JSON-ready dicts (spec, path, times left)."""
        with self._lock:
            return [{"spec": i.spec, "path": i.path, "times": i.times} for i in self._items]

    def clear(self) -> None:
        """Drop every queued entry."""
        with self._lock:
            self._items.clear()


class DefaultFault:
    """A spec applied to every matching request (or a share ``rate`` of them) until cleared.

    The slow/recover switch of a running stub: set ``headers-delay-2`` and every request
    waits 2 s for its headers; clear it and the stub is fast again, without a restart.
    The share is deterministic: of any ``n`` consecutive matching requests,
    ``floor(n * rate)`` or one more get the fault. Safe to use from any thread.
    """

    def __init__(self) -> None:
        """Start with no default fault."""
        self._lock = threading.Lock()
        self._current: tuple[Directives, str, float, str | None] | None = None
        self._seen = 0

    def set(self, spec: str | None, *, rate: float = 1.0, path: str | None = None) -> None:
        """Apply ``spec`` to a share ``rate`` (0 < rate <= 1) of requests under ``path``.

        ``spec`` ``None`` or empty clears the default fault.

        Raises:
            StubError: ``spec`` is not in the grammar, or ``rate`` is not in (0, 1].
        """
        if not spec:
            with self._lock:
                self._current = None
            return
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
            raise StubError(f"rate must be a number greater than 0 and at most 1, got {rate!r}")
        directives = parse_directives(spec, where=f"default fault {_short(spec)!r}")
        with self._lock:
            self._current = (directives, spec, float(rate), path)
            self._seen = 0

    def describe(self) -> dict[str, Any] | None:
        """Return the default fault as a JSON-ready dict (spec, rate, path), or ``None``."""
        current = self._current
        if current is None:
            return None
        return {"spec": current[1], "rate": current[2], "path": current[3]}

    def take(self, path: str) -> tuple[Directives, str] | None:
        """Return the default directives if this request to ``path`` gets them."""
        current = self._current
        if current is None:  # the common case, without the lock
            return None
        directives, spec, rate, prefix = current
        if prefix is not None and not path.startswith(prefix):
            return None
        with self._lock:
            self._seen += 1
            seen = self._seen
        if rate < 1 and int(seen * rate) == int((seen - 1) * rate):
            return None
        return directives, spec
