"""``provcfg init [FILE]``: write a commented manifest for this machine.

It looks for the agent CLIs (``claude``, ``opencode``, ``codex``: on ``PATH`` and where
their installers put them, each asked ``--version`` with a deadline, in a minimal
environment) and for the API key variables (``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY``:
whether they are set, never their values; the manifest refers to them as
``${ANTHROPIC_API_KEY}``). It writes a provider for each CLI found, the ``api`` provider
when ``ANTHROPIC_API_KEY`` is set, commented-out blocks for the rest, and always the
offline ``local`` provider so that ``provcfg run --stub -p local`` works at once.
``default_provider`` is the first one that works here: a CLI that answered
``--version``, else ``api``, else ``local``.

The manifest's first line points editors at ``schemas/providers.schema.json`` beside
it, which is written too (a relative path that holds for everyone who checks the
project out, and it includes the plugin kinds installed here). The text is validated
before anything is written. Existing files are never replaced without ``--force``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provcfg._cliprobe import AGENT_CLIS, AgentCli, Location, VersionProbe, locate, probe_version
from provcfg._errors import ManifestError, ProvcfgError

__all__ = ["KEY_VARIABLES", "SCHEMA_RELATIVE", "Detection", "detect", "manifest_text", "run"]

KEY_VARIABLES = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
"""The API key variables whose presence (never value) shapes the manifest."""
SCHEMA_RELATIVE = "schemas/providers.schema.json"
"""Where the schema goes, relative to the manifest's folder (its ``$schema`` line)."""
VERSION_TIMEOUT = 5.0
"""Seconds each CLI gets to answer ``--version``."""
STUB_URL = "http://127.0.0.1:8765"
"""The ``local`` provider's address: where ``provcfg run --stub`` and ``provcfg stub`` serve."""

EXIT_OK = 0
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class CliFound:
    """One agent CLI as detected here."""

    cli: AgentCli
    location: Location
    probe: VersionProbe | None
    """None when the CLI was not found."""

    @property
    def found(self) -> bool:
        """Whether an executable was found."""
        return self.location.file is not None

    @property
    def runnable(self) -> bool:
        """Whether it answered ``--version`` with exit status 0."""
        return self.probe is not None and self.probe.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        """JSON data of this detection (no environment value)."""
        probe = self.probe
        return {
            "name": self.cli.name,
            "kind": self.cli.kind,
            "command": self.cli.command,
            "found": self.found,
            "path": self.location.file,
            "source": self.location.source or None,
            "runnable": self.runnable,
            "version": probe.version if probe else None,
            "version_status": probe.status if probe else None,
            "tested_version": self.cli.tested_version,
            "tested": bool(probe and probe.version == self.cli.tested_version),
            "install": self.cli.install,
        }


@dataclass(frozen=True, slots=True)
class Detection:
    """What ``init`` found on this machine."""

    clis: tuple[CliFound, ...]
    keys: Mapping[str, bool]
    """Per variable of :data:`KEY_VARIABLES`: set (non-empty) or not."""

    def default_provider(self) -> str:
        """The first provider that works here: a runnable CLI, else ``api``, else ``local``."""
        for found in self.clis:
            if found.runnable:
                return found.cli.name
        return "api" if self.keys.get("ANTHROPIC_API_KEY") else "local"

    def providers(self) -> list[str]:
        """The providers the manifest declares (uncommented), in its order."""
        names = [found.cli.name for found in self.clis if found.found]
        if self.keys.get("ANTHROPIC_API_KEY"):
            names.append("api")
        names.append("local")
        return names


async def _detect_cli(cli: AgentCli, timeout: float) -> CliFound:
    location = locate(cli.command, search_paths=cli.search_paths)
    probe = None
    if location.file is not None:
        probe = await probe_version(location.file, timeout=timeout)
    return CliFound(cli, location, probe)


async def _detect_all(timeout: float) -> tuple[CliFound, ...]:
    return tuple(await asyncio.gather(*(_detect_cli(cli, timeout) for cli in AGENT_CLIS)))


def detect(
    environ: Mapping[str, str] | None = None, *, timeout: float = VERSION_TIMEOUT
) -> Detection:
    """Look for the agent CLIs (concurrently, each bounded by ``timeout``) and the keys."""
    env = os.environ if environ is None else environ
    keys = {name: bool(env.get(name)) for name in KEY_VARIABLES}
    return Detection(asyncio.run(_detect_all(timeout)), keys)


# --------------------------------------------------------------------------- the text

