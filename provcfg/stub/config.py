"""What the stub replies with: the server-wide :class:`StubConfig`, its bounds, and the reply text.

A reply is the configured ``text`` repeated (or cut) to ``length`` characters and sent
``chunk_size`` characters per delta; ``deltas`` fixes the number of deltas instead
(``length = deltas * chunk_size``), which is what throughput benchmarks want.

Every size, count and time the stub accepts has a range (the constants below, listed
in docs/stub.md); a value outside it is a :class:`StubError` naming the value and the
range, so nothing absurd reaches the server loop. A long reply is never built whole:
:class:`ReplyText` hands out its pieces lazily, so a 20,000,000-delta stream costs
the same memory as a short one.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from provcfg._errors import ProvcfgError

__all__ = [
    "INLINE_LIMIT",
    "MAX_CHUNK_SIZE",
    "MAX_COUNT",
    "MAX_DELAY",
    "MAX_HEADERS_DELAY",
    "MAX_LENGTH",
    "MAX_RETRY_AFTER",
    "MAX_TEXT",
    "MAX_TOOL_INPUT",
    "MAX_TOOL_NAME",
    "MAX_UNSTREAMED",
    "SCENARIOS",
    "TOOL_INPUT",
    "ReplyText",
    "Scenario",
    "StubConfig",
    "StubError",
    "check_loopback",
    "check_number",
    "parse_tool_input",
    "safe_text",
    "split",
]

Scenario = Literal["text", "tool-use", "thinking"]
SCENARIOS: tuple[Scenario, ...] = ("text", "tool-use", "thinking")
# The tool-use scenario's default input (for the default tool, get_weather).
TOOL_INPUT: dict[str, Any] = {"location": "San Francisco, CA", "unit": "celsius"}

# The ranges every grammar word, config field and CLI option is held to (docs/stub.md).
MAX_COUNT = 1_000_000_000  # deltas; the N of drop/error/bad-json/stall
MAX_LENGTH = 1_000_000_000_000  # reply characters (streamed lazily, so only time bounds it)
MAX_CHUNK_SIZE = 65_536  # characters per delta
MAX_DELAY = 60.0  # seconds between streamed events
MAX_HEADERS_DELAY = 3600.0  # seconds before the response headers
MAX_RETRY_AFTER = 86_400.0  # seconds a retry-after header may ask for
MAX_TEXT = 1_048_576  # characters of the configured reply text (before repetition)
MAX_TOOL_NAME = 128  # characters, as the Anthropic API allows
MAX_TOOL_INPUT = 65_536  # bytes of a tool input's JSON
# A reply that is not streamed is one JSON document built in memory: above this many
# characters the request is refused (400) and told to stream.
MAX_UNSTREAMED = 16 * 1024 * 1024
# Up to this many characters the reply text is built whole (the fast path every short
# reply takes); above it, its pieces are cut from one window as they are sent.
INLINE_LIMIT = 1024 * 1024

_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]+")
_DEFAULT_TOOL = "get_weather"


class StubError(ProvcfgError, ValueError):
    """The stub cannot start or cannot understand a directive; the message names the fix."""


def check_number(name: str, value: float, low: float, high: float, unit: str = "") -> None:
    """Raise :class:`StubError` unless ``low <= value <= high`` (and finite).

    ``name`` says which setting the value belongs to; ``unit`` is appended to the range.

    Raises:
        StubError: the value is out of range, NaN or infinite.
    """
    if low <= value <= high:  # NaN fails this comparison too
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise StubError(f"{name} must be a finite number from {_n(low)} to {_n(high)}{unit}")
    raise StubError(
        f"{name} is out of range ({_short(str(value))}): give {_n(low)} to {_n(high)}{unit}"
    )


def _n(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value}"


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def safe_text(text: str) -> str:
    """Return ``text`` with anything UTF-8 cannot carry (lone surrogates) replaced by ``?``.

    Request JSON may hold ``"\\ud800"``; echoed back unchanged it could not be encoded.
    """
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True, slots=True)
class ReplyText:
    """A reply text that is never held whole when long: ``unit`` repeated and cut to ``length``."""

    unit: str
    length: int

    def whole(self) -> str:
        """Return the whole text (callers keep it to :data:`MAX_UNSTREAMED` characters or fewer)."""
        if self.length == len(self.unit):
            return self.unit
        if not self.length:
            return ""
        return (self.unit * (self.length // len(self.unit) + 1))[: self.length]

    def count(self, size: int) -> int:
        """Return how many pieces of ``size`` characters the text makes."""
        return -(-self.length // size)

    def pieces(self, size: int) -> Iterator[str]:
        """Yield the text in pieces of ``size`` characters (the last one may be shorter)."""
        if self.length <= INLINE_LIMIT:
            return split(self.whole(), size)
        return self._window_pieces(size)

    def _window_pieces(self, size: int) -> Iterator[str]:
        # The text is periodic: every piece is a slice of one window holding the unit
        # enough times to cover a piece starting at any offset within the unit.
        unit = len(self.unit)
        window = self.unit * (-(-size // unit) + 1)
        offset, left = 0, self.length
        while left > 0:
            take = size if left > size else left
            yield window[offset : offset + take]
            offset = (offset + take) % unit
            left -= take


@dataclass(frozen=True, slots=True)
class StubConfig:
    """Server-wide defaults for every reply; per-request directives override them.

    ``text``: the reply text (repeated to ``length``). ``length``: total reply characters
    (``None``: ``len(text)``). ``chunk_size``: characters per delta. ``deltas``: number of
    text deltas (wins over ``length``). ``delay``: seconds between streamed events.
    ``scenario``: ``text``, ``tool-use`` or ``thinking``. ``tool_name``: the tool the
    ``tool-use`` scenario calls. ``tool_input``: its input, the text of a JSON object
    (``None``: :data:`TOOL_INPUT`); text, so that the config stays hashable.
    ``echo_conversation``: the reply text is a summary of the conversation received
    (see docs/stub.md); ``text``, ``length`` and ``deltas`` are then ignored.

    Raises:
        StubError: a size, count or delay outside its documented range, an unknown
            scenario, a tool name that is empty or not ``[A-Za-z0-9_-]``, a tool input
            that is not a JSON object, or a text that is too long or not encodable.
    """

    text: str = "Hello from the provcfg stub."
    length: int | None = None
    chunk_size: int = 8
    deltas: int | None = None
    delay: float = 0.0
    scenario: Scenario = "text"
    tool_name: str = _DEFAULT_TOOL
    tool_input: str | None = None
    echo_conversation: bool = False

    def __post_init__(self) -> None:
        # Directives build a config per request: the checks that pass cost no call.
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            check_number("chunk_size", self.chunk_size, 1, MAX_CHUNK_SIZE, " characters")
        if self.length is not None and not 0 <= self.length <= MAX_LENGTH:
            check_number("length", self.length, 0, MAX_LENGTH, " characters")
        if self.deltas is not None and not 0 <= self.deltas <= MAX_COUNT:
            check_number("deltas", self.deltas, 0, MAX_COUNT)
        if not 0 <= self.delay <= MAX_DELAY:
            check_number("delay", self.delay, 0, MAX_DELAY, " seconds")
        if len(self.text) > MAX_TEXT:
            raise StubError(f"text is {len(self.text):,} characters; give at most {MAX_TEXT:,}")
        if safe_text(self.text) != self.text:
            raise StubError("text holds characters UTF-8 cannot encode (lone surrogates)")
        if not self.text and (self.length or self.deltas):
            raise StubError("text must not be empty when length or deltas is set")
        if self.scenario not in SCENARIOS:
            known = ", ".join(SCENARIOS)
            raise StubError(f"scenario must be one of {known}, got {self.scenario!r}")
        if not self.tool_name:
            raise StubError("tool_name must not be empty")
        if self.tool_name == _DEFAULT_TOOL:
            pass  # the common case, without the regex
        elif len(self.tool_name) > MAX_TOOL_NAME or not _TOOL_NAME.fullmatch(self.tool_name):
            raise StubError(
                f"tool_name {_short(self.tool_name)!r}: use 1-{MAX_TOOL_NAME} letters, digits, "
                "'_' or '-'"
            )
        if self.tool_input is not None:
            parse_tool_input(self.tool_input, where="tool_input")

    def tool_call_input(self) -> dict[str, Any]:
        """Return the tool-use call's input: ``tool_input`` parsed, or :data:`TOOL_INPUT`."""
        if self.tool_input is None:
            return dict(TOOL_INPUT)
        return parse_tool_input(self.tool_input, where="tool_input")

    def reply(self) -> ReplyText:
        """Return the reply text this configuration produces, without building it."""
        if self.deltas is not None:
            return ReplyText(self.text, self.deltas * self.chunk_size)
        if self.length is not None:
            return ReplyText(self.text, self.length)
        return ReplyText(self.text, len(self.text))

    def reply_text(self) -> str:
        """Return the whole reply text (for short replies: a long one is built in memory)."""
        return self.reply().whole()


