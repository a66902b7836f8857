"""Runtime.build, step by step: regions, store, pools, CLI resolver, handles, carry-over.

Each step is a function whose inputs and outputs are in its signature. A step takes
the previous generation's parts (a mapping of :class:`~provcfg._parts.SharedPart` by
name) and the new generation's :class:`~provcfg._parts.Holdings`: a part whose
digest is unchanged is taken over (one more reference), anything else is built new.
If a later step fails, ``Runtime.build`` releases the holdings, which closes exactly
what this build created and returns the references it took.

What decides reuse is a digest (:mod:`provcfg._digest`) of everything the part is
made of. A provider's digest covers its spec, its pool's spec, its model table and,
for CLI kinds, the ``cli_paths`` region's spec: the instance holds all of them.
A region's digest covers its own spec and what it declares in ``invalidate_on``;
its keys are namespaced by that digest, so a reload keeps the entries of every
region whose inputs did not change, and two processes with different manifests
share a redis region's entries exactly when the region's inputs are the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from provcfg._cache import build_region, close_region
from provcfg._clipath import CliLookup, CLIResolver
from provcfg._digest import ManifestDigests, combine_digests, spec_digest
from provcfg._kinds import KindRegistry, ProviderKind
from provcfg._manifest import (
    DEFAULT_FALLBACK_ON,
    AnthropicApiSpec,
    BreakerSpec,
    CliProviderSpec,
    InitPolicy,
    Manifest,
    MemoryRegionSpec,
    PoolSpec,
)
from provcfg._metrics import Metrics
from provcfg._modeltable import ModelTable
from provcfg._monitoring._lineage import Monitoring
from provcfg._parts import Holdings, SharedPart
from provcfg._pools import Pool, SSLContextCache
from provcfg._providers._warm import WarmPool
from provcfg._providers.base import Provider, ProviderContext
from provcfg._resilience import Breakers, CircuitBreaker, Route, RouteTarget, expand
from provcfg._store import PROVIDERS_REGION, ProviderStore

if TYPE_CHECKING:
    from dogpile.cache.region import CacheRegion

    from provcfg._handle import ProviderHandle

__all__ = [
    "CLI_PATHS_REGION",
    "DEFAULT_POOL",
    "Lineage",
    "ProviderFields",
    "build_handles",
    "build_pools",
    "build_regions",
    "build_resolver",
    "build_store",
    "build_warm",
    "compare",
    "install_routes",
]

CLI_PATHS_REGION = "cli_paths"
DEFAULT_POOL = "_default"


@dataclass(frozen=True, slots=True)
class Lineage:
    """What every generation of one runtime shares: the kinds, the metrics, one SSL context,
    the monitoring (alert evaluator, Alertmanager sender, traces) fed by those metrics,
    and the circuit breakers' board (transitions, subscribers)."""

    registry: KindRegistry
    metrics: Metrics
    ssl: SSLContextCache
    monitoring: Monitoring
    breakers: Breakers


@dataclass(frozen=True, slots=True)
class ProviderFields:
    """The fields of a provider spec the runtime reads, whatever its kind.

    A plugin's spec model need only declare ``kind`` (docs/manifest.md); the other
    fields then take the built-in kinds' defaults. This is the one place specs are
    read loosely; everything after works on these typed values.
    """

    kind: str
    model: str | None
    models: Mapping[str, str]
    passthrough: bool
    init: InitPolicy
    uses_pool: bool
    pool: str
    cli: CliProviderSpec | None
    fallbacks: tuple[str, ...] = ()
    fallback_on: frozenset[str] = frozenset(DEFAULT_FALLBACK_ON)
    breaker: BreakerSpec | None = None

    @classmethod
    def of(cls, spec: BaseModel) -> ProviderFields:
        """Read ``spec`` (a built-in or plugin spec model)."""
        model = getattr(spec, "model", None)
        models = getattr(spec, "models", None)
        init: InitPolicy = "lazy"
        if getattr(spec, "init", "lazy") in ("eager", "background"):
            init = spec.init  # type: ignore[attr-defined]
        pool = getattr(spec, "pool", None)
        fallbacks = getattr(spec, "fallbacks", ())
        fallback_on = getattr(spec, "fallback_on", DEFAULT_FALLBACK_ON)
        breaker = getattr(spec, "breaker", None)
        return cls(
            kind=str(getattr(spec, "kind", "")),
            model=model if isinstance(model, str) else None,
            models=dict(models) if isinstance(models, Mapping) else {},
            passthrough=getattr(spec, "unknown_models", "passthrough") == "passthrough",
            init=init,
            uses_pool=isinstance(spec, AnthropicApiSpec) or hasattr(spec, "pool"),
            pool=pool if isinstance(pool, str) and pool else DEFAULT_POOL,
            cli=spec if isinstance(spec, CliProviderSpec) else None,
            fallbacks=tuple(f for f in fallbacks if isinstance(f, str))
            if isinstance(fallbacks, tuple | list)
            else (),
            fallback_on=frozenset(fallback_on)
            if isinstance(fallback_on, tuple | list)
            else frozenset(DEFAULT_FALLBACK_ON),
            breaker=breaker if isinstance(breaker, BreakerSpec) else None,
        )


