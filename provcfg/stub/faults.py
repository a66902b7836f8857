"""Per-request directives (scenario, fault, reply size) and the one-shot fault queue.

One small grammar serves three places, so a real CLI that can only pick a model name
can reach every fault a Python test can:

* the model name: everything after the first ``stub-`` (``stub-thinking``,
  ``stub-fault-429-retry-after-1``, ``anthropic/stub-tool-use-drop-3``);
* the headers ``x-stub-scenario``, ``x-stub-fault`` and ``x-stub-reply``;
* the server-side queue (``POST /_stub/faults`` or ``StubServer.enqueue_fault``).

The header ``x-stub-tool-input`` takes the tool input as plain JSON instead.

Tokens are separated by ``-``, ``,``, ``;``, ``+`` or spaces; a number belongs to the
word before it. The words (``N`` an integer, ``S`` seconds as a decimal)::

    text | tool-use | thinking         scenario
    tool-NAME                           the tool the tool-use scenario calls (``tool-Read``)
    input-HEX                           its input: a JSON object, UTF-8, hex-encoded (model
                                        names cannot carry JSON; see :func:`tool_words`)
    NNN                                 reply with that HTTP status (429, 529, 401, 404, ...)
    retry-after-S                       add retry-after (and retry-after-ms) to a status reply
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
from typing import Any

from provcfg.stub.config import Scenario, StubConfig, StubError, parse_tool_input

__all__ = ["Directives", "Fault", "FaultQueue", "parse_directives", "tool_words"]


@dataclass(frozen=True, slots=True)
class Fault:
    """What to break in one reply; the default breaks nothing.

    Counts are text/thinking/tool deltas sent before the fault strikes; times are seconds.
    """

    status: int | None = None
    retry_after: float | None = None
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

    def merged(self, later: Directives) -> Directives:
        """Return these directives overridden by whatever ``later`` sets."""
        return Directives(
            scenario=later.scenario or self.scenario,
            fault=self.fault.merged(later.fault),
            reply=self.reply + later.reply,
            tool_name=later.tool_name or self.tool_name,
            tool_input=later.tool_input or self.tool_input,
        )

    def apply(self, config: StubConfig) -> StubConfig:
        """Return ``config`` with this scenario and reply-size overrides applied.

        Raises:
            StubError: an override makes the configuration invalid.
        """
        changes: dict[str, Any] = dict(self.reply)
        if self.scenario is not None:
            changes["scenario"] = self.scenario
        if self.fault.delay is not None:
            changes["delay"] = self.fault.delay
        if self.tool_name is not None:
            changes["tool_name"] = self.tool_name
        if self.tool_input is not None:
            changes["tool_input"] = self.tool_input
        return replace(config, **changes) if changes else config


_NUM = r"\d+(?:\.\d+)?"
_TOKEN = re.compile(
    rf"""
    (?P<scenario>(?:text|tool[-_]use|thinking)(?![A-Za-z0-9_]))
    |tool-(?P<tool>[A-Za-z_][A-Za-z0-9_]*)
    |input-(?P<input>[0-9A-Fa-f]+)
    |(?P<status>[1-5]\d\d)(?![\d.])
    |retry-after-(?P<retry_after>{_NUM})
    |drop(?:-(?P<drop>\d+))?
    |(?P<no_stop>no-stop)
    |error(?:-(?P<error>\d+))?
    |bad-json(?:-(?P<bad_json>\d+))?
    |headers-delay-(?P<headers_delay>{_NUM})
    |delay-(?P<delay>{_NUM})
    |(?P<hang>hang)
    |stall(?:-(?P<stall>\d+))?
    |(?P<garbage>garbage)
    |length-(?P<length>\d+)
    |chunk-size-(?P<chunk_size>\d+)
    |deltas-(?P<deltas>\d+)
    |(?P<noise>fault|stub)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_SEPARATORS = "-,;+ \t"


def parse_directives(spec: str, *, where: str) -> Directives:
    """Parse one spec string (see the module docstring) into :class:`Directives`.

    ``where`` names the source (``model 'stub-x'``, ``header x-stub-fault``) for errors.

    Raises:
        StubError: a token is not in the grammar; the message lists the known words.
    """
    fault: dict[str, Any] = {}
    reply: list[tuple[str, int]] = []
    scenario: Scenario | None = None
    tool: dict[str, str] = {}
    pos, end = 0, len(spec)
    while pos < end:
        if spec[pos] in _SEPARATORS:
            pos += 1
            continue
        match = _TOKEN.match(spec, pos)
        if match is None or (match.end() < end and spec[match.end()] not in _SEPARATORS):
            bad = re.split(r"[-,;+\s]", spec[pos:], maxsplit=1)[0]
            raise StubError(
                f"{where}: unknown stub directive {bad!r}; known: text, tool-use, thinking, "
                "tool-NAME, input-HEX, NNN (HTTP status), retry-after-S, drop[-N], no-stop, "
                "error[-N], bad-json[-N], headers-delay-S, delay-S, hang, stall[-N], garbage, "
                "length-N, chunk-size-N, deltas-N"
            )
        pos = match.end()
        kind = match.lastgroup
        token = match.group(0).lower()
        if kind == "scenario":
            scenario = "tool-use" if token.startswith("tool") else token  # type: ignore[assignment]
        elif kind == "tool":
            tool["tool_name"] = match.group("tool")  # as written: tool names are case-sensitive
        elif kind == "input":
            tool["tool_input"] = _hex_input(match.group("input"), where)
        elif kind == "status":
            fault["status"] = int(token)
        elif kind in ("retry_after", "headers_delay", "delay"):
            fault[kind] = float(match.group(kind))
        elif kind in ("drop", "error", "bad_json", "stall"):
            value = match.group(kind)
            fault[f"{kind}_after"] = int(value) if value is not None else 1
        elif kind in ("no_stop", "hang", "garbage"):
            fault[kind] = True
        elif kind in ("length", "chunk_size", "deltas"):
            reply.append((kind, int(match.group(kind))))
        elif token.startswith(("drop", "error", "bad-json", "stall")):
            # A bare word with no number: the optional group did not take part.
            name = token.replace("-", "_")
            fault[f"{name}_after"] = 1
    return Directives(scenario=scenario, fault=Fault(**fault), reply=tuple(reply), **tool)


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


class FaultQueue:
    """Directives waiting for the next matching requests, each used ``times`` times.

    Safe to use from any thread: tests enqueue from their own thread while the
    server's event loop consumes.
    """

    def __init__(self) -> None:
        """Create an empty queue."""
        self._items: deque[_Queued] = deque()
        self._lock = threading.Lock()

    def put(self, spec: str, *, path: str | None = None, times: int = 1) -> None:
        """Enqueue ``spec`` for the next ``times`` requests whose path starts with ``path``.

        ``path`` ``None`` matches every API request (``/v1/...``), never ``/_stub/`` ones.

        Raises:
            StubError: ``spec`` is not in the grammar, or ``times`` < 1.
        """
        if times < 1:
            raise StubError(f"times must be >= 1, got {times}")
        directives = parse_directives(spec, where=f"queued fault {spec!r}")
        with self._lock:
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
