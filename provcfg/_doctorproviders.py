"""``provcfg doctor``'s checks of the providers: an agent CLI's executable, version and key
variables; an anthropic-api provider's key and whether its ``base_url`` can be reached.

Every check is bounded: ``--version`` by :func:`provcfg._cliprobe.probe_version`'s
deadline (the CLI's process group is killed and reaped), a connection by the pool's
connect timeout or the run's ``timeout``, whichever is shorter. The DNS lookup runs in a
daemon thread, so one that never returns cannot hold the process at exit. Nothing is
ever sent over a connection: no request, nothing billable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import os
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from provcfg._cliprobe import AgentCli, agent_cli, locate, probe_version
from provcfg._doctorreport import Check, Verdict
from provcfg._manifest import AnthropicApiSpec, CliProviderSpec, Manifest, PoolSpec, mask_url

__all__ = ["api_key_check", "cli_checks", "connect_check", "pool_of"]

_LOOPBACK_NAMES = ("localhost",)


async def cli_checks(name: str, spec: CliProviderSpec, timeout: float) -> list[Check]:
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


def api_key_check(name: str, spec: AnthropicApiSpec) -> Check:
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


async def connect_check(name: str, spec: AnthropicApiSpec, pool: PoolSpec, timeout: float) -> Check:
    url = spec.base_url.get_secret_value()
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        port = 443 if tls else 80
    connect = pool.timeouts.connect
    budget = timeout if connect is None else min(connect, timeout)
    where = f"{host}:{port}"
    shown = mask_url(url)
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
    # Off the loop (importing httpx2 takes a while and would hold up every other check),
    # and outside the connect budget, which is the network's.
    remaining = budget - (time.perf_counter() - start)
    context = await asyncio.to_thread(_tls_context) if tls else None
    writer = None
    try:
        async with asyncio.timeout(max(remaining, 0.001)):
            _reader, writer = await asyncio.open_connection(address[0], address[1])
            if context is not None:
                await writer.start_tls(context, server_hostname=host)
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


def pool_of(manifest: Manifest, spec: AnthropicApiSpec) -> PoolSpec:
    return manifest.pools.get(spec.pool, PoolSpec()) if spec.pool else PoolSpec()
