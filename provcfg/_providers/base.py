"""The provider contract: chunks, results, the Provider protocol and the kind registry.

Every provider kind (built-in or plugin) implements :class:`Provider`; the Runtime
creates instances through a :class:`ProviderKind` found in :class:`KindRegistry`.
Built-in kinds name their implementation as ``"module:attribute"`` strings so that
``provcfg validate`` imports none of the heavy dependencies (anthropic, httpx2).
Plugins register a ``ProviderKind`` under the entry-point group ``provcfg._providers``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import importlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

if TYPE_CHECKING:
    import httpx2

    from provcfg._metrics import Metrics

__all__ = [
    "BUILTIN_KINDS",
    "ENTRY_POINT_GROUP",
    "BaseProvider",
    "Chunk",
    "ChunkType",
    "KindRegistry",
    "Provider",
    "ProviderContext",
    "ProviderKind",
    "Result",
    "Timings",
    "Usage",
]

from provcfg._entrypoints import GROUP as ENTRY_POINT_GROUP

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


@runtime_checkable
class Provider(Protocol):
    """What every provider kind offers."""

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

    async def initialize(self) -> None:
        """Do the heavy, one-time set-up (CLI detection, SDK client); idempotent."""
        ...

    async def aclose(self) -> None:
        """Release what the provider holds; idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class ProviderContext:
    """What the Runtime hands a provider factory.

    Attributes:
        name: the provider's name in the manifest.
        spec: its validated spec model.
        resolve_model: alias or id (or None for the spec default) -> provider model id.
        cli_path: resolves the provider's CLI (cached); raises CLINotFoundError.
        http_client: the pooled ``httpx2.AsyncClient`` of this provider's pool for the
            running event loop (created on first use per loop).
        metrics: the runtime's timing hook.
    """

    name: str
    spec: BaseModel
    resolve_model: Callable[[str | None], str | None]
    cli_path: Callable[[], Path]
    http_client: Callable[[], httpx2.AsyncClient]
    metrics: Metrics


ProviderFactory = Callable[[ProviderContext], Provider]


@dataclass(frozen=True)
class ProviderKind:
    """A provider kind: its spec model and how to build an instance.

    ``factory`` is either a callable or a ``"module:attribute"`` string imported on
    first use, so that validating a manifest never imports a kind's implementation.
    ``install_hint`` tells users how to get the CLI (shown by CLINotFoundError).
    """

    name: str
    spec_model: type[BaseModel]
    factory: ProviderFactory | str
    install_hint: str = ""

    def load_factory(self) -> ProviderFactory:
        """Return the factory, importing it if it was given as a string."""
        if isinstance(self.factory, str):
            module, _, attr = self.factory.partition(":")
            factory: ProviderFactory = getattr(importlib.import_module(module), attr)
            return factory
        return self.factory


def _builtin_kinds() -> dict[str, ProviderKind]:
    from provcfg import _manifest as m

    return {
        "claude-code": ProviderKind(
            "claude-code",
            m.ClaudeCodeSpec,
            "provcfg._providers.claude_code:ClaudeCodeProvider",
            "Install it with: npm install -g @anthropic-ai/claude-code",
        ),
        "opencode": ProviderKind(
            "opencode",
            m.OpenCodeSpec,
            "provcfg._providers.opencode:OpenCodeProvider",
            "Install it with: npm install -g opencode-ai",
        ),
        "codex": ProviderKind(
            "codex",
            m.CodexSpec,
            "provcfg._providers.codex:CodexProvider",
            "Install it with: npm install -g @openai/codex",
        ),
        "anthropic-api": ProviderKind(
            "anthropic-api",
            m.AnthropicApiSpec,
            "provcfg._providers.anthropic_api:AnthropicApiProvider",
        ),
    }


BUILTIN_KINDS: tuple[str, ...] = ("claude-code", "opencode", "codex", "anthropic-api")