# --------------------------------------------------------------------------- regions


def region_digest(name: str, manifest: Manifest, digests: ManifestDigests) -> str:
    """Digest of what region ``name``'s entries depend on: its spec and its ``invalidate_on``."""
    spec = manifest.cache[name]
    trigger: Any = getattr(spec, "invalidate_on", ())
    if trigger == "any":
        extra: Any = digests.manifest
    else:
        extra = {p: digests.providers.get(p) for p in sorted(trigger)}
    return spec_digest([digests.regions[name], extra])


def build_regions(
    manifest: Manifest,
    digests: ManifestDigests,
    previous: Mapping[str, SharedPart[Any]],
    holdings: Holdings,
    metrics: Metrics,
) -> dict[str, SharedPart[CacheRegion]]:
    """Every declared cache region but ``providers``, taken over when its digest is unchanged."""
    regions: dict[str, SharedPart[CacheRegion]] = {}
    for name, spec in manifest.cache.items():
        if name == PROVIDERS_REGION:
            continue
        digest = region_digest(name, manifest, digests)
        part = holdings.reuse(previous, name, digest)
        if part is None:
            region = build_region(name, spec, namespace=digest[:16], metrics=metrics)
            part = holdings.new(region, digest, close_region)
        regions[name] = part
    return regions


def build_store(
    manifest: Manifest,
    digests: ManifestDigests,
    previous: SharedPart[ProviderStore] | None,
    holdings: Holdings,
    metrics: Metrics,
) -> SharedPart[ProviderStore]:
    """The provider store over the ``providers`` region, taken over while its spec is unchanged."""
    spec = manifest.cache.get(PROVIDERS_REGION)
    if not isinstance(spec, MemoryRegionSpec):
        spec = MemoryRegionSpec(backend="memory")
    digest = digests.regions.get(PROVIDERS_REGION) or spec_digest(spec)
    part = holdings.reuse({"": previous} if previous is not None else {}, "", digest)
    if part is None:
        part = holdings.new(ProviderStore(spec, metrics), digest, _close_store)
    return part


async def _close_store(store: ProviderStore) -> None:
    await store.aclose()


# --------------------------------------------------------------------------- pools


def build_pools(
    manifest: Manifest,
    digests: ManifestDigests,
    *,
    fields: Mapping[str, ProviderFields],
    previous: Mapping[str, SharedPart[Any]],
    holdings: Holdings,
    lineage: Lineage,
) -> dict[str, SharedPart[Pool]]:
    """One pool per ``pools:`` entry (plus ``_default`` for HTTP providers naming none)."""
    specs: dict[str, PoolSpec] = dict(manifest.pools)
    if any(f.uses_pool and f.pool == DEFAULT_POOL for f in fields.values()):
        specs.setdefault(DEFAULT_POOL, PoolSpec())
    pools: dict[str, SharedPart[Pool]] = {}
    for name, spec in specs.items():
        digest = digests.pools.get(name) or spec_digest(spec)
        part = holdings.reuse(previous, name, digest)
        if part is None:
            pool = Pool(name, spec, ssl=lineage.ssl, metrics=lineage.metrics)
            lineage.metrics.gauge(f"pool.{name}", pool.stats)
            part = holdings.new(pool, digest, _close_pool)
        pools[name] = part
    return pools


async def _close_pool(pool: Pool) -> None:
    await pool.aclose()
    pool.metrics.remove_gauge(f"pool.{pool.name}", pool.stats)


def build_resolver(
    previous: SharedPart[CLIResolver] | None, holdings: Holdings, metrics: Metrics
) -> SharedPart[CLIResolver]:
    """The CLI resolver: one per lineage (it holds a descriptor per CLI found)."""
    part = holdings.reuse({"": previous} if previous is not None else {}, "", "resolver")
    if part is None:
        part = holdings.new(CLIResolver(metrics, watch=True), "resolver", _close_resolver)
    return part


async def _close_resolver(resolver: CLIResolver) -> None:
    resolver.close()
    # Its watcher thread ends within one step (50 ms); waited for off the loop.
    await asyncio.to_thread(resolver.join_watcher)


def build_warm(
    manifest: Manifest,
    previous: SharedPart[WarmPool] | None,
    holdings: Holdings,
    metrics: Metrics,
    resolver: CLIResolver,
) -> SharedPart[WarmPool]:
    """The warm-process pool: one per lineage, its cap set from this manifest's ``warm:``.

    The pool is told when the resolver sees a CLI binary change on disk, and retires
    the spares of the old binary.
    """
    part = holdings.reuse({"": previous} if previous is not None else {}, "", "warm")
    if part is None:
        pool = WarmPool(metrics, manifest.warm.max_processes)
        resolver.on_change(pool.retire_binary)
        part = holdings.new(pool, "warm", _close_warm)
    else:
        part.obj.configure(manifest.warm.max_processes)
    return part


async def _close_warm(pool: WarmPool) -> None:
    # Stopping processes waits out their grace periods: not on the event loop.
    await asyncio.to_thread(pool.close)


