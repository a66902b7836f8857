"""``provcfg doctor [FILE]``: what is wrong between a manifest and this machine, and the fix.

One :class:`Check` per fact, each with a verdict (``ok``, ``warn``, ``fail``), a message
and, unless it is ok, the fix:

- the manifest: valid, or its problems;
- a CLI provider: the executable (where, from which search path), ``--version``
  (runnable, and whether it is the version provcfg is tested with), and the variables
  that authenticate it in the provider's environment (names only);
- an anthropic-api provider: a key is set; its ``base_url`` resolves and a TCP (and,
  for https, TLS) connection opens within the pool's connect timeout. Nothing is sent
  over it: no request, nothing billable;
- cache regions: redis answers ``PING``, memcached ``version``, a file region's folder
  is writable, the ``providers`` region holds every provider;
- pools: ``max_keepalive_connections`` within ``max_connections``.

Every check runs concurrently with the others and is bounded by ``--timeout`` (a CLI that
hangs on ``--version`` is killed with its process group and reaped), so the whole run
takes about the longest single check. No secret appears in either output: messages
never format a value, and every text is scrubbed of the manifest's secret values, the
passwords in its URLs, and environment values whose names say they are secret. The
JSON shape (``--format json``) is documented in docs/cli.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections.abc import Awaitable

from provcfg._doctorproviders import api_key_check, cli_checks, connect_check, pool_of
from provcfg._doctorreport import (
    Check,
    Part,
    Report,
    invalid_report,
    scrubbed,
    secrets_of,
    write_text,
)
from provcfg._doctorshared import (
    file_check,
    memcached_check,
    pool_check,
    redis_check,
    size_check,
)
from provcfg._errors import ManifestError, ManifestReadError
from provcfg._manifest import (
    AnthropicApiSpec,
    CliProviderSpec,
    FileRegionSpec,
    Manifest,
    MemcachedRegionSpec,
    RedisRegionSpec,
)

__all__ = ["diagnose", "run"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_REAP_ALLOWANCE = 1.5  # a timed-out CLI probe may take this long to kill and reap


async def _bounded(work: Awaitable[list[Check]], timeout: float, late: Check) -> list[Check]:
    """``work``'s checks, or ``late`` if it outlives ``timeout`` (a last guard: each check
    bounds itself well before)."""
    try:
        async with asyncio.timeout(timeout):
            return await work
    except TimeoutError:
        return [late]


async def _listed(check: Awaitable[Check]) -> list[Check]:
    return [await check]


async def _ready(*checks: Check | None) -> list[Check]:
    return [check for check in checks if check is not None]


def _plan(manifest: Manifest, timeout: float) -> list[Awaitable[list[Check]]]:
    """One awaitable per part, in manifest order; each returns its checks."""
    guard = timeout + _REAP_ALLOWANCE

    def bounded(
        work: Awaitable[list[Check]], part: Part, name: str, check: str
    ) -> Awaitable[list[Check]]:
        late = Check(part, name, check, "fail", f"no answer within {guard:g} s", "rerun doctor")
        return _bounded(work, guard, late)

    plan: list[Awaitable[list[Check]]] = []
    for name, spec in manifest.providers.items():
        if isinstance(spec, CliProviderSpec):
            plan.append(bounded(cli_checks(name, spec, timeout), "provider", name, "cli"))
        elif isinstance(spec, AnthropicApiSpec):
            plan.append(_ready(api_key_check(name, spec)))
            connect = connect_check(name, spec, pool_of(manifest, spec), timeout)
            plan.append(bounded(_listed(connect), "provider", name, "connect"))
        else:
            kind = getattr(spec, "kind", "?")
            message = f"kind {kind!r} comes from a plugin; doctor has no checks for it"
            plan.append(_ready(Check("provider", name, "kind", "ok", message)))
    for name, region in manifest.cache.items():
        if isinstance(region, RedisRegionSpec):
            work = _listed(redis_check(name, region, timeout))
            plan.append(bounded(work, "cache", name, "reachable"))
        elif isinstance(region, MemcachedRegionSpec):
            work = _listed(memcached_check(name, region, timeout))
            plan.append(bounded(work, "cache", name, "reachable"))
        elif isinstance(region, FileRegionSpec):
            plan.append(_ready(file_check(name, region)))
    plan.append(_ready(size_check(manifest)))
    plan.extend(_ready(pool_check(name, pool)) for name, pool in manifest.pools.items())
    return plan


async def _gather(manifest: Manifest, timeout: float) -> list[Check]:
    results = await asyncio.gather(*_plan(manifest, timeout))
    return [check for checks in results for check in checks]


def _plural(count: int, what: str) -> str:
    return f"{count} {what}{'' if count == 1 else 's'}"


def diagnose(manifest: Manifest, file: str, *, timeout: float = 1.5) -> Report:
    """Check ``manifest`` (read from ``file``) against this machine.

    Every check runs concurrently and is bounded by ``timeout`` seconds. Never raises
    for what it finds: each finding is a :class:`Check` in the returned :class:`Report`.
    """
    counts = ", ".join(
        _plural(len(items), what)
        for items, what in (
            (manifest.providers, "provider"),
            (manifest.cache, "cache region"),
            (manifest.pools, "pool"),
        )
    )
    valid = Check("manifest", None, "valid", "ok", counts)
    checks = asyncio.run(_gather(manifest, timeout))
    secrets = secrets_of(manifest)
    return Report(file, tuple(scrubbed(c, secrets) for c in (valid, *checks)))


def run(args: argparse.Namespace) -> int:
    """``provcfg doctor``: print the report; exit 0 when nothing failed, 1 otherwise."""
    from provcfg._errors import ProvcfgError
    from provcfg._loading import load_manifest

    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ProvcfgError("--timeout takes a positive number of seconds")
    out = sys.stdout
    try:
        manifest = load_manifest(args.file)
    except ManifestError as exc:
        report = invalid_report(args.file, exc)
        code = EXIT_USAGE if isinstance(exc, ManifestReadError) else EXIT_FAILED
    else:
        report = diagnose(manifest, args.file, timeout=args.timeout)
        code = EXIT_OK if report.ok else EXIT_FAILED
    if args.format == "json":
        out.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
        out.flush()
    else:
        write_text(report, out)
    return code
