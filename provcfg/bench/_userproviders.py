"""``provcfg bench --providers NAME...``: the user's own providers, from their manifest.

For each named provider: the first chunk and the whole stream of
``provider.stream(prompt)``, each as a ratio to an in-run *ruler*: a fixed piece of
pure-Python CPU work (sorting and hashing a fixed list) run in the same rounds. The
ruler makes figures from different days and machines comparable (a machine twice as
busy slows both), so ``--save`` history and ``--compare`` tell a plugin author
whether the provider got slower, not whether the machine did. Absolute first chunk,
total and chunks/s are printed beside them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from provcfg.bench._case import Case, CaseContext, Contender, Sample

__all__ = ["ruler", "user_cases"]

_RULER_DATA = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]


def ruler() -> None:
    """A fixed amount of pure-Python CPU work (~1 ms on the project machine)."""
    digest = hashlib.sha256()
    for item in sorted(_RULER_DATA, key=lambda s: s[::-1]):
        digest.update(item.encode())


def _case(manifest: Path, name: str, prompt: str, model: str | None, stub: bool) -> Case:
    @asynccontextmanager
    async def build(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
        import contextlib

        import provcfg

        async with provcfg.load(manifest) as rt:
            provider = rt.provider(name)
            serve: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
            if stub:
                from provcfg._run import _embedded_stub, _stub_url

                serve = _embedded_stub(_stub_url(rt.manifest, name))
            spin = ctx.slowed("subject")
            with serve:

                async def stream(loops: int) -> Sample:
                    first = total = 0.0
                    chunks = 0
                    for _ in range(loops):
                        start = time.perf_counter()
                        seen = None
                        async for chunk in provider.stream(prompt, model=model):
                            if seen is None:
                                if spin is not None:
                                    spin()
                                seen = time.perf_counter() - start
                            chunks += chunk.type == "text"
                        total += time.perf_counter() - start
                        first += seen or 0.0
                    return Sample(
                        first / loops,
                        {"total": total / loops, "chunks": chunks / loops},
                        total / loops,
                    )

                async def measure_ruler(loops: int) -> Sample:
                    start = time.perf_counter()
                    for _ in range(loops):
                        ruler()
                    return Sample((time.perf_counter() - start) / loops)

                yield [
                    Contender(
                        "ruler",
                        "reference",
                        measure_ruler,
                        "fixed pure-Python CPU work (machine-speed yardstick)",
                    ),
                    Contender(
                        name,
                        "subject",
                        stream,
                        f"{name}.stream(prompt): first chunk (total in the extras)",
                    ),
                ]

    return Case(
        name=f"user.{name}",
        title=f"your provider {name!r}: first chunk, as a ratio to a fixed CPU ruler",
        build=build,
        sample_seconds=0.0,
        rounds={"quick": (8, 30), "full": (20, 100)},
        seconds={"quick": 10.0, "full": 60.0},
        threshold=0.25,
        note="absolute first chunk and total are in the JSON samples; the ratio is for trends",
    )


def user_cases(
    manifest: Path, names: Sequence[str], prompt: str, model: str | None, stub: bool
) -> list[Case]:
    """One case per provider name (checked against the manifest first).

    Raises:
        ManifestError: the manifest is invalid.
        ProvcfgError: a name is not a provider of the manifest.
    """
    from provcfg._errors import ProvcfgError
    from provcfg._loading import load_manifest

    declared = load_manifest(manifest).providers
    for name in names:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise ProvcfgError(
                f"--providers {name!r}: no such provider in {manifest} (providers: {known})"
            )
    return [_case(manifest, n, prompt, model, stub) for n in names]