# --------------------------------------------------------------------------- handles


@dataclass(frozen=True, slots=True)
class Handles:
    """What the handles step gives the runtime: per provider, its handle and its data."""

    handles: dict[str, ProviderHandle]
    models: dict[str, ModelTable]
    cli: dict[str, CliLookup]


def model_table(name: str, fields: ProviderFields, manifest: Manifest) -> ModelTable:
    """Provider ``name``'s aliases: the global ``models:`` for its kind, then its own."""
    aliases = {
        alias: per_kind[fields.kind]
        for alias, per_kind in manifest.models.items()
        if fields.kind in per_kind
    }
    aliases.update(fields.models)
    return ModelTable.of(name, aliases, passthrough=fields.passthrough, default=fields.model)


def build_handles(
    manifest: Manifest,
    digests: ManifestDigests,
    *,
    fields: Mapping[str, ProviderFields],
    lineage: Lineage,
    store: ProviderStore,
    pools: Mapping[str, SharedPart[Pool]],
    regions: Mapping[str, SharedPart[CacheRegion]],
    resolver: CLIResolver,
    holdings: Holdings,
    warm: WarmPool | None = None,
) -> Handles:
    """A handle per provider (the store's live one when its digest is unchanged)."""
    cli_part = regions.get(CLI_PATHS_REGION)
    shared = cli_part.obj if cli_part is not None else None
    out = Handles({}, {}, {})
    for name, spec in manifest.providers.items():
        f = fields[name]
        kind = lineage.registry[f.kind]
        table = out.models[name] = model_table(name, f, manifest)
        pool = pools[f.pool] if f.uses_pool else None
        cli = None
        if f.cli is not None and f.cli.command:
            cli = out.cli[name] = CliLookup(
                resolver,
                f.cli.command,
                f.cli.path,
                tuple(f.cli.search_paths),
                kind.install_hint,
                name,
                shared,
            )
        # The instance captures its pool, model table and CLI lookup: part of its identity.
        digest = combine_digests(
            f.kind,
            digests.providers[name],
            pool.digest if pool is not None else None,
            digests.table(table.ids),
            cli_part.digest if cli is not None and cli_part is not None else None,
        )
        ctx = ProviderContext(
            name=name,
            spec=spec,
            models=table,
            metrics=lineage.metrics,
            pool=pool.obj if pool is not None else None,
            cli=cli,
            warm=warm if f.cli is not None else None,
        )
        key = f"{name}:{digest}"
        out.handles[name] = store.register(name, f.kind, key, _factory(kind, ctx))
        # Released newest first: unregister, then retire (waits for streams; resumable).
        holdings.undo(_retire(store, key))
        holdings.undo(_unregister(store, key))
    return out


def _factory(kind: ProviderKind, ctx: ProviderContext) -> Any:
    def create() -> Provider:
        return kind.load_factory()(ctx)

    return create


def _unregister(store: ProviderStore, key: str) -> Callable[[], None]:
    def unregister() -> None:
        store.unregister(key)

    return unregister


def _retire(store: ProviderStore, key: str) -> Callable[[], Awaitable[None]]:
    def retire() -> Awaitable[None]:
        return store.retire(key)

    return retire


def install_routes(
    handles: Mapping[str, ProviderHandle],
    fields: Mapping[str, ProviderFields],
    models: Mapping[str, ModelTable],
    lineage: Lineage,
) -> None:
    """Give each handle its breaker and its route (fallbacks, breakers), the newest wins.

    Runs once a build has succeeded: a handle shared with the previous generation then
    routes to this generation's fallbacks. A handle keeps its breaker (and the breaker
    its state) for as long as its spec is unchanged.
    """
    for name, handle in handles.items():
        spec = fields[name].breaker
        if spec is None:
            handle.breaker = None
        elif handle.breaker is None or handle.breaker.spec != spec:
            handle.breaker = CircuitBreaker(name, spec, lineage.breakers)
    graph = {name: f.fallbacks for name, f in fields.items()}
    for name, handle in handles.items():
        order = expand(name, graph) if graph[name] else [name]
        if len(order) == 1 and handle.breaker is None:
            handle.route = None
            continue
        targets = tuple(RouteTarget(handles[n], fields[n].kind, models[n]) for n in order)
        handle.route = Route(targets, fields[name].fallback_on, lineage.metrics)
    lineage.breakers.install(
        {name: h.breaker for name, h in handles.items() if h.breaker is not None}
    )


Change = Literal["unchanged", "rebuilt", "added", "removed"]


def compare(
    previous: Mapping[str, ProviderHandle] | None, handles: Mapping[str, ProviderHandle]
) -> dict[str, Change]:
    """Per provider, against the previous generation: unchanged, rebuilt, added, removed."""
    if previous is None:
        return {}
    changes: dict[str, Change] = {}
    for name, handle in handles.items():
        old = previous.get(name)
        changes[name] = "added" if old is None else "unchanged" if old is handle else "rebuilt"
    for name in previous:
        if name not in handles:
            changes[name] = "removed"
    return changes
