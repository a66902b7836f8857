"""The manifest model: frozen pydantic models for every section of ``providers.yaml``.

These classes are the single source of truth for what a manifest may hold: the
loader validates against them, ``provcfg schema`` is generated from them, and the
Runtime is built from instances of them. Every model is frozen, rejects unknown
keys, and stores durations as float seconds. Secrets are ``SecretStr``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
)

__all__ = [
    "AlertSpec",
    "AnthropicApiSpec",
    "ClaudeCodeSpec",
    "CliProviderSpec",
    "CodexSpec",
    "Duration",
    "FileRegionSpec",
    "Manifest",
    "MemcachedRegionSpec",
    "MemoryRegionSpec",
    "MonitoringSpec",
    "OpenCodeSpec",
    "PoolSpec",
    "ProviderSpec",
    "RedisRegionSpec",
    "RegionSpec",
    "TimeoutsSpec",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> object:
    """Turn ``250ms``, ``30s``, ``5m``, ``1h``, ``1d`` or a number of seconds into float seconds.

    Returns the input unchanged when it is not a duration-like value, so that
    pydantic reports the type error with its own position and wording.

    Raises:
        ValueError: for a string that is not a duration, or a negative number.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 250ms, 30s, 5m, 1h, 1d or seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            try:
                seconds = float(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a duration; write 250ms, 30s, 5m, 1h, 1d or seconds"
                ) from None
            if seconds < 0:
                raise ValueError("a duration cannot be negative")
            return seconds
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


def _format_duration(seconds: float) -> str | float:
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    if (seconds * 1000).is_integer():
        return f"{int(seconds * 1000)}ms"
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(ge=0, json_schema_extra={"examples": ["250ms", "30s", "5m", "1h", "1d", 1.5]}),
    PlainSerializer(_format_duration, when_used="json"),
]
"""Seconds as float; written in YAML as ``250ms``, ``30s``, ``5m``, ``1h``, ``1d`` or a number."""

# A duration in the schema accepts a number or a string with a unit.
_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$"},
    ]
}

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
InitPolicy = Literal["eager", "lazy", "background"]