class KindRegistry:
    """Built-in kinds plus those registered through the ``provcfg._providers`` entry points."""

    def __init__(self, kinds: Mapping[str, ProviderKind]) -> None:
        self._kinds = dict(kinds)

    @classmethod
    def builtin(cls) -> KindRegistry:
        """Only the built-in kinds (no entry points are read)."""
        return cls(_builtin_kinds())

    def with_kind(self, kind: ProviderKind) -> KindRegistry:
        """A copy with ``kind`` added or replacing the kind of the same name."""
        return KindRegistry({**self._kinds, kind.name: kind})

    @classmethod
    def discover(cls) -> KindRegistry:
        """Built-in kinds plus every installed plugin kind.

        Raises:
            ProvcfgError: a plugin entry point fails to load or is not a ProviderKind.
        """
        from provcfg._entrypoints import provider_entry_points
        from provcfg._errors import ProvcfgError

        kinds = _builtin_kinds()
        for ep in provider_entry_points():
            try:
                kind = ep.load()
            except Exception as exc:
                raise ProvcfgError(
                    f"provider plugin {ep.name!r} ({ep.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            if not isinstance(kind, ProviderKind):
                raise ProvcfgError(
                    f"provider plugin {ep.name!r} ({ep.value}) is not a provcfg ProviderKind"
                )
            if kind.name in kinds:
                raise ProvcfgError(f"provider plugin {ep.name!r} redefines kind {kind.name!r}")
            kinds[kind.name] = kind
        return cls(kinds)

    def __getitem__(self, name: str) -> ProviderKind:
        return self._kinds[name]

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def names(self) -> tuple[str, ...]:
        """Kind names, built-ins first."""
        return tuple(self._kinds)

    def kinds(self) -> tuple[ProviderKind, ...]:
        """Every registered kind."""
        return tuple(self._kinds.values())


class BaseProvider:
    """Shared behaviour: ``complete()`` built on ``stream()``; subclasses implement ``stream``.

    ``stream()`` must end with exactly one ``result`` chunk whose ``data`` holds
    ``usage`` (a :class:`Usage`), and optionally ``cost_usd``, ``stop_reason``,
    ``session_id``, ``model`` and ``timings`` (a :class:`Timings`).
    """

    kind: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap a subclass's ``stream`` once, so every kind gets the same guarantees.

        The wrapper (one async-generator layer, ~50 ns per chunk) refuses a closed
        provider, runs lazy initialization on first use, counts in-flight streams
        (a reload closes a provider only once they finish) and always closes the
        inner generator, so breaking out of ``async for`` or cancelling the task
        reaches the transport (connection released, process group killed).
        """
        super().__init_subclass__(**kwargs)
        impl = cls.__dict__.get("stream")
        if cls.__dict__.get("tracks_streams", False):
            return
        if impl is not None and not getattr(impl, "_provcfg_wrapped", False):
            cls.stream = _tracked(impl)  # type: ignore[method-assign]

    tracks_streams: ClassVar[bool] = False
    """Set True in a kind whose stream generators call :meth:`_enter_stream` first and
    :meth:`_exit_stream` in their ``finally``: it then gets no wrapper layer, saving one
    async-generator hop per chunk on the hottest paths. Plugins can leave it False."""

    async def _enter_stream(self) -> None:
        """Start of a stream: refuse a closed provider, initialize lazily, count it.

        Raises:
            RuntimeClosedError: the provider was closed.
        """
        if self._closed:
            from provcfg._errors import RuntimeClosedError

            raise RuntimeClosedError(
                f"provider {self.name!r} was closed (removed or changed by a reload, or its "
                "runtime closed); get it again with rt.provider()"
            )
        if not self._prepared:
            await self.initialize()
        self._inflight += 1

    def _exit_stream(self) -> None:
        """End of a stream that :meth:`_enter_stream` counted (call it in ``finally``)."""
        self._inflight -= 1

    def __init__(self, ctx: ProviderContext) -> None:
        self.ctx = ctx
        self.name = ctx.name
        self.spec = ctx.spec
        self._closed = False
        self._inflight = 0
        self._prepared = False
        self._prepare_lock = threading.Lock()
        self._prepare_future: concurrent.futures.Future[None] | None = None

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
        """Yield chunks as they arrive (subclasses implement this)."""
        raise NotImplementedError

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
        """Run ``stream()`` to the end and fold the chunks into a :class:`Result`."""
        start = time.perf_counter()
        parts: list[str] = []
        tool_uses: list[Mapping[str, Any]] = []
        final: Mapping[str, Any] = {}
        first: float | None = None
        async for chunk in self.stream(
            prompt,
            model=model,
            system=system,
            max_tokens=max_tokens,
            cwd=cwd,
            timeout=timeout,
            **kind_options,
        ):
            if first is None:
                first = time.perf_counter() - start
            if chunk.type == "text":
                parts.append(chunk.text)
            elif chunk.type == "tool_use" and chunk.data is not None:
                tool_uses.append(chunk.data)
            elif chunk.type == "result" and chunk.data is not None:
                final = chunk.data
        timings = final.get("timings")
        if not isinstance(timings, Timings):
            timings = Timings(first_chunk=first, total=time.perf_counter() - start)
        usage = final.get("usage")
        return Result(
            text="".join(parts),
            usage=usage if isinstance(usage, Usage) else Usage(),
            cost_usd=final.get("cost_usd"),
            stop_reason=final.get("stop_reason"),
            session_id=final.get("session_id"),
            model=final.get("model"),
            timings=timings,
            tool_uses=tuple(tool_uses),
        )

    def prepare(self) -> None:
        """Heavy synchronous one-time set-up; override it (CLI detection, ``import anthropic``).

        The Runtime calls it in ``load()`` for ``init: eager``, in a worker thread for
        ``init: background``, and :meth:`initialize` runs it (in a thread, once) for
        ``init: lazy`` on first use. It must not create event-loop-bound objects (HTTP
        clients): those are made per loop on first use.

        Raises:
            ProvcfgError: for example CLINotFoundError when the CLI is missing.
        """

    async def initialize(self) -> None:
        """Run :meth:`prepare` once, off the event loop; concurrent callers share one run.

        A failed run is not remembered: the next call tries again.
        """
        if not self._prepared:
            await asyncio.to_thread(self.prepare_now)

    def prepare_now(self) -> None:
        """Run :meth:`prepare` synchronously unless it already succeeded.

        Callers arriving while another thread runs it wait for that run and get its
        result or its exception; they do not run it again one after another.
        """
        if self._prepared:
            return
        with self._prepare_lock:
            future = self._prepare_future
            owner = future is None
            if future is None:
                future = self._prepare_future = concurrent.futures.Future()
        if not owner:
            future.result()
            return
        try:
            self.prepare()
        except BaseException as exc:
            with self._prepare_lock:
                self._prepare_future = None
            future.set_exception(exc)
            raise
        self._prepared = True
        future.set_result(None)

    @property
    def inflight(self) -> int:
        """Streams of this provider that have started and not yet finished."""
        return self._inflight

    async def wait_idle(self, poll: float = 0.01) -> None:
        """Return once no stream of this provider is running (any thread or loop)."""
        # Streams may run on other loops or threads, so no single asyncio.Event fits.
        while self._inflight:  # noqa: ASYNC110
            await asyncio.sleep(poll)

    async def aclose(self) -> None:
        """Mark closed; subclasses release their resources and call this."""
        self._closed = True


def _tracked(impl: Callable[..., AsyncIterator[Chunk]]) -> Callable[..., AsyncIterator[Chunk]]:
    @functools.wraps(impl)
    async def stream(self: BaseProvider, prompt: str, **kwargs: Any) -> AsyncIterator[Chunk]:
        await self._enter_stream()
        inner = impl(self, prompt, **kwargs)
        try:
            async for chunk in inner:
                yield chunk
        finally:
            self._exit_stream()
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()

    stream._provcfg_wrapped = True  # type: ignore[attr-defined]
    return stream