_HEAD = """\
# yaml-language-server: $schema={schema}
#
# Written by `provcfg init` for this machine:
{found}
# Check it with `provcfg validate`, diagnose this machine against it with `provcfg doctor`,
# try it offline with `provcfg run --stub -p local "Say hi"`. Every field: docs/manifest.md.
# ${{VAR}} is read from the environment when the manifest loads; values are never shown.
version: 1
default_provider: {default}

# Model aliases: alias -> model id per provider kind; a provider's `model:` names one.
models:
  sonnet:
    anthropic-api: claude-sonnet-4-5-20250929
    claude-code: claude-sonnet-4-5
    opencode: anthropic/claude-sonnet-4-5
  haiku:
    anthropic-api: claude-haiku-4-5-20251001
    claude-code: claude-haiku-4-5
    opencode: anthropic/claude-haiku-4-5
  codex:
    codex: gpt-5-codex

# Cache regions: live provider instances and where each CLI was found, in memory.
cache:
  providers: {{backend: memory, max_size: 16, ttl: 1h}}
  cli_paths: {{backend: memory, max_size: 64, ttl: 1d}}

# One HTTP connection pool, shared by the anthropic-api providers that name it.
pools:
  anthropic:
    max_connections: 100
    max_keepalive_connections: 20
    keepalive_expiry: 30s
    timeouts: {{connect: 5s, read: 10m, write: 30s, pool: 10s}}

# A CLI provider's process sees only PATH, HOME, LANG, LC_*, TERM, TMPDIR, USER and what
# its `env:` declares.
providers:
"""

_CLI_BODY = {
    "claude-code": "    kind: claude-code\n    model: sonnet\n    timeout: 30m\n",
    "opencode": "    kind: opencode\n    model: sonnet\n    timeout: 30m\n",
    "codex": "    kind: codex\n    model: codex\n    sandbox: read-only\n    timeout: 30m\n",
}

_API = """\
  api:                        # the Anthropic Messages API (ANTHROPIC_API_KEY is set here)
    kind: anthropic-api
    base_url: https://api.anthropic.com
    api_key: "${ANTHROPIC_API_KEY}"
    pool: anthropic
    model: sonnet
"""

_API_COMMENTED = """\
  # api: set ANTHROPIC_API_KEY, then uncomment (or run `provcfg init --force` again):
  # api:
  #   kind: anthropic-api
  #   base_url: https://api.anthropic.com
  #   api_key: "${ANTHROPIC_API_KEY}"
  #   pool: anthropic
  #   model: sonnet
"""

_LOCAL = f"""\
  local:                      # offline: `provcfg run --stub -p local "Say hi"` serves a stub here
    kind: anthropic-api
    base_url: "{STUB_URL}"
    api_key: stub
    pool: anthropic
    model: haiku
    transport: fast
"""


def _found_line(found: CliFound) -> str:
    cli = found.cli
    if not found.found:
        return f"#   {cli.command}: not found (install: {cli.install})"
    probe = found.probe
    where = f"{found.location.file} ({found.location.source})"
    if probe is None or probe.status != "ok":
        what = {
            "timeout": "did not answer --version in time",
            "failed": f"--version exited with {probe.exit_code if probe else '?'}",
            "unrunnable": f"cannot be started ({probe.reason if probe else '?'})",
        }[probe.status if probe else "unrunnable"]
        return f"#   {cli.command}: {where}, {what}; run `provcfg doctor`"
    version = probe.version or "version unknown"
    tested = "" if probe.version == cli.tested_version else f", tested: {cli.tested_version}"
    return f"#   {cli.command} {version} at {where}{tested}"


def _cli_block(found: CliFound, keys: Mapping[str, bool]) -> str:
    cli = found.cli
    body = _CLI_BODY[cli.kind]
    if not found.found:
        lines = [f"  # {cli.name}: not found; install it with `{cli.install}`, then uncomment:"]
        lines.append(f"  # {cli.name}:")
        lines.extend(f"  # {line[2:]}" for line in body.splitlines())
        return "\n".join(lines) + "\n"
    version = found.probe.version if found.probe and found.probe.version else "version unknown"
    note = version if found.runnable else "did not answer --version: see `provcfg doctor`"
    head = f"  {cli.name}:".ljust(30) + f"# {cli.command} {note}, found on {found.location.source}"
    text = f"{head}\n{body}"
    source = found.location.source
    if source.startswith("search_paths "):
        text += f"    search_paths: [{source.removeprefix('search_paths ')}]\n"
    declared = [name for name in cli.auth_env if name in KEY_VARIABLES and keys.get(name)]
    if declared:
        pairs = ", ".join(f'{name}: "${{{name}}}"' for name in declared)
        text += f"    env: {{{pairs}}}   # values stay in your environment\n"
    else:
        usual = cli.auth_env[0]
        text += (
            f"    # Not logged in with the CLI itself? Pass a key: "
            f'env: {{{usual}: "${{{usual}}}"}}\n'
        )
    return text


