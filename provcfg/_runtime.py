"""Runtime: the live form of one Manifest (one generation of a runtime lineage).

A Runtime holds what :meth:`Runtime.build` made from one validated manifest (the
steps are in :mod:`provcfg._build`): cache regions, HTTP pools, the CLI resolver,
each provider's model table and CLI lookup, and a :class:`~provcfg._handle.ProviderHandle`
per provider. Lookups on it (``provider``, ``translate_model``, ``cli_path``) are a
few dict operations; the expensive work (creating clients, detecting CLIs, importing
the SDK) happens once, late, and is shared.

What is frozen: the manifest and everything built from it; the tables above never
change after ``build`` returns. What is not: the instances behind the handles
(created on first use, recycled by the ``providers`` region's ``max_size`` and
``ttl``; see :mod:`provcfg._store`), the background initializations, and the
closed/released state.

``Runtime.build(manifest, previous)`` takes over every part of ``previous`` whose
digest is unchanged: regions, pools, the provider store, the resolver, provider
handles. Parts are reference counted, so closing the old generation closes only
what it alone used. If building fails, whatever the new build created is closed
and ``previous`` is untouched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

from provcfg._build import (
    Change,
    Lineage,
    ProviderFields,
    build_handles,
    build_pools,
    build_regions,
    build_resolver,
    build_store,
    build_warm,
    compare,
    install_routes,
)
from provcfg._digest import ManifestDigests
from provcfg._errors import (
    ProvcfgError,
    RuntimeClosedError,
    UnknownProviderError,
    UnknownRegionError,
)
from provcfg._kinds import KindRegistry
from provcfg._logs import get_logger
from provcfg._manifest import Manifest
from provcfg._metrics import Metrics
from provcfg._monitoring._lineage import Monitoring
from provcfg._parts import Holdings, SharedPart
from provcfg._pools import SSLContextCache
from provcfg._resilience import Breakers
from provcfg._store import PROVIDERS_REGION, ProviderStore
from provcfg._suggest import closest

if TYPE_CHECKING:
    from dogpile.cache.region import CacheRegion

    from provcfg._clipath import CliLookup, CLIResolver
    from provcfg._handle import ProviderHandle
    from provcfg._modeltable import ModelTable
    from provcfg._monitoring._alerts import AlertEvaluator
    from provcfg._pools import Pool
    from provcfg._providers._warm import WarmPool

__all__ = ["Runtime", "load"]

_monotonic = time.monotonic

log = get_logger(__name__)


class Runtime:
    """The live form of one manifest. Build it with :func:`load` or :meth:`build`."""

    manifest: Manifest
    file: str
    digest: str
    metrics: Metrics
    generation: int
    changes: Mapping[str, Change]
    """Per provider, against the previous generation: unchanged, rebuilt, added, removed."""

    def __init__(
        self,
        manifest: Manifest,
        *,
        file: str,
        digest: str,
        generation: int,
        lineage: Lineage,
        holdings: Holdings,
        regions: Mapping[str, SharedPart[CacheRegion]],
        store: SharedPart[ProviderStore],
        pools: Mapping[str, SharedPart[Pool]],
        resolver: SharedPart[CLIResolver],
        warm: SharedPart[WarmPool],
        handles: Mapping[str, ProviderHandle],
        models: Mapping[str, ModelTable],
        cli: Mapping[str, CliLookup],
        fields: Mapping[str, ProviderFields],
        changes: Mapping[str, Change],
    ) -> None:
        """Internal: use :meth:`build` or :func:`load`."""
        self.manifest = manifest
        self.file = file
        self.digest = digest
        self.generation = generation
        self.metrics = lineage.metrics
        self.changes = MappingProxyType(dict(changes))
        self._lineage = lineage
        self._holdings = holdings
        self._regions = MappingProxyType(dict(regions))
        self._store = store
        self._pools = MappingProxyType(dict(pools))
        self._resolver = resolver
        self._warm = warm
        self._handles = MappingProxyType(dict(handles))
        self._models = MappingProxyType(dict(models))
        self._ids = {name: table.ids for name, table in models.items()}  # translate's hot path
        self._cli = MappingProxyType(dict(cli))
        self._cli_lookups: dict[str, CliLookup] = dict(cli)  # hot path: a plain dict
        self._fields = MappingProxyType(dict(fields))
        # rt.provider(None) is the default provider: one lookup either way.
        lookup: dict[str | None, ProviderHandle] = {name: h for name, h in handles.items()}
        default = manifest.default_provider or (next(iter(handles)) if len(handles) == 1 else None)
        if default is not None and default in handles:
            lookup[None] = handles[default]
        self._lookup = lookup
        # Lifecycle state (the only mutable part of a Runtime).
        self._closed = False
        self._released = False
        self._background: dict[str, concurrent.futures.Future[None]] = {}

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
        ``background`` ones start in a daemon thread; ``lazy`` ones start nothing.

        Returns:
            The new Runtime (``previous`` keeps running until you close it).

        Raises:
            ProvcfgError: a part could not be built (missing cache extra, an eager
                provider whose CLI is missing, ...). Everything this call created is
                closed again; ``previous`` is untouched.
        """
        start = time.perf_counter()
        lineage = _lineage(previous, registry, metrics)
        # What monitoring reads from outside the manifest (a baseline file) fails first.
        baseline = lineage.monitoring.check(manifest.monitoring, file=file)
        holdings = Holdings()
        try:
            rt = cls._assemble(manifest, previous, file, lineage, holdings)
            rt._start_init()
        except BaseException:
            _release_now(holdings)
            raise
        install_routes(rt._handles, rt._fields, rt._models, lineage)
        lineage.monitoring.configure(manifest.monitoring, baseline=baseline, pools=manifest.pools)
        holdings.undo(_release_monitoring(lineage.monitoring))
        lineage.metrics.observe("runtime_build_seconds", time.perf_counter() - start)
        log.info(
            "runtime_built",
            file=file,
            generation=rt.generation,
            providers=len(manifest.providers),
            reused_providers=sum(1 for c in rt.changes.values() if c == "unchanged"),
        )
        return rt

    @classmethod
    def _assemble(
        cls,
        manifest: Manifest,
        previous: Runtime | None,
        file: str,
        lineage: Lineage,
        holdings: Holdings,
    ) -> Runtime:
        """The build pipeline: regions, store, pools, resolver, handles, carry-over."""
        digests = ManifestDigests.of(manifest)
        fields = {name: ProviderFields.of(spec) for name, spec in manifest.providers.items()}
        unknown = sorted({f.kind for f in fields.values()} - set(lineage.registry.names()))
        if unknown:
            raise ProvcfgError(
                f"provider kind(s) {', '.join(unknown)} are not registered with this runtime's "
                "kind registry; install the plugin, or build with the registry the manifest "
                "was loaded with"
            )
        metrics = lineage.metrics
        regions = build_regions(manifest, digests, _parts(previous, "_regions"), holdings, metrics)
        store = build_store(manifest, digests, _part(previous, "_store"), holdings, metrics)
        pools = build_pools(
            manifest,
            digests,
            fields=fields,
            previous=_parts(previous, "_pools"),
            holdings=holdings,
            lineage=lineage,
        )
        resolver = build_resolver(_part(previous, "_resolver"), holdings, metrics)
        warm = build_warm(manifest, _part(previous, "_warm"), holdings, metrics, resolver.obj)
        built = build_handles(
            manifest,
            digests,
            fields=fields,
            lineage=lineage,
            store=store.obj,
            pools=pools,
            regions=regions,
            resolver=resolver.obj,
            holdings=holdings,
            warm=warm.obj,
        )
        return cls(
            manifest,
            file=file,
            digest=digests.manifest,
            generation=previous.generation + 1 if previous is not None else 1,
            lineage=lineage,
            holdings=holdings,
            regions=regions,
            store=store,
            pools=pools,
            resolver=resolver,
            warm=warm,
            handles=built.handles,
            models=built.models,
            cli=built.cli,
            fields=fields,
            changes=compare(previous._handles if previous is not None else None, built.handles),
        )

    def _start_init(self) -> None:
        background: list[str] = []
        for name, f in self._fields.items():
            if f.init == "eager":
                with self.metrics.timed("provider_init_seconds", name):
                    self._init_now(name)
            elif f.init == "background":
                background.append(name)
        if background:
            self._background = {name: concurrent.futures.Future() for name in background}
            # A daemon thread: background initialization never delays the interpreter's
            # exit or aclose(); a program that leaves first simply abandons it.
            threading.Thread(target=self._run_background, name="provcfg-init", daemon=True).start()

    def _run_background(self) -> None:
        for name, future in self._background.items():
            if self._closed or not future.set_running_or_notify_cancel():
                continue
            try:
                with self.metrics.timed("provider_init_seconds", name):
                    self._init_now(name)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

    def _init_now(self, name: str) -> None:
        """The heavy, loop-independent set-up of one provider: its own prepare(), and the
        shared SSL context (~15 ms) if it talks HTTP; clients themselves are per loop."""
        self._handles[name].prepare_now()
        if self._fields[name].uses_pool:
            self._lineage.ssl.get()

    # ------------------------------------------------------------------ hot paths

    def provider(self, name: str | None = None) -> ProviderHandle:
        """The provider ``name`` (default: the manifest's ``default_provider``).

        The same object comes back while its spec is unchanged, also across reloads;
        it stays usable until a reload removes or changes the provider or the runtime
        closes. Its instance is created here on first use (lazy providers).

        Raises:
            UnknownProviderError: no provider of that name is declared.
            RuntimeClosedError: the runtime was closed.
            Exception: whatever the provider kind's factory raised creating the instance.
        """
        # The hot path, inlined (a method call costs as much as the rest): the handle's
        # instance is there and unexpired. A closed runtime's lookup table is empty, so
        # the open check costs nothing here: the slow path raises RuntimeClosedError.
        # (A subscript is cheaper than .get(); the slow path runs outside the except
        # block so that its errors carry no KeyError context.)
        try:
            handle = self._lookup[name]
        except KeyError:
            handle = None
        if (
            handle is not None
            and handle._instance is not None
            and (handle._expires is None or _monotonic() < handle._expires)
        ):
            return handle
        if handle is None:
            return self._provider_slow(name)
        handle.instance()
        return handle

    def _provider_slow(self, name: str | None) -> ProviderHandle:
        if self._closed:
            raise RuntimeClosedError("this Runtime was closed; load a new one")
        if name is None:
            raise UnknownProviderError("<default>", list(self._handles), None) from None
        raise self._unknown_provider(name)

    def translate_model(self, provider: str, alias: str) -> str:
        """The provider-specific model id for ``alias``.

        Per-provider ``models:`` beat the global table. An unknown name passes through
        when it looks like a complete id (and ``unknown_models`` is ``passthrough``).

        Raises:
            UnknownProviderError: ``provider`` is not declared.
            UnknownModelError: the alias is unknown and may not pass through.
        """
        try:
            return self._ids[provider][alias]
        except KeyError:
            table = self._models.get(provider)
            if table is None:
                raise self._unknown_provider(provider) from None
            return table.translate(alias)

    def _unknown_provider(self, name: str) -> UnknownProviderError:
        return UnknownProviderError(name, list(self._handles), closest(name, self._handles))

    def cli_path(self, provider: str) -> Path:
        """The CLI executable of a CLI-kind provider (cached; re-checked cheaply on use).

        Raises:
            CLINotFoundError: the CLI is not installed where the spec says to look.
            UnknownProviderError: ``provider`` is not declared.
            ProvcfgError: ``provider`` is not a CLI kind.
        """
        lookup = self._cli_lookups.get(provider)
        if lookup is not None:
            return lookup.resolve()
        if provider not in self._handles:
            raise self._unknown_provider(provider)
        kind = self._fields[provider].kind
        raise ProvcfgError(f"provider {provider!r} (kind {kind}) does not run a CLI")

    def region(self, name: str) -> CacheRegion:
        """The dogpile cache region ``name`` declared under ``cache:``.

        Use it for your own entries (``region.get_or_create(key, creator)``). Keys are
        namespaced by a digest of the region's spec and of what its ``invalidate_on``
        names, so entries survive reloads that change nothing the region depends on,
        and a changed dependency never serves entries written before it, also in
        other processes sharing the server. The ``providers`` region holds live
        provider objects: read it, do not write it.

        Returns:
            A configured ``dogpile.cache.region.CacheRegion``.

        Raises:
            UnknownRegionError: no region of that name is declared (with a suggestion).
            RuntimeClosedError: the runtime was closed.
        """
        if self._closed:
            raise RuntimeClosedError("this Runtime was closed; load a new one")
        declared = sorted(self.manifest.cache)
        if name not in declared:
            raise UnknownRegionError(name, declared, closest(name, declared))
        if name == PROVIDERS_REGION:
            return self._store.obj.region
        return self._regions[name].obj

    # ------------------------------------------------------------------ lifecycle

    async def warmup(self, timeout: float = 120.0) -> dict[str, BaseException | None]:
        """Wait for every pending (background) initialization, and fill the warm spares.

        Every provider with ``warm:`` (lazy ones too) is initialized and its spares are
        started; this returns once they are ready, or after ``timeout`` seconds.

        Returns:
            provider name -> None when it initialized (and its spares are ready), or the
            exception it failed with (``TimeoutError`` when its spares were not ready in
            time). Eager providers were initialized by ``build`` and appear as None.
        """
        report: dict[str, BaseException | None] = {
            name: None for name, f in self._fields.items() if f.init == "eager"
        }
        for name, future in self._background.items():
            try:
                await asyncio.wrap_future(future)
            except Exception as exc:
                report[name] = exc
                log.warning("provider_init_failed", provider=name, error=str(exc))
            else:
                report[name] = None
        for name in self._warm_providers():
            if report.get(name) is not None:
                continue
            report[name] = await self._fill(name, timeout)
        return report

    def _warm_providers(self) -> list[str]:
        return [
            name
            for name, f in self._fields.items()
            if f.cli is not None and f.cli.warm is not None and f.cli.warm.spares > 0
        ]

    async def _fill(self, name: str, timeout: float) -> BaseException | None:
        pool = self._warm.obj
        try:
            await self._handles[name].initialize()
        except Exception as exc:
            log.warning("provider_init_failed", provider=name, error=str(exc))
            return exc
        pool.activate(name)
        if not await asyncio.to_thread(pool.wait_ready, name, timeout):
            return TimeoutError(
                f"provider {name!r}: warm spares not ready within {timeout:g}s (see the "
                "warm_spawn_failed log lines; the machine may be loaded)"
            )
        return None

    @property
    def warm_pool(self) -> WarmPool:
        """The warm agent processes of this runtime's lineage (spares and servers)."""
        return self._warm.obj

    @property
    def cli_resolver(self) -> CLIResolver:
        """The CLI path resolver, shared by every generation of this runtime's lineage."""
        return self._resolver.obj

    @property
    def alerts(self) -> AlertEvaluator:
        """The alert evaluator (``rt.alerts.subscribe(callback)``), shared across reloads."""
        return self._lineage.monitoring.alerts

    @property
    def breakers(self) -> Breakers:
        """The circuit breakers (``rt.breakers.subscribe(callback)``, ``.states()``),
        shared across reloads."""
        return self._lineage.breakers

    @property
    def monitoring(self) -> Monitoring:
        """Alerts, their delivery and traces of this runtime's lineage."""
        return self._lineage.monitoring

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has run."""
        return self._closed

    async def aclose(self) -> None:
        """Close every client, provider and cache connection this runtime alone uses.

        Parts shared with a newer generation stay open until that one closes too.
        Providers only this runtime used are closed once their in-flight streams
        finish. A background initialization still running is abandoned, never
        waited for. Idempotent, and cancel-safe: the runtime refuses work from the
        first call on, and a call cancelled while it waits for in-flight streams can
        be repeated to finish the release (every step is done at most once).
        """
        if self._released:
            return
        if not self._closed:
            self._closed = True
            self._lookup = {}  # rt.provider's hot path now always misses, then refuses
            for future in self._background.values():
                future.cancel()
        await self._holdings.release()
        if self._store.refs > 0:
            await self._store.obj.drain()
        self._released = True

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


def _lineage(
    previous: Runtime | None, registry: KindRegistry | None, metrics: Metrics | None
) -> Lineage:
    if previous is not None:
        old = previous._lineage
        if metrics is None or metrics is old.metrics:
            return Lineage(
                registry or old.registry, old.metrics, old.ssl, old.monitoring, old.breakers
            )
        return Lineage(
            registry or old.registry, metrics, old.ssl, Monitoring(metrics), Breakers(metrics)
        )
    metrics = metrics or Metrics()
    return Lineage(
        registry or KindRegistry.discover(),
        metrics,
        SSLContextCache(),
        Monitoring(metrics),
        Breakers(metrics),
    )


def _release_monitoring(monitoring: Monitoring) -> Callable[[], Awaitable[None]]:
    def release() -> Awaitable[None]:
        # Stopping the evaluator joins its thread: not on the event loop.
        return asyncio.to_thread(monitoring.release)

    return release


def _parts(previous: Runtime | None, table: str) -> Mapping[str, SharedPart[Any]]:
    if previous is None:
        return {}
    parts: Mapping[str, SharedPart[Any]] = getattr(previous, table)
    return parts


def _part(previous: Runtime | None, name: str) -> Any:
    return getattr(previous, name) if previous is not None else None


def _release_now(holdings: Holdings) -> None:
    """Synchronous release after a failed build (a loop may be running).

    Inside a running loop (build called from async code) the release runs in a
    helper thread's own loop. That is safe because of what a failed build can
    hold: its new pools were never handed out (no client of any loop exists), its
    new instances were at most prepared (no loop-bound object), and parts shared
    with ``previous`` only lose a reference.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(holdings.release())
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as ex:
        ex.submit(asyncio.run, holdings.release()).result()


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