def parse_tool_input(text: str, *, where: str) -> dict[str, Any]:
    """Parse a tool input given as JSON text; ``where`` names its source for the error.

    Raises:
        StubError: ``text`` is longer than :data:`MAX_TOOL_INPUT` bytes, not JSON, nested
            too deeply, not a JSON object, or holds text UTF-8 cannot encode.
    """
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_TOOL_INPUT:
        raise StubError(
            f"{where}: the tool input is {size:,} bytes; give at most {MAX_TOOL_INPUT:,}"
        )
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        detail = exc if isinstance(exc, ValueError) else "nested too deeply"
        raise StubError(f"{where}: the tool input is not valid JSON ({detail})") from None
    if not isinstance(value, dict):
        raise StubError(f'{where}: the tool input must be a JSON object, like {{"path": "a.txt"}}')
    rendered = json.dumps(value, ensure_ascii=False)
    if safe_text(rendered) != rendered:
        raise StubError(f"{where}: the tool input holds a lone surrogate (like \\ud800)")
    return value


def split(text: str, size: int) -> Iterator[str]:
    """Yield ``text`` in pieces of ``size`` characters (the last one may be shorter)."""
    for start in range(0, len(text), size):
        yield text[start : start + size]


def check_loopback(host: str) -> str:
    """Return the address to bind for ``host``, refusing anything that is not loopback.

    ``localhost`` maps to ``127.0.0.1`` without a DNS lookup (it could resolve to two
    families and so two different ports for port 0).

    Raises:
        StubError: ``host`` is not ``localhost``, in 127.0.0.0/8, or ``::1``.
    """
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise StubError(
            f"the stub only listens on loopback, refusing to bind {host!r}; "
            "use 127.0.0.1 (or another 127.x.y.z), ::1 or localhost"
        )
    return str(address)
