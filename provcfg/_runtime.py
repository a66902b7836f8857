"""Runtime: one immutable snapshot materialized from one Manifest.

A Runtime holds the cache regions, the HTTP pools, the CLI resolver, the model
table and the provider handles built from one validated manifest. Lookups on it
(``provider``, ``translate_model``, ``cli_path``) are a few dict operations; the
expensive work (creating clients, detecting CLIs, importing the SDK) happens
once, late, and is shared.

``Runtime.build(manifest, previous)`` reuses every part of ``previous`` whose spec
digest is unchanged: regions, pools and provider instances. Parts shared between
generations are reference counted, so closing the old snapshot closes only what
it alone used. If building fails, whatever the new build created is closed and
``previous`` is untouched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import difflib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog

from provcfg._digest import ManifestDigests, spec_digest
from provcfg._errors import (
    ProvcfgError,
    RuntimeClosedError,
    UnknownModelError,
    UnknownProviderError,
    UnknownRegionError,
)
from provcfg._manifest import Manifest, MemoryRegionSpec, PoolSpec, looks_like_model_id
from provcfg._metrics import Metrics
from provcfg._providers.base import KindRegistry, Provider, ProviderContext, ProviderKind
from provcfg._store import REFS_LOCK, ProviderStore, SharedPart, close_store

if TYPE_CHECKING:
    import httpx2
    from dogpile.cache.region import CacheRegion

    from provcfg._clipath import CLIResolver
    from provcfg._pools import Pool, SSLContextCache

__all__ = ["Runtime", "load"]

log = structlog.get_logger(__name__)

PROVIDERS_REGION = "providers"
CLI_PATHS_REGION = "cli_paths"
DEFAULT_POOL = "_default"


class Runtime:
    """The live form of one manifest. Build it with :func:`load` or :meth:`build`."""

    manifest: Manifest
    file: str
    digest: str
    metrics: Metrics

    def __init__(self, manifest: Manifest, *, file: str, metrics: Metrics) -> None:
        """Internal: use :meth:`build` or :func:`load`."""
        self.manifest = manifest
        self.file = file
        self._digests = ManifestDigests.of(manifest)
        self.digest = self._digests.manifest
        self.metrics = metrics
        self.generation = 1
        self._closed = False
        self._registry: KindRegistry | None = None
        self._live: dict[str | None, Provider] = {}
        self._expires: dict[str | None, float] = {}
        self._ttl: float | None = None
        self._models: dict[str, dict[str, str]] = {}
        self._known_ids: dict[str, frozenset[str]] = {}
        self._cli_args: dict[
            str, tuple[str, str | None, tuple[str, ...], str, CacheRegion | None]
        ] = {}
        self._handles: dict[str, _Handle] = {}
        self._regions: dict[str, SharedPart] = {}
        self._pools: dict[str, SharedPart] = {}
        self._store: SharedPart | None = None
        self._ssl: SSLContextCache | None = None
        self._resolver: CLIResolver | None = None
        self._resolver_part: SharedPart | None = None
        self._background: dict[str, concurrent.futures.Future[None]] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._owned: list[SharedPart] = []
        self._orphans: list[str] | None = None
        self._released = False
        self.changes: dict[str, str] = {}
        """Per provider, against the previous generation: unchanged, rebuilt, added, removed."""

    # ------------------------------------------------------------------ build

    @classmethod
    def build(
        cls,
        manifest: Manifest,
        previous: Runtime | None = None,
        *,
        file: str = "<manifest>",
        registry: KindRegistry | None = None,
        metrics: Metrics | None = None,
    ) -> Runtime:
        """Materialize ``manifest``, reusing unchanged parts of ``previous``.

        Providers with ``init: eager`` are prepared before this returns;
        ``background`` ones start in a worker thread; ``lazy`` ones start nothing.

        Returns:
            The new Runtime (``previous`` keeps running until you close it).

        Raises:
            ProvcfgError: a part could not be built (missing cache extra, an eager
                provider whose CLI is missing, ...). Everything this call created is
                closed again; ``previous`` is untouched.
        """
        start = time.perf_counter()
        metrics = metrics or (previous.metrics if previous is not None else Metrics())
        rt = cls(manifest, file=file, metrics=metrics)
        if previous is not None:
            rt.generation = previous.generation + 1
        rt._registry = registry or (previous._registry if previous is not None else None)
        try:
            rt._build_parts(previous)
            rt._start_init()
        except BaseException:
            rt._release_all()
            raise
        metrics.observe("runtime_build_seconds", time.perf_counter() - start)
        log.info(
            "runtime_built",
            file=file,
            generation=rt.generation,
            providers=len(manifest.providers),
            reused_providers=sum(1 for h in rt._handles.values() if h.reused),
        )
        return rt

    def _kinds(self) -> KindRegistry:
        if self._registry is None:
            self._registry = KindRegistry.discover()
        return self._registry

    def _adopt(self, table: Mapping[str, SharedPart], name: str, digest: str) -> SharedPart | None:
        part = table.get(name)
        if part is None or part.digest != digest:
            return None
        with REFS_LOCK:
            if part.refs <= 0:
                return None
            part.refs += 1
        self._owned.append(part)
        return part

    def _own(self, obj: Any, digest: str, closer: Callable[[Any], Any]) -> SharedPart:
        part = SharedPart(obj, digest, closer)
        self._owned.append(part)
        return part

    def _build_parts(self, previous: Runtime | None) -> None:
        from provcfg._cache import build_region, close_region
        from provcfg._clipath import CLIResolver
        from provcfg._pools import Pool, SSLContextCache

        m = self.manifest
        prev_regions = previous._regions if previous is not None else {}
        prev_pools = previous._pools if previous is not None else {}

        # Cache regions: remote entries are namespaced by the generation digest so a
        # changed config never serves stale entries; the providers region keys its
        # entries by spec digest instead, so it survives reloads.
        for name, rspec in m.cache.items():
            if name == PROVIDERS_REGION:
                continue
            digest = spec_digest([self._digests.regions[name], self.digest])
            part = self._adopt(prev_regions, name, digest)
            if part is None:
                region = build_region(name, rspec, namespace=self.digest[:16], metrics=self.metrics)
                part = self._own(region, digest, close_region)
            self._regions[name] = part

        pspec = m.cache.get(PROVIDERS_REGION) or MemoryRegionSpec(backend="memory")
        store_digest = self._digests.regions.get(PROVIDERS_REGION) or spec_digest(pspec)
        prev_store = previous._store if previous is not None else None
        store_part = self._adopt({"s": prev_store} if prev_store else {}, "s", store_digest)
        if store_part is None:
            holder: list[ProviderStore] = []

            def discarded(key: str, value: Any) -> None:
                if holder:
                    holder[0].discarded(key, value)

            region = build_region(
                PROVIDERS_REGION,
                pspec,
                namespace="instances",
                metrics=self.metrics,
                on_discard=discarded,
            )
            store = ProviderStore(region=region, ttl=pspec.ttl)
            holder.append(store)
            store_part = self._own(store, store_digest, close_store)
        self._store = store_part
        self._regions[PROVIDERS_REGION] = store_part
        store = store_part.obj
        with store.lock:
            store.runtimes.append(self)
        self._ttl = store.ttl

        # Pools: one SSL context for the whole lineage of runtimes.
        ssl = previous._ssl if previous is not None and previous._ssl else SSLContextCache()
        self._ssl = ssl
        # The resolver holds a descriptor per found CLI; it lives as long as the lineage.
        resolver_part = self._adopt(
            {"r": previous._resolver_part} if previous and previous._resolver_part else {},
            "r",
            "resolver",
        )
        if resolver_part is None:
            resolver_part = self._own(CLIResolver(self.metrics), "resolver", _close_resolver)
        self._resolver_part = resolver_part
        self._resolver = resolver_part.obj
        pool_specs: dict[str, PoolSpec] = dict(m.pools)
        if any(getattr(s, "pool", "") is None for s in m.providers.values()):
            pool_specs.setdefault(DEFAULT_POOL, PoolSpec())
        pool_digests = dict(self._digests.pools)
        for name, pool_spec in pool_specs.items():
            digest = pool_digests.get(name) or spec_digest(pool_spec)
            pool_digests[name] = digest
            part = self._adopt(prev_pools, name, digest)
            if part is None:
                pool = Pool(name, pool_spec, ssl=ssl, metrics=self.metrics)
                part = self._own(pool, digest, _close_pool)
                self.metrics.gauge(f"pool.{name}", pool.stats)
            self._pools[name] = part

        # The resolver outlives generations; this generation's cli_paths region (the
        # second level that carries detections across processes) goes with each call.
        cli_part = self._regions.get(CLI_PATHS_REGION)
        cli_shared: CacheRegion | None = cli_part.obj if cli_part is not None else None

        # Model tables, then provider handles (no instance yet: that is lazy).
        kinds = self._kinds()
        for name, spec in m.providers.items():
            kind = kinds[spec.kind]
            table = {
                alias: per_kind[spec.kind]
                for alias, per_kind in m.models.items()
                if spec.kind in per_kind
            }
            # A plugin's spec model need only declare `kind` (docs/manifest.md): the common
            # provider fields are read with the built-in kinds' defaults.
            table.update(getattr(spec, "models", None) or {})
            self._models[name] = table
            self._known_ids[name] = frozenset(table.values())
            # The instance captures its pool and model table, so they are part of its identity.
            pool_name = getattr(spec, "pool", None) or DEFAULT_POOL
            digest = spec_digest(
                [
                    spec.kind,
                    self._digests.providers[name],
                    pool_digests.get(pool_name) if hasattr(spec, "pool") else None,
                    table,
                ]
            )
            prev_handle = previous._handles.get(name) if previous is not None else None
            reused = prev_handle is not None and prev_handle.digest == digest
            if previous is not None:
                self.changes[name] = (
                    "added" if prev_handle is None else "unchanged" if reused else "rebuilt"
                )
            self._handles[name] = _Handle(name, spec, kind, digest, reused)
            command = getattr(spec, "command", None)
            if command:
                self._cli_args[name] = (
                    command,
                    getattr(spec, "path", None),
                    tuple(getattr(spec, "search_paths", ())),
                    kind.install_hint,
                    cli_shared,
                )
            with store.lock:
                store.users[f"{name}:{digest}"] = store.users.get(f"{name}:{digest}", 0) + 1
        # A reused provider keeps its live instance on the fast path.
        if previous is not None:
            for name in previous._handles:
                if name not in self._handles:
                    self.changes[name] = "removed"
            for name, handle in self._handles.items():
                if handle.reused and name in previous._live:
                    self._live[name] = previous._live[name]
                    if name in previous._expires:
                        self._expires[name] = previous._expires[name]

    def _start_init(self) -> None:
        for name, handle in self._handles.items():
            policy = getattr(handle.spec, "init", "lazy")
            if policy == "eager":
                with self.metrics.timed("provider_init_seconds", name):
                    self._init_now(name)
            elif policy == "background":
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        max_workers=2, thread_name_prefix="provcfg-init"
                    )
                self._background[name] = self._executor.submit(self._background_init, name)

    def _background_init(self, name: str) -> None:
        with self.metrics.timed("provider_init_seconds", name):
            self._init_now(name)

    def _init_now(self, name: str) -> None:
        """The heavy, loop-independent set-up of one provider: its own prepare(), and the
        shared SSL context (~15 ms) if it talks HTTP; clients themselves are per loop."""
        _prepare_now(self.provider(name))
        if hasattr(self._handles[name].spec, "pool") and self._ssl is not None:
            self._ssl.get()

    # ------------------------------------------------------------------ hot paths

    def provider(self, name: str | None = None) -> Provider:
        """The provider instance for ``name`` (default: the manifest's ``default_provider``).

        The same object comes back while its spec is unchanged.

        Raises:
            UnknownProviderError: no provider of that name is declared.
            RuntimeClosedError: the runtime was closed.
        """
        provider = self._live.get(name)
        if provider is not None and (
            self._ttl is None or time.monotonic() < self._expires.get(name, 0.0)
        ):
            return provider
        return self._provider_slow(name)

    def _provider_slow(self, requested: str | None) -> Provider:
        if self._closed:
            raise RuntimeClosedError("this Runtime was closed; load a new one")
        name = requested if requested is not None else self.manifest.default_provider
        if name is None:
            if len(self._handles) != 1:
                raise UnknownProviderError("<default>", list(self._handles), None) from None
            name = next(iter(self._handles))
        handle = self._handles.get(name)
        if handle is None:
            raise self._unknown_provider(name)
        assert self._store is not None
        store: ProviderStore = self._store.obj
        key = f"{name}:{handle.digest}"

        def fetch_or_create() -> Provider:
            from dogpile.cache.api import NO_VALUE

            cached = store.region.get(key)
            if cached is not NO_VALUE:
                self.metrics.incr("provider_cache_hit", name)
                return cached  # type: ignore[no-any-return]
            self.metrics.incr("provider_cache_miss", name)
            with self.metrics.timed("provider_create_seconds", name):
                instance = self._create(handle)
            with store.lock:
                if not store.closed and store.users.get(key, 0) > 0:
                    store.region.set(key, instance)
                    return instance
            # aclose() ran while we created it: no runtime uses the key, nobody would close it.
            store.close_soon(instance)
            raise RuntimeClosedError("this Runtime was closed; load a new one")

        provider = store.flights.run(key, fetch_or_create)
        if self._ttl is not None:
            expires = time.monotonic() + self._ttl
            self._expires[requested] = expires
            self._expires[name] = expires
        self._live[requested] = provider
        self._live[name] = provider
        # aclose() sets _closed before clearing _live: whichever order the two threads
        # ran in, a closed runtime keeps nothing on its fast path.
        if self._closed:
            self._live.pop(requested, None)
            self._live.pop(name, None)
            raise RuntimeClosedError("this Runtime was closed; load a new one")
        return provider

    def _create(self, handle: _Handle) -> Provider:
        spec = handle.spec
        name = handle.name
        pool_name = getattr(spec, "pool", None) or DEFAULT_POOL
        pool_part = self._pools.get(pool_name)

        def http_client() -> httpx2.AsyncClient:
            if pool_part is None:
                raise ProvcfgError(f"provider {name!r} has no HTTP pool")
            client: httpx2.AsyncClient = pool_part.obj.client()
            return client

        def resolve_model(alias: str | None) -> str | None:
            chosen = alias if alias is not None else getattr(spec, "model", None)
            return None if chosen is None else self.translate_model(name, chosen)

        ctx = ProviderContext(
            name=name,
            spec=spec,
            resolve_model=resolve_model,
            cli_path=lambda: self.cli_path(name),
            http_client=http_client,
            metrics=self.metrics,
        )
        factory = handle.kind.load_factory()
        return factory(ctx)

    def translate_model(self, provider: str, alias: str) -> str:
        """The provider-specific model id for ``alias``.

        Per-provider ``models:`` beat the global table. An unknown name passes through
        when it looks like a complete id (and ``unknown_models`` is ``passthrough``).

        Raises:
            UnknownProviderError: ``provider`` is not declared.
            UnknownModelError: the alias is unknown and may not pass through.
        """
        try:
            return self._models[provider][alias]
        except KeyError:
            return self._translate_slow(provider, alias)

    def _translate_slow(self, provider: str, alias: str) -> str:
        handle = self._handles.get(provider)
        if handle is None:
            raise self._unknown_provider(provider)
        table = self._models[provider]
        if alias in self._known_ids[provider]:
            return alias
        passthrough = getattr(handle.spec, "unknown_models", "passthrough") == "passthrough"
        if passthrough and looks_like_model_id(alias):
            close = difflib.get_close_matches(alias, list(table), n=1, cutoff=0.85)
            if not close:
                return alias
        raise UnknownModelError(provider, alias, _closest(alias, table), list(table))

    def _unknown_provider(self, name: str) -> UnknownProviderError:
        return UnknownProviderError(name, list(self._handles), _closest(name, self._handles))

    def cli_path(self, provider: str) -> Path:
        """The CLI executable of a CLI-kind provider (cached; re-checked cheaply on use).

        Raises:
            CLINotFoundError: the CLI is not installed where the spec says to look.
            UnknownProviderError: ``provider`` is not declared.
            ProvcfgError: ``provider`` is not a CLI kind.
        """
        try:
            command, path, search_paths, hint, shared = self._cli_args[provider]
        except KeyError:
            return self._cli_path_slow(provider)
        return self._resolver.resolve(  # type: ignore[union-attr]
            command,
            path=path,
            search_paths=search_paths,
            install_hint=hint,
            provider=provider,
            shared=shared,
        )

    def _cli_path_slow(self, provider: str) -> Path:
        handle = self._handles.get(provider)
        if handle is None:
            raise self._unknown_provider(provider)
        raise ProvcfgError(f"provider {provider!r} (kind {handle.spec.kind}) does not run a CLI")

    def region(self, name: str) -> CacheRegion:
        """The dogpile cache region ``name`` declared under ``cache:``.

        Use it for your own entries (``region.get_or_create(key, creator)``); keys
        are namespaced by this configuration's digest, so a changed manifest never
        serves entries written under the old one, also in other processes sharing
        the server. The ``providers`` region holds live provider objects: read it,
        do not write it.

        Returns:
            A configured ``dogpile.cache.region.CacheRegion``.

        Raises:
            UnknownRegionError: no region of that name is declared (with a suggestion).
            RuntimeClosedError: the runtime was closed.
        """
        if self._closed:
            raise RuntimeClosedError("this Runtime was closed; load a new one")
        part = self._regions.get(name)
        if part is None or (name == PROVIDERS_REGION and name not in self.manifest.cache):
            declared = sorted(self.manifest.cache)
            raise UnknownRegionError(name, declared, _closest(name, declared))
        if name == PROVIDERS_REGION:
            store: ProviderStore = part.obj
            return store.region
        region: CacheRegion = part.obj
        return region

    # ------------------------------------------------------------------ lifecycle

    async def warmup(self) -> dict[str, BaseException | None]:
        """Wait for every pending (background) initialization.

        Returns:
            provider name -> None when it initialized, or the exception it failed with.
            Eager providers were initialized by ``build`` and appear as None.
        """
        report: dict[str, BaseException | None] = {}
        for name, handle in self._handles.items():
            if getattr(handle.spec, "init", "lazy") == "eager":
                report[name] = None
        for name, future in self._background.items():
            try:
                await asyncio.wrap_future(future)
            except Exception as exc:
                report[name] = exc
                log.warning("provider_init_failed", provider=name, error=str(exc))
            else:
                report[name] = None
        return report

    @property
    def cli_resolver(self) -> CLIResolver:
        """The CLI path resolver, shared by every generation of this runtime's lineage."""
        assert self._resolver is not None
        return self._resolver

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has run."""
        return self._closed

    async def aclose(self) -> None:
        """Close every client, provider and cache connection this runtime alone uses.

        Parts shared with a newer generation stay open until that one closes too.
        Idempotent, and cancel-safe: the runtime refuses work from the first call on,
        and a call cancelled while it waits for in-flight streams can be repeated to
        finish the release (every step is done at most once).
        """
        if self._released:
            return
        if not self._closed:
            self._closed = True
            self._live.clear()
            for future in self._background.values():
                future.cancel()
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, True)
        await self._release_all_async()
        self._released = True

    def _store_unregister(self) -> list[Any]:
        """Forget this runtime in the provider store; return instances nobody uses now."""
        orphans: list[Any] = []
        if self._store is None:
            return orphans
        store: ProviderStore = self._store.obj
        with store.lock:
            if self in store.runtimes:
                store.runtimes.remove(self)
            for name, handle in self._handles.items():
                key = f"{name}:{handle.digest}"
                left = store.users.get(key, 0) - 1
                if left > 0:
                    store.users[key] = left
                    continue
                store.users.pop(key, None)
                orphans.append(key)
        return orphans

    async def _release_all_async(self) -> None:
        # Progress is kept on self (orphans left, parts left) so a cancelled release
        # resumes where it stopped instead of unregistering or unreferencing twice.
        if self._orphans is None:
            self._orphans = self._store_unregister()
        orphans = self._orphans
        if self._store is not None:
            # Instances no newer generation uses are closed once their streams finish
            # (not after a fixed grace period): a stream started on this snapshot
            # completes on it.
            from dogpile.cache.api import NO_VALUE

            store: ProviderStore = self._store.obj
            while orphans:
                key = orphans[0]
                instance = store.region.get(key, ignore_expiration=True)
                if instance is NO_VALUE:
                    orphans.pop(0)
                    continue
                wait_idle = getattr(instance, "wait_idle", None)
                if wait_idle is not None:
                    await wait_idle()
                with store.lock:
                    # A generation built while we waited may have taken the key up again
                    # (a reload back to this spec): then the instance is still in use.
                    if self._store.refs > 1 and store.users.get(key, 0) == 0:
                        store.region.delete(key)
                orphans.pop(0)
        while self._owned:
            part = self._owned.pop()
            with REFS_LOCK:
                part.refs -= 1
                last = part.refs == 0
            if last:
                result = part.closer(part.obj)
                if asyncio.iscoroutine(result):
                    # Shielded: once started, a part's close finishes even if we are cancelled.
                    await asyncio.shield(result)
        if self._store is not None:
            await self._store.obj.drain()

    def _release_all(self) -> None:
        """Synchronous release after a failed build (a loop may be running).

        Inside a running loop (build called from async code) the release runs in a
        helper thread's own loop. That is safe because of what a failed build can
        own: its new pools were never handed out (no client of any loop exists), its
        new instances were at most prepared (no loop-bound object), and parts shared
        with ``previous`` only lose a reference. Closes the helper's loop schedules
        are awaited there; ``drain`` never awaits another loop's tasks.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self._release_all_async())
            return
        # Inside a running loop (build called from async code): close in a helper thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
            ex.submit(asyncio.run, self._release_all_async()).result()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "live"
        return (
            f"<Runtime {self.file} generation={self.generation} "
            f"providers={len(self._handles)} {state}>"
        )


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` for a did-you-mean, if any is close enough."""
    from provcfg._suggest import closest

    return closest(word, candidates)


@dataclass(frozen=True, slots=True)
class _Handle:
    name: str
    spec: Any
    kind: ProviderKind
    digest: str
    reused: bool


def _prepare_now(provider: Provider) -> None:
    prepare = getattr(provider, "prepare_now", None)
    if prepare is not None:
        prepare()


def _close_resolver(resolver: CLIResolver) -> None:
    resolver.close()


async def _close_pool(pool: Pool) -> None:
    await pool.aclose()
    pool._metrics.remove_gauge(f"pool.{pool.name}", pool.stats)


def load(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    registry: KindRegistry | None = None,
) -> Runtime:
    """Validate the manifest at ``path`` and materialize it.

    Lazy providers start nothing; eager ones are prepared before this returns.

    Returns:
        A live :class:`Runtime`; close it with ``await rt.aclose()`` or ``async with``.

    Raises:
        ManifestError: the file is unreadable or invalid (``.problems`` says where).
        ProvcfgError: a part could not be built.
    """
    from provcfg._loading import load_manifest

    metrics = Metrics()
    start = time.perf_counter()
    registry = registry or KindRegistry.discover()
    manifest = load_manifest(path, environ=environ, registry=registry)
    metrics.observe("manifest_load_seconds", time.perf_counter() - start)
    return Runtime.build(manifest, file=str(path), registry=registry, metrics=metrics)
