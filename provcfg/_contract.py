"""The provider contract: what a provider kind and the runtime hand each other.

Chunks and results (what a provider yields), the :class:`ProviderContext` (what the
runtime gives a provider: plain data, never the Runtime), the two small protocols a
context refers to (:class:`ClientPool`, :class:`CliSource`) and the :class:`Provider`
protocol (everything the runtime calls on a provider). It sits low in the layers,
beside the manifest, so the kind registry can name these types; the implementations
live in :mod:`provcfg._providers`. Provider authors import all of it from
:mod:`provcfg.plugin`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from provcfg._errors import ProvcfgError, ProviderError
from provcfg._modeltable import ModelTable

if TYPE_CHECKING:
    import httpx2

    from provcfg._metrics import Metrics

__all__ = [
    "CONTENT_TYPES",
    "Chunk",
    "ChunkType",
    "CliSource",
    "ClientPool",
    "Provider",
    "ProviderContext",
    "Result",
    "Session",
    "Timings",
    "Usage",
]

ChunkType = Literal[
    "text", "thinking", "tool_use", "tool_result", "system", "retry", "error", "result"
]


class Chunk:
    """One piece of agent output, forwarded as it arrives.

    ``type`` is one of :data:`ChunkType`; ``text`` carries text for ``text`` and
    ``thinking`` chunks; ``data`` carries the structured payload of the others
    (tool name and input, tool result, final usage). A plain slotted class, not a
    dataclass: a chunk is created per delta and must stay as cheap as a tuple.
    """

    __slots__ = ("data", "text", "type")

    def __init__(self, type: ChunkType, text: str = "", data: Mapping[str, Any] | None = None):
        self.type = type
        self.text = text
        self.data = data

    def __repr__(self) -> str:
        return f"Chunk(type={self.type!r}, text={self.text!r}, data={self.data!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Chunk):
            return NotImplemented
        return (self.type, self.text, self.data) == (other.type, other.text, other.data)

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, Any]:
        """JSON-serializable form (``provcfg run --json`` writes one per line)."""
        out: dict[str, Any] = {"type": self.type}
        if self.text:
            out["text"] = self.text
        if self.data is not None:
            out["data"] = dict(self.data)
        return out


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request (zero where the provider does not report them)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Timings:
    """Seconds from the start of the request: connected/spawned, first chunk, done."""

    connect: float | None = None
    first_chunk: float | None = None
    total: float | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of ``complete()``: the whole text and the final accounting."""

    text: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    stop_reason: str | None = None
    session_id: str | None = None
    model: str | None = None
    timings: Timings = field(default_factory=Timings)
    tool_uses: tuple[Mapping[str, Any], ...] = ()


class ClientPool(Protocol):
    """Where an HTTP kind gets its client: the manifest pool it names (``pools:``).

    The runtime's pools implement it; :func:`provcfg.testing.make_context` wraps a
    plain client factory in one.
    """

    @property
    def name(self) -> str:
        """The pool's name in the manifest."""
        ...

    def client(self) -> httpx2.AsyncClient:
        """The pooled client of the running event loop (created on first use there)."""
        ...

    def map_error(
        self, exc: BaseException, *, provider: str, base_url_setting: str = "the base_url"
    ) -> ProviderError | None:
        """The ProviderError for an httpx2 failure (None if ``exc`` holds none); counts
        ``pool_exhausted`` and names this pool in the fix."""
        ...


