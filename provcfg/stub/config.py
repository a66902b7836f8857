"""What the stub replies with: the server-wide :class:`StubConfig` and the reply text it implies.

A reply is the configured ``text`` repeated (or cut) to ``length`` characters and sent
``chunk_size`` characters per delta; ``deltas`` fixes the number of deltas instead
(``length = deltas * chunk_size``), which is what throughput benchmarks want.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from provcfg._errors import ProvcfgError

__all__ = [
    "SCENARIOS",
    "TOOL_INPUT",
    "Scenario",
    "StubConfig",
    "StubError",
    "check_loopback",
    "parse_tool_input",
    "split",
]

Scenario = Literal["text", "tool-use", "thinking"]
SCENARIOS: tuple[Scenario, ...] = ("text", "tool-use", "thinking")
# The tool-use scenario's default input (for the default tool, get_weather).
TOOL_INPUT: dict[str, Any] = {"location": "San Francisco, CA", "unit": "celsius"}


class StubError(ProvcfgError, ValueError):
    """The stub cannot start or cannot understand a directive; the message names the fix."""


@dataclass(frozen=True, slots=True)
class StubConfig:
    """Server-wide defaults for every reply; per-request directives override them.

    ``text``: the reply text (repeated to ``length``). ``length``: total reply characters
    (``None``: ``len(text)``). ``chunk_size``: characters per delta. ``deltas``: number of
    text deltas (wins over ``length``). ``delay``: seconds between streamed events.
    ``scenario``: ``text``, ``tool-use`` or ``thinking``. ``tool_name``: the tool the
    ``tool-use`` scenario calls. ``tool_input``: its input, the text of a JSON object
    (``None``: :data:`TOOL_INPUT`); text, so that the config stays hashable.

    Raises:
        StubError: a negative or zero size, a negative delay, an unknown scenario, an
            empty tool name, or a tool input that is not a JSON object.
    """

    text: str = "Hello from the provcfg stub."
    length: int | None = None
    chunk_size: int = 8
    deltas: int | None = None
    delay: float = 0.0
    scenario: Scenario = "text"
    tool_name: str = "get_weather"
    tool_input: str | None = None

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise StubError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.length is not None and self.length < 0:
            raise StubError(f"length must be >= 0, got {self.length}")
        if self.deltas is not None and self.deltas < 0:
            raise StubError(f"deltas must be >= 0, got {self.deltas}")
        if self.delay < 0:
            raise StubError(f"delay must be >= 0 seconds, got {self.delay}")
        if not self.text and (self.length or self.deltas):
            raise StubError("text must not be empty when length or deltas is set")
        if self.scenario not in SCENARIOS:
            known = ", ".join(SCENARIOS)
            raise StubError(f"scenario must be one of {known}, got {self.scenario!r}")
        if not self.tool_name:
            raise StubError("tool_name must not be empty")
        if self.tool_input is not None:
            parse_tool_input(self.tool_input, where="tool_input")

    def tool_call_input(self) -> dict[str, Any]:
        """Return the tool-use call's input: ``tool_input`` parsed, or :data:`TOOL_INPUT`."""
        if self.tool_input is None:
            return dict(TOOL_INPUT)
        return parse_tool_input(self.tool_input, where="tool_input")

    def reply_text(self) -> str:
        """Return the whole reply text this configuration produces."""
        if self.deltas is not None:
            size = self.deltas * self.chunk_size
        elif self.length is not None:
            size = self.length
        else:
            return self.text
        return (self.text * (size // len(self.text) + 1))[:size] if size else ""


def parse_tool_input(text: str, *, where: str) -> dict[str, Any]:
    """Parse a tool input given as JSON text; ``where`` names its source for the error.

    Raises:
        StubError: ``text`` is not JSON, or not a JSON object.
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise StubError(f"{where}: the tool input is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise StubError(f'{where}: the tool input must be a JSON object, like {{"path": "a.txt"}}')
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