class _Spec(BaseModel):
    """Base of every manifest model: frozen, unknown keys rejected, inputs not echoed."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        validate_default=True,
        str_strip_whitespace=False,
    )


# --------------------------------------------------------------------------- cache


class _RegionBase(_Spec):
    ttl: Duration | None = Field(
        default=None, description="Time to live of an entry; none means entries never expire."
    )


class MemoryRegionSpec(_RegionBase):
    """An in-process region with LRU eviction once ``max_size`` entries are held."""

    backend: Literal["memory"]
    max_size: int = Field(default=1024, ge=1, description="Entries kept before LRU eviction.")


class FileRegionSpec(_RegionBase):
    """A dbm file region, shared by processes on one machine."""

    backend: Literal["file"]
    path: str = Field(min_length=1, description="Path of the dbm file (created if missing).")


class RedisRegionSpec(_RegionBase):
    """A redis region (needs the ``redis`` extra)."""

    backend: Literal["redis"]
    url: SecretStr = Field(description="redis://[:password@]host:port/db")
    socket_timeout: Duration = 5.0


class MemcachedRegionSpec(_RegionBase):
    """A memcached region (needs the ``memcached`` extra)."""

    backend: Literal["memcached"]
    url: str = Field(description="memcached://host:port")


RegionSpec = Annotated[
    MemoryRegionSpec | FileRegionSpec | RedisRegionSpec | MemcachedRegionSpec,
    Field(discriminator="backend"),
]

# --------------------------------------------------------------------------- pools


class TimeoutsSpec(_Spec):
    """httpx2 timeouts of a pool."""

    connect: Duration = 5.0
    read: Duration = 600.0
    write: Duration = 30.0
    pool: Duration = 10.0


class PoolSpec(_Spec):
    """One httpx2 connection pool, shared by every provider that names it."""

    max_connections: int = Field(default=100, ge=1)
    max_keepalive_connections: int = Field(default=20, ge=0)
    keepalive_expiry: Duration = 30.0
    timeouts: TimeoutsSpec = TimeoutsSpec()


# --------------------------------------------------------------------------- providers


class _ProviderBase(_Spec):
    model: str | None = Field(
        default=None, description="Default model: an alias from `models:` or a complete model id."
    )
    models: dict[str, str] = Field(
        default_factory=dict, description="Per-provider aliases; they beat the global table."
    )
    unknown_models: Literal["passthrough", "error"] = Field(
        default="passthrough",
        description="passthrough: a name that looks like a complete model id is used as is.",
    )
    init: InitPolicy = Field(
        default="lazy",
        description="lazy: nothing until first use; eager: in load(); background: a task.",
    )
    timeout: Duration | None = Field(default=None, description="Total deadline of one request.")


class CliProviderSpec(_ProviderBase):
    """Fields shared by the CLI-driven kinds."""

    command: str = Field(default="", description="Executable name looked up on PATH.")
    path: str | None = Field(default=None, description="Explicit path to the executable.")
    search_paths: tuple[str, ...] = Field(
        default=(), description="Folders searched after PATH (~ is expanded)."
    )
    env: dict[str, SecretStr] = Field(
        default_factory=dict, description="Extra environment for the CLI; values are secret."
    )
    cwd: str | None = None
    extra_args: tuple[str, ...] = ()
    idle_timeout: Duration | None = Field(
        default=None, description="Longest silence between two output lines."
    )
    kill_grace: Duration = Field(default=5.0, description="SIGTERM -> SIGKILL grace period.")
    line_limit: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Largest NDJSON line accepted, in bytes."
    )


class ClaudeCodeSpec(CliProviderSpec):
    """Claude Code CLI (``claude -p --output-format stream-json``)."""

    kind: Literal["claude-code"]
    command: str = "claude"
    permission_mode: Literal["default", "acceptEdits", "bypassPermissions", "plan", "dontAsk"] = (
        "default"
    )
    allowed_tools: tuple[str, ...] = ()
    disallowed_tools: tuple[str, ...] = ()
    partial_messages: bool = Field(
        default=False, description="Token-level text via --include-partial-messages."
    )
    max_turns: int | None = Field(default=None, ge=1)


class OpenCodeSpec(CliProviderSpec):
    """OpenCode CLI (``opencode run --format json``)."""

    kind: Literal["opencode"]
    command: str = "opencode"
    agent: str | None = None


class CodexSpec(CliProviderSpec):
    """Codex CLI (``codex exec --json``)."""

    kind: Literal["codex"]
    command: str = "codex"
    sandbox: Literal["read-only", "workspace-write", "danger-full-access"] = "read-only"


class AnthropicApiSpec(_ProviderBase):
    """The Anthropic Messages API over a pooled httpx2 client."""

    kind: Literal["anthropic-api"]
    base_url: str = Field(default="https://api.anthropic.com", pattern=r"^https?://\S+$")
    api_key: SecretStr | None = Field(
        default=None, description="API key; usually ${ANTHROPIC_API_KEY}."
    )
    pool: str | None = Field(default=None, description="Name of a pool under `pools:`.")
    transport: Literal["sdk", "fast"] = Field(
        default="sdk",
        description="sdk: the anthropic SDK; fast: provcfg's own SSE client on the same pool.",
    )
    max_tokens: int = Field(default=4096, ge=1)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_max_wait: Duration = Field(default=30.0, description="Cap on one retry's wait.")
    anthropic_version: str = "2023-06-01"


ProviderSpec = Annotated[
    ClaudeCodeSpec | OpenCodeSpec | CodexSpec | AnthropicApiSpec,
    Field(discriminator="kind"),
]

# --------------------------------------------------------------------------- monitoring

MetricName = Literal[
    "first_chunk_seconds",
    "total_seconds",
    "connect_seconds",
    "chunks_per_second",
    "error_rate",
]


class AlertSpec(_Spec):
    """Fire when a metric's quantile over a window crosses a threshold."""

    metric: MetricName
    provider: str | None = None
    quantile: float = Field(default=0.95, gt=0, le=1)
    above: float | None = None
    below: float | None = None
    window: Duration = 300.0


class MonitoringSpec(_Spec):
    """Performance alerts."""

    alerts: tuple[AlertSpec, ...] = ()


# --------------------------------------------------------------------------- manifest


class Manifest(_Spec):
    """A whole ``providers.yaml``."""

    version: Literal[1] = Field(description="Manifest format version; 1.")
    default_provider: str | None = None
    models: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="alias -> {provider kind: model id}"
    )
    cache: dict[Name, RegionSpec] = Field(default_factory=dict)
    pools: dict[Name, PoolSpec] = Field(default_factory=dict)
    providers: dict[Name, ProviderSpec] = Field(min_length=1)
    monitoring: MonitoringSpec = MonitoringSpec()