class CliSource(Protocol):
    """Where a CLI kind's executable is: resolved (and cached) by the runtime's CLI resolver."""

    def resolve(self) -> Path:
        """The executable's path.

        Raises:
            CLINotFoundError: it is not installed where the spec says to look.
        """
        ...


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What a provider factory receives: data about one provider, no reference to a Runtime.

    Attributes:
        name: the provider's name in the manifest.
        spec: its validated spec model.
        models: its model table (aliases of this generation, default model, policy).
        metrics: the metrics hook of the runtime lineage.
        pool: the HTTP pool it names (HTTP kinds), else None.
        cli: its CLI lookup (CLI kinds), else None.
        warm: the runtime's pool of warm agent processes (the built-in CLI kinds use it
            when their spec has ``warm:``), else None; plugins may ignore it.
    """

    name: str
    spec: BaseModel
    models: ModelTable
    metrics: Metrics
    pool: ClientPool | None = None
    cli: CliSource | None = None
    warm: object | None = None

    @property
    def kind(self) -> str:
        """The provider's kind (its spec's ``kind``)."""
        kind = getattr(self.spec, "kind", "")
        return kind if isinstance(kind, str) else ""

    def resolve_model(self, alias: str | None) -> str | None:
        """Alias or id (None: the spec's default model) -> the provider's model id, or None.

        Raises:
            UnknownModelError: the name is unknown and may not pass through.
        """
        return self.models.resolve(alias)

    def cli_path(self) -> Path:
        """The provider's CLI executable (cached by the runtime; re-checked cheaply).

        Raises:
            CLINotFoundError: the CLI is not installed where the spec says to look.
            ProvcfgError: this provider has no CLI.
        """
        if self.cli is None:
            raise ProvcfgError(f"provider {self.name!r} ({self.kind}) does not run a CLI")
        return self.cli.resolve()

    def http_client(self) -> httpx2.AsyncClient:
        """The pooled ``httpx2.AsyncClient`` for the running event loop.

        Raises:
            ProvcfgError: this provider has no pool, or no loop is running.
            RuntimeClosedError: the pool was closed.
        """
        if self.pool is None:
            raise ProvcfgError(f"provider {self.name!r} ({self.kind}) has no HTTP pool")
        return self.pool.client()


@runtime_checkable
class Session(Protocol):
    """One conversation with one live agent: ``async with provider.session(...) as s``.

    Each :meth:`send` streams one turn through the same agent (Claude Code's process,
    an opencode session, a codex thread; the anthropic-api kind keeps the message
    history), so a turn sees the turns before it. Sessions are never shared: leaving
    the ``async with`` block ends the agent process (or the server-side session).
    """

    @property
    def session_id(self) -> str | None:
        """The agent's own id of this conversation (known after the first turn)."""
        ...

    def send(self, prompt: str, *, timeout: float | None = None) -> AsyncIterator[Chunk]:
        """Stream one turn's chunks; the last one has type ``result`` (usage, cost of
        this turn).

        Raises:
            ProviderError: the turn failed (the session stays usable where the agent
                allows), or ``cli_failed`` when the agent process has ended (the
                session is over).
        """
        ...

    async def aclose(self) -> None:
        """End the conversation and whatever runs it; idempotent."""
        ...

    async def __aenter__(self) -> Session: ...

    async def __aexit__(self, *exc: object) -> None: ...


CONTENT_TYPES: Final = frozenset({"text", "thinking", "tool_use"})
"""Chunk types that count as content for the first-chunk time (a ``system`` line does not)."""


@runtime_checkable
class Provider(Protocol):
    """What every provider kind offers; the runtime calls nothing else.

    :class:`BaseProvider` implements everything but ``stream``.
    """

    name: str
    kind: str

    def stream(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        cwd: str | Path | None = None,
        timeout: float | None = None,
        **kind_options: Any,
    ) -> AsyncIterator[Chunk]:
        """Yield chunks as they arrive; the last one has type ``result``.

        Raises:
            ProviderError: with a ``kind`` saying what failed.
        """
        ...

    async def complete(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        cwd: str | Path | None = None,
        timeout: float | None = None,
        **kind_options: Any,
    ) -> Result:
        """Run one prompt to the end and return its :class:`Result`."""
        ...

    def session(
        self,
        *,
        cwd: str | Path | None = None,
        model: str | None = None,
        system: str | None = None,
        **kind_options: Any,
    ) -> Session:
        """A conversation with one live agent (an async context manager, see :class:`Session`).

        Raises:
            ProviderError: ``invalid_request`` for a kind without sessions.
        """
        ...

    async def initialize(self) -> None:
        """Do the heavy, one-time set-up off the event loop (lazy init); idempotent."""
        ...

    def prepare_now(self) -> None:
        """Do the heavy, one-time set-up synchronously, in this thread (eager and
        background init); idempotent; concurrent callers share one run."""
        ...

    @property
    def inflight(self) -> int:
        """Streams of this instance that have started and not yet finished."""
        ...

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran: new streams are refused."""
        ...

    async def wait_idle(self) -> None:
        """Return once no stream of this instance is running (any thread or loop)."""
        ...

    async def aclose(self) -> None:
        """Release what the provider holds; idempotent."""
        ...