def manifest_text(detection: Detection, schema: str = SCHEMA_RELATIVE) -> str:
    """The manifest ``init`` writes for ``detection``; ``schema`` is its ``$schema`` path."""
    found = "\n".join(_found_line(f) for f in detection.clis)
    keys = "; ".join(
        f"{name} {'set' if detection.keys.get(name) else 'not set'}" for name in KEY_VARIABLES
    )
    parts = [
        _HEAD.format(
            schema=schema, found=f"{found}\n#   {keys}", default=detection.default_provider()
        )
    ]
    parts.extend(_cli_block(f, detection.keys) for f in detection.clis)
    parts.append(_API if detection.keys.get("ANTHROPIC_API_KEY") else _API_COMMENTED)
    parts.append(_LOCAL)
    return "".join(parts)


# --------------------------------------------------------------------------- the command


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _write_new(path: Path, text: str, force: bool) -> None:
    """Create ``path`` (never replacing one unless ``force``); atomic when replacing."""
    if not force:
        with path.open("x", encoding="utf-8") as stream:
            stream.write(text)
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def _schema_action(target: Path, text: str, force: bool) -> str:
    """Write the schema beside the manifest; returns what happened (written/unchanged/kept)."""
    try:
        current = target.read_text(encoding="utf-8") if target.is_file() else None
    except (OSError, UnicodeDecodeError):
        current = None
    if current == text:
        return "unchanged"
    if _exists(target) and not force:
        return "kept"
    target.parent.mkdir(exist_ok=True)
    _write_new(target, text, force=True)
    return "written"


def run(args: argparse.Namespace) -> int:
    """``provcfg init``: write the manifest (and its schema); return the exit code."""
    from provcfg._loading import parse_manifest_text
    from provcfg._schema import schema_text

    path = Path(args.file)
    out = sys.stdout
    if _exists(path) and not args.force:
        what = "is a folder" if path.is_dir() else "already exists"
        raise ProvcfgError(f"{path} {what}; pass --force to overwrite it, or give another FILE")
    if path.is_dir():
        raise ProvcfgError(f"{path} is a folder; give the manifest's file name")
    if not path.parent.is_dir():
        raise ProvcfgError(f"the folder {path.parent} does not exist; create it first")
    detection = detect()
    text = manifest_text(detection)
    try:
        parse_manifest_text(text.encode(), file=str(path), environ=os.environ)
    except ManifestError as exc:  # a bug in the template, never the user's fault
        problems = "; ".join(str(p) for p in exc.problems)
        raise RuntimeError(f"init wrote an invalid manifest: {problems}") from None
    schema_target = path.parent / SCHEMA_RELATIVE
    try:
        _write_new(path, text, args.force)
        schema = _schema_action(schema_target, schema_text(), args.force)
    except FileExistsError:
        raise ProvcfgError(
            f"{path} already exists; pass --force to overwrite it, or give another FILE"
        ) from None
    except OSError as exc:
        raise ProvcfgError(f"cannot write {exc.filename or path}: {exc.strerror}") from None
    if args.format == "json":
        report = {
            "file": str(path),
            "schema": str(schema_target),
            "schema_action": schema,
            "default_provider": detection.default_provider(),
            "providers": detection.providers(),
            "clis": [found.as_dict() for found in detection.clis],
            "env": dict(detection.keys),
        }
        out.write(json.dumps(report, indent=2) + "\n")
        return EXIT_OK
    out.write(_summary(path, schema_target, schema, detection))
    return EXIT_OK


def _summary(path: Path, schema_target: Path, schema: str, detection: Detection) -> str:
    providers = ", ".join(detection.providers())
    lines = [f"wrote {path} (default_provider: {detection.default_provider()}; {providers})"]
    if schema == "kept":
        lines.append(
            f"kept {schema_target}: it differs from this provcfg's schema; update it with "
            f"`provcfg schema -o {schema_target}`"
        )
    else:
        done = "wrote" if schema == "written" else "kept (already current)"
        lines.append(f"{done} {schema_target}: editors read it through the manifest's first line")
    lines.extend(_found_line(found).removeprefix("#   ") for found in detection.clis)
    lines.append(
        ", ".join(
            f"{name} {'set' if detection.keys.get(name) else 'not set'}" for name in KEY_VARIABLES
        )
    )
    lines.append(f'next: provcfg doctor {path}; provcfg run -f {path} --stub -p local "Say hi"')
    return "\n".join(lines) + "\n"
