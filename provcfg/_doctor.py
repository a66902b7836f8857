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
import concurrent.futures
import contextlib
import ipaddress
import json
import math
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from provcfg._cliprobe import AgentCli, agent_cli, locate, probe_version
from provcfg._errors import ManifestError, ManifestReadError
from provcfg._manifest import (
    AnthropicApiSpec,
    CliProviderSpec,
    FileRegionSpec,
    Manifest,
    MemcachedRegionSpec,
    MemoryRegionSpec,
    PoolSpec,
    RedisRegionSpec,
    mask_url,
)

__all__ = ["FORMAT_VERSION", "Check", "Report", "diagnose", "run"]

FORMAT_VERSION = 1
"""Version of the ``--format json`` shape; raised only by a change that breaks readers."""

Verdict = Literal["ok", "warn", "fail"]
Part = Literal["manifest", "provider", "cache", "pool"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_REAP_ALLOWANCE = 1.5  # a timed-out CLI probe may take this long to kill and reap
_LOOPBACK_NAMES = ("localhost",)
_MASK = "**********"
_MIN_SCRUBBED = 6


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict about one part of the manifest on this machine."""

    part: Part
    name: str | None
    """The provider, region or pool name; None for the manifest itself."""
    check: str
    """What was checked: ``valid``, ``cli``, ``version``, ``auth``, ``key``, ``connect``,
    ``reachable``, ``writable``, ``size``, ``limits``, ``kind``."""
    verdict: Verdict
    message: str
    fix: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """``manifest``, ``provider api``, ``cache responses``, ``pool anthropic``."""
        return self.part if self.name is None else f"{self.part} {self.name}"

    def as_dict(self) -> dict[str, Any]:
        """The check as JSON data (the shape docs/cli.md documents)."""
        return {
            "part": self.part,
            "name": self.name,
            "check": self.check,
            "verdict": self.verdict,
            "message": self.message,
            "fix": self.fix,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Every check of one run, in manifest order."""

    file: str
    checks: tuple[Check, ...]

    def count(self, verdict: Verdict) -> int:
        """How many checks have ``verdict``."""
        return sum(1 for c in self.checks if c.verdict == verdict)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return self.count("fail") == 0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON data (the shape docs/cli.md documents)."""
        return {
            "format": FORMAT_VERSION,
            "file": self.file,
            "ok": self.ok,
            "counts": {v: self.count(v) for v in ("ok", "warn", "fail")},
            "checks": [c.as_dict() for c in self.checks],
        }


# --------------------------------------------------------------------------- providers


async def _cli_checks(name: str, spec: CliProviderSpec, timeout: float) -> list[Check]:
    cli = agent_cli(getattr(spec, "kind", ""))
    location = locate(spec.command, path=spec.path, search_paths=spec.search_paths)
    checks: list[Check] = []
    if location.file is None:
        install = f"install it ({cli.install}), " if cli else f"install {spec.command!r}, "
        checks.append(
            Check(
                "provider",
                name,
                "cli",
                "fail",
                f"{spec.command}: {location.not_found_text(spec.command)}",
                f"{install}or set providers.{name}.path to the executable",
                {"path": None, "source": None},
            )
        )
    else:
        checks.append(
            Check(
                "provider",
                name,
                "cli",
                "ok",
                f"{location.file} (from {location.source})",
                details={"path": location.file, "source": location.source},
            )
        )
        checks.append(await _version_check(name, location.file, cli, timeout))
    if cli is not None:
        checks.append(_auth_check(name, spec, cli))
    return checks


async def _version_check(name: str, file: str, cli: AgentCli | None, timeout: float) -> Check:
    probe = await probe_version(file, timeout=timeout)
    tested = cli.tested_version if cli else None
    details = {"version": probe.version, "tested_version": tested, "status": probe.status}
    by_hand = f"run `{file} --version` by hand to see why"
    reinstall = f"; reinstall it with {cli.install}" if cli else ""
    if probe.status == "timeout":
        return Check(
            "provider",
            name,
            "version",
            "warn",
            f"did not answer --version within {timeout:g} s (stopped)",
            f"{by_hand}; if it is only slow, give doctor more time with --timeout",
            details,
        )
    if probe.status == "unrunnable":
        return Check(
            "provider",
            name,
            "version",
            "fail",
            f"cannot be started: {probe.reason}",
            by_hand + reinstall,
            details,
        )
    if probe.status == "failed":
        shown = f": {probe.output}" if probe.output else ""
        return Check(
            "provider",
            name,
            "version",
            "fail",
            f"--version exited with status {probe.exit_code}{shown}",
            by_hand + reinstall,
            details,
        )
    if probe.version is None:
        return Check(
            "provider",
            name,
            "version",
            "warn",
            f"--version printed no version number ({probe.output or 'nothing'})",
            f"check that {file} is the agent CLI{reinstall}",
            details,
        )
    if tested is None or probe.version == tested:
        note = " (the version provcfg is tested with)" if tested else ""
        return Check("provider", name, "version", "ok", f"{probe.version}{note}", None, details)
    assert cli is not None
    return Check(
        "provider",
        name,
        "version",
        "warn",
        f"{probe.version}; provcfg is tested with {tested} (its output format may differ)",
        f"npm install -g {cli.npm_package}@{tested}",
        details,
    )


def _auth_check(name: str, spec: CliProviderSpec, cli: AgentCli) -> Check:
    declared = {key: value.get_secret_value() for key, value in spec.env.items()}
    present = [n for n in cli.auth_env if declared.get(n)]
    details = {"variables": cli.auth_env, "passed": present}
    if present:
        return Check(
            "provider",
            name,
            "auth",
            "ok",
            f"{', '.join(present)} passed to the CLI (providers.{name}.env)",
            None,
            details,
        )
    usual = cli.auth_env[0]
    empty = [n for n in cli.auth_env if n in declared]
    if empty:
        return Check(
            "provider",
            name,
            "auth",
            "warn",
            f"{', '.join(empty)} declared in providers.{name}.env but empty",
            f"set {empty[0]} in the environment provcfg starts in",
            details,
        )
    in_shell = [n for n in cli.auth_env if os.environ.get(n)]
    message = (
        f"none of {', '.join(cli.auth_env)} in providers.{name}.env: the CLI works only if it "
        f"is logged in by itself (it gets no other variable)"
    )
    if in_shell:
        message += f"; {in_shell[0]} is set here but not passed to it"
    fix = f'add env: {{{usual}: "${{{usual}}}"}} to providers.{name}, or log the CLI in'
    return Check("provider", name, "auth", "warn", message, fix, details)


def _api_key_check(name: str, spec: AnthropicApiSpec) -> Check:
    if spec.api_key is not None and spec.api_key.get_secret_value():
        return Check("provider", name, "key", "ok", "api_key is set")
    return Check(
        "provider",
        name,
        "key",
        "fail",
        "api_key is not set (or empty)",
        f'set providers.{name}.api_key: "${{ANTHROPIC_API_KEY}}" and export the key',
    )


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _resolve(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """getaddrinfo in a daemon thread: a lookup that hangs must not hold the exit."""
    result: concurrent.futures.Future[list[tuple[Any, ...]]] = concurrent.futures.Future()

    def work() -> None:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as exc:
            result.set_exception(exc)
        else:
            result.set_result(found)

    threading.Thread(target=work, name="provcfg-doctor-dns", daemon=True).start()
    async with asyncio.timeout(timeout):
        return await asyncio.wrap_future(result)


async def _connect_check(
    name: str, spec: AnthropicApiSpec, pool: PoolSpec, timeout: float
) -> Check:
    parts = urlsplit(spec.base_url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        port = 443 if tls else 80
    budget = min(pool.timeouts.connect, timeout)
    where = f"{host}:{port}"
    shown = mask_url(spec.base_url)
    details: dict[str, Any] = {
        "base_url": shown,
        "host": host,
        "port": port,
        "tls": tls,
        "timeout_s": budget,
    }
    fix_url = f"check providers.{name}.base_url ({shown}) and this machine's network"
    start = time.perf_counter()

    def check(verdict: Verdict, message: str, fix: str | None = None) -> Check:
        details["seconds"] = round(time.perf_counter() - start, 3)
        return Check("provider", name, "connect", verdict, message, fix, details)

    try:
        addresses = await _resolve(host, port, budget)
    except TimeoutError:
        return check("fail", f"looking up {host} took longer than {budget:g} s", fix_url)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return check("fail", f"cannot resolve {host}: {reason}", fix_url)
    address = addresses[0][4]
    remaining = budget - (time.perf_counter() - start)
    writer = None
    try:
        async with asyncio.timeout(max(remaining, 0.001)):
            _reader, writer = await asyncio.open_connection(address[0], address[1])
            if tls:
                await writer.start_tls(_tls_context(), server_hostname=host)
    except TimeoutError:
        step = "TLS handshake with" if writer is not None else "TCP connection to"
        return check(
            "fail",
            f"no {step} {where} within {budget:g} s (the pool's connect timeout is "
            f"{pool.timeouts.connect:g} s)",
            fix_url,
        )
    except ConnectionRefusedError:
        if _is_loopback(host):
            return check(
                "warn",
                f"nothing listens on {where} now",
                f"start the server there (`provcfg stub --port {port}` for the stub), or let "
                f"`provcfg run --stub -p {name}` serve the stub for one run",
            )
        return check("fail", f"{where} refused the connection", fix_url)
    except OSError as exc:
        import ssl

        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or type(exc).__name__
            return check(
                "fail",
                f"TLS handshake with {where} failed: {reason}",
                "check the server's certificate, or the CA bundle (SSL_CERT_FILE) used here",
            )
        reason = exc.strerror or type(exc).__name__
        return check("fail", f"cannot connect to {where}: {reason}", fix_url)
    finally:
        if writer is not None:
            writer.transport.abort()
    steps = "DNS, TCP and TLS" if tls else "DNS and TCP"
    return check("ok", f"{where} reachable ({steps}; no request sent)")


def _tls_context() -> Any:
    import httpx2  # the runtime's pools build their SSL context the same way

    return httpx2.create_ssl_context()


def _pool_of(manifest: Manifest, spec: AnthropicApiSpec) -> PoolSpec:
    return manifest.pools.get(spec.pool, PoolSpec()) if spec.pool else PoolSpec()


# --------------------------------------------------------------------------- cache


async def _in_daemon_thread(work: Callable[[], Any], timeout: float) -> Any:
    """Run blocking ``work`` in a daemon thread, waiting at most ``timeout`` seconds."""
    result: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def target() -> None:
        try:
            result.set_result(work())
        except BaseException as exc:
            result.set_exception(exc)

    threading.Thread(target=target, name="provcfg-doctor", daemon=True).start()
    async with asyncio.timeout(timeout):
        return await asyncio.wrap_future(result)


async def _redis_check(name: str, spec: RedisRegionSpec, timeout: float) -> Check:
    url = spec.url.get_secret_value()
    shown = mask_url(url)
    details = {"url": shown}
    try:
        import redis.asyncio as aioredis
        from redis.exceptions import AuthenticationError, RedisError
    except ImportError:
        return Check(
            "cache",
            name,
            "reachable",
            "fail",
            "the redis client is not installed",
            "pip install 'provcfg[redis]'",
            details,
        )
    budget = min(spec.socket_timeout, timeout)
    fix = f"start redis at {shown}, or fix cache.{name}.url"
    client = aioredis.Redis.from_url(url, socket_connect_timeout=budget, socket_timeout=budget)
    try:
        async with asyncio.timeout(budget):
            await client.ping()
    except TimeoutError:
        message = f"{shown} did not answer PING within {budget:g} s"
        return Check("cache", name, "reachable", "fail", message, fix, details)
    except AuthenticationError:
        message = f"{shown} refused the credentials"
        return Check(
            "cache",
            name,
            "reachable",
            "fail",
            message,
            f"fix the password in cache.{name}.url",
            details,
        )
    except (RedisError, OSError) as exc:
        message = f"{shown} did not answer PING: {exc}"
        return Check("cache", name, "reachable", "fail", message, fix, details)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(budget):
                await client.aclose()
    return Check("cache", name, "reachable", "ok", f"{shown} answered PING", None, details)


async def _memcached_check(name: str, spec: MemcachedRegionSpec, timeout: float) -> Check:
    shown = mask_url(spec.url)
    details = {"url": shown}
    try:
        from pymemcache.client.base import Client
    except ImportError:
        return Check(
            "cache",
            name,
            "reachable",
            "fail",
            "the memcached client is not installed",
            "pip install 'provcfg[memcached]'",
            details,
        )
    address = spec.url.removeprefix("memcached://")
    host, _, port_text = address.rpartition(":")
    fix = f"start memcached at {shown}, or fix cache.{name}.url"
    if not host or not port_text.isdigit():
        return Check("cache", name, "reachable", "fail", f"{shown} has no host:port", fix, details)

    def ask() -> str:
        client = Client((host, int(port_text)), connect_timeout=timeout, timeout=timeout)
        try:
            return str(client.version(), "ascii", "replace")
        finally:
            client.close()

    try:
        version = await _in_daemon_thread(ask, timeout + 0.5)
    except TimeoutError:
        message = f"{shown} did not answer `version` within {timeout:g} s"
        return Check("cache", name, "reachable", "fail", message, fix, details)
    except Exception as exc:
        message = f"{shown} did not answer `version`: {type(exc).__name__}"
        return Check("cache", name, "reachable", "fail", message, fix, details)
    return Check(
        "cache", name, "reachable", "ok", f"{shown} answered version {version}", None, details
    )


def _file_check(name: str, spec: FileRegionSpec) -> Check:
    path = os.path.abspath(os.path.expanduser(spec.path))
    folder = os.path.dirname(path)
    details = {"path": path}
    if not os.path.isdir(folder):
        return Check(
            "cache",
            name,
            "writable",
            "fail",
            f"the folder {folder} does not exist",
            f"create it (mkdir -p {folder}) or change cache.{name}.path",
            details,
        )
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".provcfg-doctor-"):
            pass
    except OSError as exc:
        return Check(
            "cache",
            name,
            "writable",
            "fail",
            f"cannot create files in {folder}: {exc.strerror}",
            f"make {folder} writable for this user, or change cache.{name}.path",
            details,
        )
    return Check("cache", name, "writable", "ok", f"{folder} is writable", None, details)


def _size_check(manifest: Manifest) -> Check | None:
    region = manifest.cache.get("providers")
    if not isinstance(region, MemoryRegionSpec):
        return None
    count = len(manifest.providers)
    details = {"max_size": region.max_size, "providers": count}
    if region.max_size < count:
        return Check(
            "cache",
            "providers",
            "size",
            "warn",
            f"max_size {region.max_size} holds fewer than the {count} providers: instances "
            "will be closed and recreated in turn",
            f"set cache.providers.max_size to at least {count}",
            details,
        )
    return Check(
        "cache",
        "providers",
        "size",
        "ok",
        f"max_size {region.max_size} holds all {count} providers",
        None,
        details,
    )


def _pool_check(name: str, pool: PoolSpec) -> Check:
    details = {
        "max_connections": pool.max_connections,
        "max_keepalive_connections": pool.max_keepalive_connections,
    }
    if pool.max_keepalive_connections > pool.max_connections:
        return Check(
            "pool",
            name,
            "limits",
            "warn",
            f"max_keepalive_connections {pool.max_keepalive_connections} exceeds "
            f"max_connections {pool.max_connections}: the extra idle connections can never exist",
            f"set pools.{name}.max_keepalive_connections to at most {pool.max_connections}",
            details,
        )
    return Check(
        "pool",
        name,
        "limits",
        "ok",
        f"{pool.max_keepalive_connections} keep-alive within {pool.max_connections} connections",
        None,
        details,
    )


# --------------------------------------------------------------------------- the run


async def _bounded(work: Awaitable[list[Check]], timeout: float, fallback: Check) -> list[Check]:
    """``work``'s checks, or ``fallback`` if it outlives ``timeout`` (a last guard)."""
    try:
        async with asyncio.timeout(timeout):
            return await work
    except TimeoutError:
        return [fallback]


async def _one(check: Awaitable[Check]) -> list[Check]:
    return [await check]


def _plan(manifest: Manifest, timeout: float) -> list[Awaitable[list[Check]]]:
    """One awaitable per part, in manifest order; each returns its checks."""
    guard = timeout + _REAP_ALLOWANCE
    work: list[Awaitable[list[Check]]] = []

    def late(part: Part, name: str, check: str) -> Check:
        return Check(part, name, check, "fail", f"no answer within {guard:g} s", "rerun doctor")

    for name, spec in manifest.providers.items():
        if isinstance(spec, CliProviderSpec):
            work.append(
                _bounded(_cli_checks(name, spec, timeout), guard, late("provider", name, "cli"))
            )
        elif isinstance(spec, AnthropicApiSpec):
            key = _api_key_check(name, spec)
            connect = _connect_check(name, spec, _pool_of(manifest, spec), timeout)
            work.append(_ready([key]))
            work.append(_bounded(_one(connect), guard, late("provider", name, "connect")))
        else:
            kind = getattr(spec, "kind", "?")
            work.append(
                _ready(
                    [
                        Check(
                            "provider",
                            name,
                            "kind",
                            "ok",
                            f"kind {kind!r} comes from a plugin; doctor has no checks for it",
                        )
                    ]
                )
            )
    for name, region in manifest.cache.items():
        if isinstance(region, RedisRegionSpec):
            work.append(
                _bounded(
                    _one(_redis_check(name, region, timeout)),
                    guard,
                    late("cache", name, "reachable"),
                )
            )
        elif isinstance(region, MemcachedRegionSpec):
            work.append(
                _bounded(
                    _one(_memcached_check(name, region, timeout)),
                    guard,
                    late("cache", name, "reachable"),
                )
            )
        elif isinstance(region, FileRegionSpec):
            work.append(_ready([_file_check(name, region)]))
    size = _size_check(manifest)
    if size is not None:
        work.append(_ready([size]))
    work.extend(_ready([_pool_check(name, pool)]) for name, pool in manifest.pools.items())
    return work


async def _ready(checks: list[Check]) -> list[Check]:
    return checks


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
    secrets = _secrets(manifest)
    return Report(file, tuple(_scrubbed(c, secrets) for c in (valid, *checks)))


# --------------------------------------------------------------------------- secrets


def _secrets(manifest: Manifest | None) -> set[str]:
    """Every secret value this run may meet: the manifest's SecretStr values, passwords in
    its URLs, and environment values whose names say they are secret."""
    from provcfg._reloadevents import known_secrets

    found = known_secrets(manifest, None)
    urls: list[str] = []
    if manifest is not None:
        urls.extend(getattr(spec, "base_url", "") or "" for spec in manifest.providers.values())
        for region in manifest.cache.values():
            if isinstance(region, MemcachedRegionSpec):
                urls.append(region.url)
            elif isinstance(region, RedisRegionSpec):
                # The whole URL is a SecretStr; only its password is secret, and the URL is
                # shown through mask_url.
                url = region.url.get_secret_value()
                found.discard(url)
                urls.append(url)
    for url in urls:
        with contextlib.suppress(ValueError):
            if password := urlsplit(url).password:
                found.add(password)
    # Short values ("stub") would mask ordinary words; no message formats a value in the
    # first place, this is the second line of defence.
    return {s for s in found if len(s) >= _MIN_SCRUBBED}


def _scrubbed(check: Check, secrets: set[str]) -> Check:
    ordered = sorted(secrets, key=len, reverse=True)

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for secret in ordered:
                value = value.replace(secret, _MASK)
            return value
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return replace(
        check,
        message=clean(check.message),
        fix=clean(check.fix),
        details={key: clean(value) for key, value in check.details.items()},
    )


# --------------------------------------------------------------------------- output


def _invalid_report(file: str, exc: ManifestError) -> Report:
    problems = [str(p) for p in exc.problems]
    count = len(problems)
    unreadable = isinstance(exc, ManifestReadError)
    message = (
        "cannot be read" if unreadable else f"invalid: {count} problem{'s' if count != 1 else ''}"
    )
    fix = (
        "give the manifest's path"
        if unreadable
        else "fix the problems listed; `provcfg validate` shows them too"
    )
    check = Check("manifest", None, "valid", "fail", message, fix, {"problems": problems})
    return Report(file, (_scrubbed(check, _secrets(None)),))


_COLOURS = {"ok": "\x1b[32m", "warn": "\x1b[33m", "fail": "\x1b[1;31m"}
_RESET = "\x1b[0m"


def _colour(out: TextIO) -> bool:
    """Colour the verdicts only on a terminal that wants it (https://no-color.org)."""
    isatty = getattr(out, "isatty", None)
    return (
        bool(isatty and isatty())
        and "NO_COLOR" not in os.environ
        and os.environ.get("TERM") != "dumb"
    )


def _text_lines(report: Report) -> list[tuple[Verdict | None, str]]:
    lines: list[tuple[Verdict | None, str]] = []
    width = max((len(c.subject) for c in report.checks), default=8)
    for check in report.checks:
        lines.append((check.verdict, f"{check.subject:<{width}}  {check.check}: {check.message}"))
        if check.fix and check.verdict != "ok":
            lines.append((None, f"{'':<{width}}  fix: {check.fix}"))
        lines.extend(
            (None, f"{'':<{width}}  {problem}") for problem in check.details.get("problems", ())
        )
    summary = (
        f"{report.file}: {report.count('fail')} failed, {report.count('warn')} "
        f"warning{'s' if report.count('warn') != 1 else ''}, {report.count('ok')} ok"
    )
    lines.append((None, summary))
    return lines


def _write_text(report: Report, out: TextIO) -> None:
    # Three escape codes by hand, not rich: with rich installed, structlog's import (which
    # every logging command pays) pulls in rich's traceback support, measured at +57 ms.
    colour = _colour(out)
    for verdict, text in _text_lines(report):
        if verdict is None:
            out.write(f"      {text}\n")
        elif colour:
            out.write(f"{_COLOURS[verdict]}{verdict:<4}{_RESET}  {text}\n")
        else:
            out.write(f"{verdict:<4}  {text}\n")
    out.flush()


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
        report = _invalid_report(args.file, exc)
        code = EXIT_USAGE if isinstance(exc, ManifestReadError) else EXIT_FAILED
    else:
        report = diagnose(manifest, args.file, timeout=args.timeout)
        code = EXIT_OK if report.ok else EXIT_FAILED
    if args.format == "json":
        out.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
        out.flush()
    else:
        _write_text(report, out)
    return code
