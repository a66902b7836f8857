"""Runtime hot paths: provider lookup, model translation, CLI path, load, provider construction.

Each beside its floor in the same run: a dict lookup, CLI detection, an eager load,
the SDK constructing its own client.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from provcfg.bench._case import (
    Budget,
    Case,
    CaseContext,
    Contender,
    Sample,
    statement_contender,
)
from provcfg.bench.cases._fixtures import path_prepended, scratch, shell_cli, write


def _mixed_manifest(init: str, cli: Path) -> str:
    lines = [
        "version: 1",
        "default_provider: api0",
        "models:",
        "  fast: {anthropic-api: claude-haiku-4-5, claude-code: claude-haiku-4-5}",
        "pools:",
        "  shared: {max_connections: 10}",
        "providers:",
    ]
    lines.extend(
        f"  api{i}: {{kind: anthropic-api, base_url: 'http://127.0.0.1:9', api_key: k, "
        f"pool: shared, model: fast, transport: sdk, init: {init}}}"
        for i in range(5)
    )
    lines.extend(
        f"  cli{i}: {{kind: claude-code, command: {cli.name}, "
        f"search_paths: ['{cli.parent}'], model: fast, init: {init}}}"
        for i in range(5)
    )
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def _loaded(ctx: CaseContext) -> AsyncIterator[tuple[Any, Path]]:
    import provcfg

    with scratch() as folder:
        (folder / "bin").mkdir()
        cli = shell_cli(folder / "bin", "bench-claude", [])
        rt = provcfg.load(write(folder, "providers.yaml", _mixed_manifest("lazy", cli)))
        try:
            rt.provider("api0")
            rt.cli_path("cli0")
            yield rt, folder
        finally:
            await rt.aclose()


@asynccontextmanager
async def _provider_lookup(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    async with _loaded(ctx) as (rt, _):
        table = {"api0": object()}
        yield [
            statement_contender("dict", "reference", "table['api0']", {"table": table}, ctx),
            statement_contender("rt.provider", "subject", "rt.provider('api0')", {"rt": rt}, ctx),
        ]


@asynccontextmanager
async def _translate(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    async with _loaded(ctx) as (rt, _):
        table = {"fast": "claude-haiku-4-5"}
        yield [
            statement_contender("dict", "reference", "table['fast']", {"table": table}, ctx),
            statement_contender(
                "rt.translate_model",
                "subject",
                "rt.translate_model('api0', 'fast')",
                {"rt": rt},
                ctx,
            ),
        ]


@asynccontextmanager
async def _cli_path(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import provcfg

    with scratch() as folder:
        # The CLI at the end of a 12-folder PATH: detection walks all of it.
        folders = [folder / f"bin{i}" for i in range(12)]
        for f in folders:
            f.mkdir()
        cli = shell_cli(folders[-1], "bench-claude", [])
        text = f"version: 1\nproviders:\n  cli0: {{kind: claude-code, command: {cli.name}}}\n"
        with path_prepended(folders):
            rt = provcfg.load(write(folder, "providers.yaml", text))
            fd = os.open(cli, getattr(os, "O_PATH", os.O_RDONLY))
            try:
                rt.cli_path("cli0")
                resolver = rt.cli_resolver
                names = {
                    "rt": rt,
                    "resolver": resolver,
                    "os": os,
                    "fd": fd,
                    "shutil": shutil,
                    "cli": str(cli),
                    "name": cli.name,
                }
                yield [
                    statement_contender(
                        "detection",
                        "other",
                        "resolver.invalidate()\nrt.cli_path('cli0')",
                        names,
                        ctx,
                        label="rt.cli_path after invalidate(): a 12-folder PATH scan",
                    ),
                    statement_contender(
                        "rt.cli_path",
                        "subject",
                        "rt.cli_path('cli0')",
                        names,
                        ctx,
                        label="rt.cli_path, cached (fstat-checked: detection re-arms the watcher)",
                    ),
                    statement_contender(
                        "fstat",
                        "reference",
                        "os.fstat(fd)",
                        names,
                        ctx,
                        label="os.fstat of an open descriptor: the floor of the per-hit check",
                    ),
                    statement_contender("stat", "floor", "os.stat(cli)", names, ctx),
                    statement_contender("shutil.which", "other", "shutil.which(name)", names, ctx),
                ]
            finally:
                os.close(fd)
                await rt.aclose()


@asynccontextmanager
async def _load(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import anthropic  # noqa: F401 - paid once, outside every timing

    import provcfg

    clock = ctx.clock
    with scratch() as folder:
        (folder / "bin").mkdir()
        cli = shell_cli(folder / "bin", "bench-claude", [])
        lazy = write(folder, "lazy.yaml", _mixed_manifest("lazy", cli))
        eager = write(folder, "eager.yaml", _mixed_manifest("eager", cli))

        def loader(path: Path, role: str) -> Any:
            spin = ctx.slowed(role)  # type: ignore[arg-type]

            async def run(loops: int) -> Sample:
                elapsed = 0.0
                for _ in range(loops):
                    start = clock()
                    rt = provcfg.load(path)
                    if spin is not None:
                        spin()
                    elapsed += clock() - start
                    await rt.aclose()
                return Sample(elapsed / loops)

            return run

        yield [
            Contender(
                "eager",
                "reference",
                loader(eager, "reference"),
                "load() of 10 providers, init: eager",
            ),
            Contender(
                "lazy",
                "subject",
                loader(lazy, "subject"),
                "load() of the same 10 providers, init: lazy",
            ),
        ]


def _ten_on_one_pool(extra: int = 0) -> str:
    lines = ["version: 1", "pools:", "  shared: {max_connections: 10}", "providers:"]
    lines.extend(
        f"  api{i}: {{kind: anthropic-api, base_url: 'http://127.0.0.1:9', api_key: k, "
        "pool: shared, transport: sdk, max_retries: 0}"
        for i in range(10 + extra)
    )
    return "\n".join(lines) + "\n"


@asynccontextmanager
async def _construction(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import anthropic

    import provcfg

    clock = ctx.clock
    with scratch() as folder:
        warm_path = write(folder, "one.yaml", _ten_on_one_pool(extra=1))

        async def construct(rt: Any, names: Sequence[str]) -> None:
            for name in names:
                provider = rt.provider(name)
                # The instance behind the runtime's handle (when there is one), then
                # its SDK client on the pool's client.
                instance = getattr(provider, "instance", None)
                target = instance() if callable(instance) else provider
                await target._sdk_client()

        def shared(role: str) -> Any:
            spin = ctx.slowed(role)  # type: ignore[arg-type]

            async def run(loops: int) -> Sample:
                elapsed = 0.0
                for _ in range(loops):
                    rt = provcfg.load(warm_path)
                    await construct(rt, ["api10"])  # the pool's client and SSL context exist
                    start = clock()
                    await construct(rt, [f"api{i}" for i in range(10)])
                    if spin is not None:
                        spin()
                    elapsed += clock() - start
                    await rt.aclose()
                return Sample(elapsed / loops / 10, op_seconds=elapsed / loops)

            return run

        async def cold(loops: int) -> Sample:
            elapsed = 0.0
            for _ in range(loops):
                start = clock()
                rt = provcfg.load(warm_path)
                await construct(rt, [f"api{i}" for i in range(10)])
                elapsed += clock() - start
                await rt.aclose()
            return Sample(elapsed / loops / 10, op_seconds=elapsed / loops)

        async def own(loops: int) -> Sample:
            elapsed = 0.0
            for _ in range(loops):
                start = clock()
                clients = [
                    anthropic.AsyncAnthropic(
                        api_key="k", base_url="http://127.0.0.1:9", max_retries=0
                    )
                    for _ in range(2)
                ]
                elapsed += clock() - start
                await asyncio.gather(*(c.close() for c in clients))
            return Sample(elapsed / loops / 2, op_seconds=elapsed / loops)

        yield [
            Contender(
                "own-client",
                "reference",
                own,
                "AsyncAnthropic() x2, each with its own HTTP client and SSL context",
            ),
            Contender(
                "shared-pool",
                "subject",
                shared("subject"),
                "10 providers + SDK clients on one pool whose client exists",
            ),
            Contender(
                "shared-pool-cold",
                "other",
                cold,
                "load() + 10 providers on one new pool (builds its one SSL context)",
            ),
        ]


@asynccontextmanager
async def _pool_client(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    from provcfg._manifest import PoolSpec
    from provcfg._metrics import Metrics
    from provcfg._pools import Pool, SSLContextCache

    pool = Pool("shared", PoolSpec(), ssl=SSLContextCache(), metrics=Metrics())
    try:
        pool.client()
        loop = asyncio.get_running_loop()
        names = {"pool": pool, "table": {loop: object()}, "asyncio": asyncio}
        yield [
            statement_contender(
                "dict.get(loop)", "reference", "table.get(asyncio.get_running_loop())", names, ctx
            ),
            statement_contender("Pool.client", "subject", "pool.client()", names, ctx),
        ]
    finally:
        await pool.aclose()


_MICRO = {"quick": (8, 40), "full": (30, 200)}
_MICRO_SAMPLE = 0.001
_MICRO_REPEATS = 5

CASES = [
    Case(
        name="lookup.provider",
        title="cached rt.provider(name) vs a dict lookup",
        build=_provider_lookup,
        clock="cpu",
        rounds=_MICRO,
        sample_seconds=_MICRO_SAMPLE,
        repeats=_MICRO_REPEATS,
        budgets=(Budget("rt.provider", "<= 2 us", max_seconds=2e-6),),
    ),
    Case(
        name="lookup.translate-model",
        title="rt.translate_model vs a dict lookup",
        build=_translate,
        clock="cpu",
        rounds=_MICRO,
        sample_seconds=_MICRO_SAMPLE,
        repeats=_MICRO_REPEATS,
        budgets=(Budget("rt.translate_model", "<= 1 us", max_seconds=1e-6),),
    ),
    Case(
        name="clipath.cached",
        title="cached rt.cli_path vs one fstat (and detection on a 12-folder PATH)",
        build=_cli_path,
        clock="cpu",
        rounds=_MICRO,
        sample_seconds=_MICRO_SAMPLE,
        repeats=_MICRO_REPEATS,
        budgets=(
            Budget("rt.cli_path", "<= 2 us", max_seconds=2e-6),
            Budget(
                "rt.cli_path", ">= 10x faster than detection", max_ratio=0.1, versus="detection"
            ),
        ),
    ),
    Case(
        name="manifest.load",
        title="load() of 10 providers: lazy vs eager",
        build=_load,
        threshold=0.40,  # at 10 %: 15/15 of +15 %; drift +8.6 % (quick order), +21 % alone
        gc_off=True,
        clock="cpu",
        sample_seconds=0.01,
        repeats=2,
        rounds={"quick": (6, 30), "full": (20, 100)},
        budgets=(
            Budget("lazy", "<= 5 ms", max_seconds=5e-3),
            Budget("lazy", ">= 50 % faster than eager", max_ratio=0.5),
        ),
    ),
    Case(
        name="pool.construction",
        title="provider construction on a shared pool vs the SDK's own client each",
        build=_construction,
        threshold=0.40,  # at 10 %: 7/15 of +15 %; drift up to +16.8 % between sessions
        gc_off=True,
        clock="cpu",
        sample_seconds=0.01,
        repeats=1,
        rounds={"quick": (6, 30), "full": (20, 100)},
        budgets=(
            Budget("shared-pool", "<= 500 us per provider (5 ms for 10)", max_seconds=500e-6),
        ),
        note="seconds are per provider (10 constructed per operation)",
    ),
    Case(
        name="pool.client",
        title="Pool.client() hot path vs dict.get(get_running_loop())",
        build=_pool_client,
        clock="cpu",
        rounds=_MICRO,
        sample_seconds=_MICRO_SAMPLE,
        repeats=_MICRO_REPEATS,
        suites=("full",),
    ),
]
