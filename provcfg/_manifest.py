"""The manifest model: frozen pydantic models for every section of ``providers.yaml``.

These classes are the single source of truth for what a manifest may hold: the
loader validates against them, ``provcfg schema`` is generated from them, and the
Runtime is built from instances of them. Every model is frozen, rejects unknown
keys, and stores durations as float seconds. Secrets are ``SecretStr``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    StrictBool,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_serializer,
    field_validator,
    model_validator,
)

from provcfg._errors import ErrorKind
from provcfg._secrets import MASK
from provcfg._suggest import MAX_WORD, Suggester, Vocabulary, closest, hint, listing, quote

__all__ = [
    "ALERT_METRICS",
    "DAY",
    "DEFAULT_BREAKER_ON",
    "DEFAULT_FALLBACK_ON",
    "HOUR",
    "WEEK",
    "YEAR",
    "AlertSpec",
    "AlertmanagerSpec",
    "AnthropicApiSpec",
    "BreakerSpec",
    "ClaudeCodeSpec",
    "CliProviderSpec",
    "CodexSpec",
    "Duration",
    "FileRegionSpec",
    "Grace",
    "LongTimeout",
    "Manifest",
    "MemcachedRegionSpec",
    "MemoryRegionSpec",
    "MonitoringSpec",
    "OpenCodeSpec",
    "OptionalDuration",
    "OptionalLongTimeout",
    "OptionalTimeout",
    "PoolSpec",
    "ProviderSpec",
    "RedisRegionSpec",
    "RegionSpec",
    "SecretUrl",
    "Timeout",
    "TimeoutsSpec",
    "WarmLimitsSpec",
    "WarmSpec",
    "looks_like_model_id",
    "manifest_model",
    "mask_url",
    "parse_duration",
    "reference_problems",
]

SKIP_REFERENCE_CHECKS = "provcfg.skip_reference_checks"
"""Validation-context key: the loader runs :func:`reference_problems` itself, with positions."""

BUILTIN_KIND_NAMES: tuple[str, ...] = ("claude-code", "opencode", "codex", "anthropic-api")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> object:
    """Turn ``250ms``, ``30s``, ``5m``, ``1h``, ``1d`` or a number of seconds into float seconds.

    Returns the input unchanged when it is not a duration-like value, so that
    pydantic reports the type error with its own position and wording.

    Raises:
        ValueError: for a string that is not a duration, or a negative number.
    """
    # Messages never repeat the value: a secret pasted into the wrong field stays hidden.
    if isinstance(value, bool):
        raise ValueError(_NOT_A_DURATION)
    if isinstance(value, int | float):
        try:
            return _check_seconds(float(value))
        except OverflowError:  # an int of hundreds of digits (0xffff...): no float holds it
            raise ValueError("a duration must be a finite number of seconds") from None
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            try:
                seconds = float(value)
            except ValueError:
                raise ValueError(_NOT_A_DURATION) from None
            return _check_seconds(seconds)
        number, unit = float(match.group(1)), match.group(2)
        # Dividing by 1000 (not multiplying by 0.001) gives the float nearest to "0.009",
        # so `show` can write a duration back in ms and read the very same float.
        return _check_seconds(number / 1000 if unit == "ms" else number * _UNIT_SECONDS[unit])
    return value


_NOT_A_DURATION = "not a duration; write 250ms, 30s, 5m, 1h, 1d or a number of seconds"


def _check_seconds(seconds: float) -> float:
    if not math.isfinite(seconds):
        raise ValueError("a duration must be a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _format_duration(seconds: float) -> str | float:
    """``30s``/``5m``/``250ms`` when that reads back as exactly ``seconds``, else the number."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        count = seconds / size
        if seconds >= size and count.is_integer() and count * size == seconds:
            return f"{int(count)}{unit}"
    millis = round(seconds * 1000)
    if millis / 1000 == seconds and millis < 10**15:
        return f"{millis}ms"
    return seconds


MINUTE: float = 60.0
HOUR: float = 3600.0
DAY: float = 86400.0
WEEK: float = 7 * DAY
YEAR: float = 365 * DAY


def _at_most(maximum: float) -> BeforeValidator:
    """Parse a duration (:func:`parse_duration`) and refuse one longer than ``maximum`` seconds."""
    limit = _format_duration(maximum)

    def check(value: object) -> object:
        seconds = parse_duration(value)
        if isinstance(seconds, float) and seconds > maximum:
            raise ValueError(f"must be at most {limit} ({maximum:,.0f} seconds)")
        return seconds

    return BeforeValidator(check)


def _duration_schema(maximum: float) -> WithJsonSchema:
    """A number of seconds up to ``maximum``, or a string with a unit, as the validator reads."""
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": maximum},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$"},
            ],
            "examples": ["250ms", "30s", "5m", "1h", "1d", 1.5],
        },
        mode="validation",
    )


_AS_TEXT = PlainSerializer(_format_duration, when_used="json")

# Every duration field has one of these types, so each has a documented, enforced maximum:
# a value past it (`ttl: 1e300`) is a positioned validation error, not a failure at run time.
Duration = Annotated[float, _at_most(YEAR), Field(ge=0, le=YEAR), _AS_TEXT, _duration_schema(YEAR)]
"""Seconds as float, at most a year: ``250ms``, ``30s``, ``5m``, ``1h``, ``1d`` or a number."""
Timeout = Annotated[float, _at_most(DAY), Field(ge=0, le=DAY), _AS_TEXT, _duration_schema(DAY)]
"""A duration of at most a day: one network wait, an idle gap, a keep-alive, a window."""
LongTimeout = Annotated[
    float, _at_most(WEEK), Field(ge=0, le=WEEK), _AS_TEXT, _duration_schema(WEEK)
]
"""A duration of at most a week: the whole of one request, which may be a long agent run."""
Grace = Annotated[float, _at_most(HOUR), Field(ge=0, le=HOUR), _AS_TEXT, _duration_schema(HOUR)]
"""A duration of at most an hour: a kill grace period, one retry's wait."""


def _none_word(value: object) -> object:
    """``none`` (any case) is None: the explicit opt-out of a wait's default limit."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    return value


def _format_optional_duration(seconds: float | None) -> str | float:
    return "none" if seconds is None else _format_duration(seconds)


def _optional_schema(maximum: float) -> WithJsonSchema:
    """A duration up to ``maximum``, or ``none``/null: the schema of an optional limit."""
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": maximum},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$"},
                {"const": "none", "description": "no limit of its own"},
                {"type": "null"},
            ],
            "examples": ["30s", "5m", "none"],
        },
        mode="validation",
    )


_AS_OPTIONAL_TEXT = PlainSerializer(_format_optional_duration, when_used="json")

OptionalTimeout = Annotated[
    Timeout | None, BeforeValidator(_none_word), _AS_OPTIONAL_TEXT, _optional_schema(DAY)
]
"""A limit on one wait (at most a day); ``none`` (or null) switches the limit off."""
OptionalLongTimeout = Annotated[
    LongTimeout | None, BeforeValidator(_none_word), _AS_OPTIONAL_TEXT, _optional_schema(WEEK)
]
"""A limit on a whole request (at most a week); ``none`` (or null) switches it off."""
OptionalDuration = OptionalTimeout
"""A limit on a wait, as a :data:`Timeout`; ``none`` (or null) switches the limit off."""

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
"""A provider, pool, region or alias name: letters, digits, ``.``, ``_``, ``-``."""
ModelId = Annotated[str, Field(min_length=1)]
InitPolicy = Literal["eager", "lazy", "background"]


class _Spec(BaseModel):
    """Base of every manifest model: frozen, unknown keys rejected, inputs not echoed."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        validate_default=True,
        str_strip_whitespace=False,
        # YAML numbers keep their source text (provcfg._yaml.YamlFloat), so a string field
        # given `model: 3.10` receives "3.10", not "3.1".
        coerce_numbers_to_str=True,
    )


# --------------------------------------------------------------------------- cache


class _RegionBase(_Spec):
    ttl: Duration | None = Field(
        default=None,
        description="Time to live of an entry, at most 365d; none means entries never expire.",
    )
    invalidate_on: tuple[Name, ...] | Literal["any"] = Field(
        default=(),
        description=(
            "What else makes a reload drop this region's entries, besides a change of the "
            "region's own spec: provider names (a change of one of their specs), or `any` "
            "(any change of the manifest)."
        ),
    )


class MemoryRegionSpec(_RegionBase):
    """An in-process region with LRU eviction once ``max_size`` entries are held."""

    backend: Literal["memory"]
    max_size: int = Field(
        default=1024,
        ge=1,
        le=10_000_000,
        description="Entries kept before LRU eviction (1 to 10,000,000).",
    )


class FileRegionSpec(_RegionBase):
    """A dbm file region, shared by processes on one machine."""

    backend: Literal["file"]
    path: str = Field(min_length=1, description="Path of the dbm file (created if missing).")


class RedisRegionSpec(_RegionBase):
    """A redis region (needs the ``redis`` extra)."""

    backend: Literal["redis"]
    url: SecretStr = Field(description="redis://[:password@]host:port/db (also rediss://, unix://)")
    socket_timeout: Timeout = Field(
        default=5.0, description="Connect and read timeout of the redis client, at most 1d."
    )

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, url: SecretStr) -> SecretStr:
        if not url.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return url

    @field_serializer("url", when_used="json")
    def _masked_url(self, url: SecretStr) -> str:
        return mask_url(url.get_secret_value())


class MemcachedRegionSpec(_RegionBase):
    """A memcached region (needs the ``memcached`` extra)."""

    backend: Literal["memcached"]
    url: str = Field(description="memcached://host:port", pattern=r"^memcached://\S+$")


_MASK = MASK
_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|pass|pwd|token|secret|key|auth)=)[^&#]*")


def mask_url(url: str) -> str:
    """The URL with its password (and secret-looking query values) replaced by ``**********``.

    ``redis://user:pw@host:6379/0`` -> ``redis://user:**********@host:6379/0``; the result is
    still a URL of the same scheme, so ``provcfg show`` output validates again.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _MASK
    head = rest.split("?", 1)[0].split("#", 1)[0]
    at = head.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = (f"{user}:{_MASK}" if colon else _MASK) + rest[at:]
    return f"{scheme}://{_SECRET_QUERY.sub(lambda m: m.group(1) + _MASK, rest)}"


class SecretUrl(SecretStr):
    """A URL that may carry a password (``http://user:password@host``).

    ``str``, ``repr``, ``model_dump`` and ``model_dump_json`` show it with the password
    masked (:func:`mask_url`); only :meth:`get_secret_value` gives it whole.
    """

    def _display(self) -> str:
        return mask_url(self.get_secret_value())


def _to_secret_url(value: object) -> object:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # as coerce_numbers_to_str would, then checked like any text
    if isinstance(value, str) and not re.fullmatch(r"https?://\S+", value):
        raise ValueError("must be an http:// or https:// URL, e.g. https://api.anthropic.com")
    return value


HttpUrlSecret = Annotated[
    SecretUrl,
    BeforeValidator(_to_secret_url),
    PlainSerializer(lambda url: mask_url(url.get_secret_value()), when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^https?://\S+$"}, mode="validation"),
]
"""An http(s) URL kept as a :class:`SecretUrl`: its password never shows in a dump."""


RegionSpec = Annotated[
    MemoryRegionSpec | FileRegionSpec | RedisRegionSpec | MemcachedRegionSpec,
    Field(discriminator="backend"),
]

# --------------------------------------------------------------------------- pools


class TimeoutsSpec(_Spec):
    """httpx2 timeouts of a pool; ``none`` switches one off (a request's deadline still caps it)."""

    connect: OptionalTimeout = Field(default=5.0, description="Opening a connection, at most 1d.")
    read: OptionalTimeout = Field(
        default=600.0, description="Longest wait for the next bytes of an answer, at most 1d."
    )
    write: OptionalTimeout = Field(default=30.0, description="Sending the request, at most 1d.")
    pool: OptionalTimeout = Field(
        default=None,
        description="Longest wait for a free connection, at most 1d; none (the default): as "
        "long as the request's own deadline allows (the provider's timeout).",
    )


class PoolSpec(_Spec):
    """One httpx2 connection pool, shared by every provider that names it.

    The limits default to the anthropic SDK's own (``DEFAULT_CONNECTION_LIMITS``: 1000
    connections, 100 kept alive): a streamed answer holds its connection for its whole length.
    """

    max_connections: int = Field(
        default=1000,
        ge=1,
        le=10_000,
        description="Connections open at once: one per stream in flight (1 to 10,000).",
    )
    max_keepalive_connections: int = Field(
        default=100, ge=0, le=10_000, description="Idle connections kept for reuse (0 to 10,000)."
    )
    keepalive_expiry: Timeout = Field(
        default=30.0, description="How long an idle connection is kept, at most 1d."
    )
    timeouts: TimeoutsSpec = TimeoutsSpec()


# --------------------------------------------------------------------------- providers


DEFAULT_FALLBACK_ON: tuple[ErrorKind, ...] = (
    "rate_limit",
    "overloaded",
    "server_error",
    "network",
    "stream_incomplete",
    "cli_not_found",
    "cli_failed",
)
"""Error kinds that move a request to the next fallback unless ``fallback_on`` says otherwise:
the provider is saturated, down, unreachable or missing, or its CLI crashed; not the
caller's mistakes (invalid_request, model_not_found), credentials, nor timeouts (the
request's time is spent)."""

DEFAULT_BREAKER_ON: tuple[ErrorKind, ...] = (*DEFAULT_FALLBACK_ON, "timeout")
"""Error kinds a circuit breaker counts as failures unless ``breaker.on`` says otherwise."""


class BreakerSpec(_Spec):
    """A circuit breaker: ``failures`` within ``window`` open it for ``cooldown``."""

    failures: int = Field(
        default=5, ge=1, le=10_000, description="Failures within the window that open it."
    )
    window: Timeout = Field(
        default=60.0, description="How far back failures are counted, at most 1d."
    )
    cooldown: Timeout = Field(
        default=30.0,
        description="How long it stays open before one probe request is let through, at most 1d.",
    )
    on: tuple[ErrorKind, ...] = Field(
        default=DEFAULT_BREAKER_ON,
        description="Error kinds counted as failures (default: "
        + ", ".join(DEFAULT_BREAKER_ON)
        + ").",
    )

    @model_validator(mode="after")
    def _positive(self) -> BreakerSpec:
        if self.window <= 0:
            raise ValueError("window must be longer than 0s; write e.g. window: 60s")
        if self.cooldown <= 0:
            raise ValueError("cooldown must be longer than 0s; write e.g. cooldown: 30s")
        return self


class _ProviderBase(_Spec):
    model: str | None = Field(
        default=None, description="Default model: an alias from `models:` or a complete model id."
    )
    models: dict[Name, ModelId] = Field(
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
    timeout: OptionalLongTimeout = Field(
        default=None,
        description="Total deadline of one request, at most 7d; none: no deadline.",
    )
    fallbacks: tuple[Name, ...] = Field(
        default=(),
        description="Providers that take a request this one failed before its first chunk "
        "(in order; each followed by its own fallbacks).",
    )
    fallback_on: tuple[ErrorKind, ...] = Field(
        default=DEFAULT_FALLBACK_ON,
        description="Error kinds that move a request to the next fallback (default: "
        + ", ".join(DEFAULT_FALLBACK_ON)
        + ").",
    )
    breaker: BreakerSpec | None = Field(
        default=None,
        description="Circuit breaker, e.g. {failures: 5, window: 60s, cooldown: 30s}.",
    )


DEFAULT_CLI_TIMEOUT = 4 * 3600.0
"""A CLI request's total deadline unless the spec says otherwise (4 h: long agent runs)."""
DEFAULT_CLI_IDLE_TIMEOUT = 30 * 60.0
"""Longest silence of an agent CLI on stdout unless the spec says otherwise (30 min)."""
DEFAULT_API_TIMEOUT = 3600.0
"""An anthropic-api request's total deadline unless the spec says otherwise (1 h)."""
DEFAULT_FIRST_BYTE_TIMEOUT = 60.0
"""Longest wait for an API's response headers unless the spec says otherwise (60 s)."""


WARM_KINDS: tuple[str, ...] = ("claude-code", "opencode", "codex")
"""The kinds whose agent process can be started ahead of a request (``warm:``)."""


WARM_MAX = 256
"""The most warm processes a provider's ``spares`` or the runtime cap may name."""


class WarmSpec(_Spec):
    """Agent processes started ahead of requests (docs/clis.md, "Warm processes").

    claude-code keeps ``spares`` idle processes per working folder, each serving one
    request or one session; opencode and codex keep ``spares`` servers, each serving
    any number of requests at once.
    """

    spares: int = Field(
        default=1,
        ge=0,
        le=WARM_MAX,
        description="Ready processes per working folder (claude-code) or servers (opencode, "
        "codex); 0 turns warming off. At most warm.max_processes (top level).",
    )
    idle_timeout: LongTimeout | None = Field(
        default=600.0,
        description="A spare nobody took for this long is stopped (and started again on the "
        "next request); none keeps it.",
    )
    max_age: LongTimeout = Field(
        default=1800.0,
        description="A spare older than this is never handed out; it is replaced.",
    )
    max_uses: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Requests one process serves before it is replaced (claude-code: always 1; "
        "opencode and codex: 200 when not set).",
    )
    cwds: tuple[Annotated[str, Field(min_length=1, max_length=4096)], ...] = Field(
        max_length=64,
        default=(),
        description="More working folders to keep spares for, besides the provider's cwd (~ is "
        "expanded).",
    )
    learn: int = Field(
        default=4,
        ge=0,
        le=64,
        description="Working folders learned from requests (a cwd= used twice) and kept warm, "
        "least recently used first out; 0 learns none.",
    )


class WarmLimitsSpec(_Spec):
    """The runtime-wide cap on warm agent processes (memory is the cost: docs/clis.md)."""

    max_processes: int = Field(
        default=4,
        ge=0,
        le=WARM_MAX,
        description="Warm processes (spares and servers) alive at once, over every provider.",
    )


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
    timeout: OptionalLongTimeout = Field(
        default=DEFAULT_CLI_TIMEOUT,
        description="Total deadline of one request (default 4h, at most 7d); none: no deadline.",
    )
    idle_timeout: OptionalTimeout = Field(
        default=DEFAULT_CLI_IDLE_TIMEOUT,
        description="Longest silence on stdout (default 30m, at most 1d); none: wait for ever.",
    )
    kill_grace: Grace = Field(default=5.0, description="SIGTERM -> SIGKILL grace, at most 1h.")
    line_limit: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest NDJSON line accepted, in bytes (1 KiB to 1 GiB).",
    )
    warm: WarmSpec | None = Field(
        default=None,
        description="Start the agent ahead of requests: spares, idle_timeout, max_age, max_uses, "
        "cwds, learn (docs/clis.md).",
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
    partial_messages: StrictBool = Field(
        default=False, description="Token-level text via --include-partial-messages."
    )
    max_turns: int | None = Field(default=None, ge=1, le=10_000, description="1 to 10,000.")


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
    base_url: HttpUrlSecret = Field(
        default="https://api.anthropic.com",  # type: ignore[assignment]
        description="Where the API is; a password in it (http://user:password@host) is sent "
        "as HTTP Basic authentication and is secret.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="API key; usually ${ANTHROPIC_API_KEY}."
    )
    pool: str | None = Field(default=None, description="Name of a pool under `pools:`.")
    transport: Literal["sdk", "fast"] = Field(
        default="sdk",
        description="sdk: the anthropic SDK; fast: provcfg's own SSE client on the same pool.",
    )
    max_tokens: int = Field(default=4096, ge=1, le=1_000_000, description="1 to 1,000,000.")
    max_retries: int = Field(default=2, ge=0, le=10, description="0 to 10.")
    retry_max_wait: Grace = Field(default=30.0, description="Cap on one retry's wait, at most 1h.")
    anthropic_version: str = "2023-06-01"
    timeout: OptionalLongTimeout = Field(
        default=DEFAULT_API_TIMEOUT,
        description="Total deadline of one request, retries included (default 1h, at most 7d); "
        "none: none.",
    )
    first_byte_timeout: OptionalTimeout = Field(
        default=DEFAULT_FIRST_BYTE_TIMEOUT,
        description="Longest wait for the response headers of one attempt (default 60s, at "
        "most 1d); none: only the deadline and the pool's timeouts apply.",
    )
    max_event_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        description="Most bytes one stream event may grow to without ending (default 8 MiB, "
        "64 KiB to 1 GiB); a server that goes past it is stopped with server_error.",
    )


ProviderSpec = Annotated[
    ClaudeCodeSpec | OpenCodeSpec | CodexSpec | AnthropicApiSpec,
    Field(discriminator="kind"),
]

# --------------------------------------------------------------------------- monitoring

LATENCY_METRICS: tuple[str, ...] = ("first_chunk_seconds", "total_seconds", "connect_seconds")
"""Alert metrics read as a quantile of the requests in the window."""
ALERT_METRICS: tuple[str, ...] = (
    *LATENCY_METRICS,
    "chunks_per_second",
    "error_rate",
    "pool_exhausted_rate",
    "reload_failures",
)
"""Every metric an alert rule may name (docs/monitoring.md says what each one measures)."""
_PROVIDER_METRICS = frozenset(ALERT_METRICS) - {"pool_exhausted_rate", "reload_failures"}


class AlertSpec(_Spec):
    """One alert rule, evaluated in-process on a rolling time window.

    It fires once its condition has held for ``for`` seconds, with at least
    ``min_requests`` requests in the window, and resolves when the condition stops holding.
    """

    model_config = ConfigDict(serialize_by_alias=True, validate_by_name=False)

    name: Name | None = Field(
        default=None, description="Alert name (default: the metric and the provider or pool)."
    )
    metric: str = Field(
        description="What to watch: " + ", ".join(ALERT_METRICS) + ".",
        json_schema_extra={"enum": list(ALERT_METRICS)},
    )
    provider: str | None = Field(
        default=None, description="Provider to watch; none watches each provider on its own."
    )
    pool: str | None = Field(
        default=None, description="Pool to watch (pool_exhausted_rate); none watches each pool."
    )
    quantile: float = Field(
        default=0.95, gt=0, le=1, description="Quantile of the latency metrics (0.95 = p95)."
    )
    above: float | None = Field(
        default=None, allow_inf_nan=False, description="Fire when the value is above this."
    )
    below: float | None = Field(
        default=None, allow_inf_nan=False, description="Fire when the value is below this."
    )
    above_baseline: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="Fire when the latency quantile is above this factor times the provider's "
        "baseline p95 (monitoring.baseline); at most 1,000.",
    )
    window: Timeout = Field(default=300.0, description="The rolling time window read, at most 1d.")
    for_: Timeout = Field(
        default=0.0,
        alias="for",
        description="How long the condition must hold before the alert fires, at most 1d.",
    )
    min_requests: int = Field(
        default=1,
        ge=0,
        le=1_000_000,
        description="Requests the window must hold before a request-based rule can fire "
        "(0 to 1,000,000).",
    )
    severity: Literal["info", "warning", "critical"] = "warning"

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in ALERT_METRICS:
            raise ValueError(
                f"unknown alert metric {metric!r} (metrics: {_listed(ALERT_METRICS)})"
                + _suggest(metric, ALERT_METRICS, "use one of the metrics")
            )
        return metric

    @model_validator(mode="after")
    def _consistent(self) -> AlertSpec:
        thresholds = [self.above, self.below, self.above_baseline]
        if all(t is None for t in thresholds):
            raise ValueError(
                "an alert needs a threshold; add above: <value>, below: <value> "
                "or above_baseline: <factor>"
            )
        if self.window <= 0:
            raise ValueError("window must be longer than 0s; write e.g. window: 5m")
        if self.for_ > self.window:
            raise ValueError(
                "for: is longer than window:; the condition is read over the window, "
                "so make for: at most the window"
            )
        if self.above_baseline is not None and self.metric not in LATENCY_METRICS:
            raise ValueError(
                f"above_baseline applies to the latency metrics ({_listed(LATENCY_METRICS)}), "
                f"not {self.metric}"
            )
        if self.provider is not None and self.metric not in _PROVIDER_METRICS:
            raise ValueError(f"{self.metric} is not per provider; remove provider:")
        if self.pool is not None and self.metric != "pool_exhausted_rate":
            raise ValueError("pool: applies to pool_exhausted_rate only; remove pool:")
        return self

    @property
    def label(self) -> str:
        """The rule's name as alerts show it."""
        return self.name or (
            f"{self.metric}_{self.provider}" if self.provider else f"{self.metric}"
        )


class AlertmanagerSpec(_Spec):
    """Where firing and resolved alerts are posted (Alertmanager's v2 API)."""

    url: SecretStr = Field(
        description="Alertmanager's base URL, e.g. http://127.0.0.1:9093 (alerts go to "
        "/api/v2/alerts)."
    )
    timeout: Grace = Field(default=5.0, description="Deadline of one POST, at most 1h.")
    max_retries: int = Field(
        default=5, ge=0, le=100, description="Retries of a failed POST (0 to 100)."
    )
    retry_max_wait: Grace = Field(
        default=30.0, description="Cap on the back-off between tries, at most 1h."
    )
    queue_size: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Alerts waiting for delivery; the oldest are dropped (1 to 1,000,000).",
    )
    resend_every: Timeout = Field(
        default=60.0,
        description="Firing alerts are posted again this often (Alertmanager "
        "resolves alerts it has not heard of for a while); at most 1d.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: SecretStr) -> SecretStr:
        if not re.fullmatch(r"https?://\S+", url.get_secret_value()):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:9093")
        return url

    @field_serializer("url", when_used="json")
    def _masked_url(self, url: SecretStr) -> str:
        return mask_url(url.get_secret_value())


class MonitoringSpec(_Spec):
    """Alert rules, their delivery, the health check's patience, and traces."""

    alerts: tuple[AlertSpec, ...] = ()
    evaluation_interval: Grace = Field(
        default=1.0, description="How often the alert rules are evaluated, at most 1h."
    )
    baseline: str | None = Field(
        default=None,
        description="JSON file of per-provider p95 seconds for above_baseline rules: "
        '{"api": {"first_chunk_seconds": 0.8, "total_seconds": 4.0}}.',
    )
    alertmanager: AlertmanagerSpec | None = None
    stale_after: LongTimeout = Field(
        default=300.0,
        description="/healthz answers 503 once reloads have failed for this long; at most 7d.",
    )
    traces: StrictBool = Field(
        default=False,
        description="OpenTelemetry spans per request and reload (needs the otel extra).",
    )

    @model_validator(mode="after")
    def _check(self) -> MonitoringSpec:
        if self.evaluation_interval <= 0:
            raise ValueError("evaluation_interval must be longer than 0s; write e.g. 1s")
        seen: set[str] = set()
        for alert in self.alerts:
            if alert.label in seen:
                raise ValueError(f"two alerts are named {alert.label!r}; give one of them a name:")
            seen.add(alert.label)
        return self


# --------------------------------------------------------------------------- manifest


class Manifest(_Spec):
    """A whole ``providers.yaml``.

    Besides field validation, building one checks the cross references (see
    :func:`reference_problems`). ``provider_kinds`` lists the kinds this model accepts;
    :func:`manifest_model` makes subclasses that add plugin kinds.
    """

    provider_kinds: ClassVar[tuple[str, ...]] = BUILTIN_KIND_NAMES

    version: Literal[1] = Field(description="Manifest format version; 1.")
    default_provider: str | None = Field(
        default=None, description="The provider rt.provider() returns when given no name."
    )
    models: dict[Name, dict[str, ModelId]] = Field(
        default_factory=dict, description="alias -> {provider kind: model id}"
    )
    cache: dict[Name, RegionSpec] = Field(
        default_factory=dict,
        description="dogpile.cache regions; `providers` and `cli_paths` are used by provcfg.",
    )
    pools: dict[Name, PoolSpec] = Field(default_factory=dict)
    providers: dict[Name, ProviderSpec] = Field(min_length=1)
    monitoring: MonitoringSpec = MonitoringSpec()
    warm: WarmLimitsSpec = Field(
        default=WarmLimitsSpec(),
        description="Runtime-wide limits of warm agent processes (providers.<name>.warm).",
    )

    @model_validator(mode="after")
    def _check_references(self, info: ValidationInfo) -> Manifest:
        if isinstance(info.context, Mapping) and info.context.get(SKIP_REFERENCE_CHECKS):
            return self
        problems = reference_problems(self.model_dump(), type(self).provider_kinds)
        if problems:
            raise ValueError(
                "; ".join(".".join(map(str, loc)) + f": {msg}" for loc, msg, _ in problems)
            )
        return self


# --------------------------------------------------------------------------- plugin kinds

# Generated Manifest classes, one per set of installed kinds. Process-wide on purpose:
# a class is a pure function of the (kind, spec model) pairs, building one costs tens of
# milliseconds, and pydantic classes are never freed anyway; no runtime state lives here.
_MODELS: dict[tuple[tuple[str, type[BaseModel]], ...], type[Manifest]] = {}
_BUILTIN_SPECS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("claude-code", ClaudeCodeSpec),
    ("opencode", OpenCodeSpec),
    ("codex", CodexSpec),
    ("anthropic-api", AnthropicApiSpec),
)


def manifest_model(kinds: Sequence[tuple[str, type[BaseModel]]]) -> type[Manifest]:
    """The Manifest model whose ``providers`` accept exactly these (kind name, spec model) pairs.

    The built-in kinds give :class:`Manifest` itself; other sets give a memoized subclass
    (classes are pure functions of the spec models, so the memo never goes stale).

    Raises:
        TypeError: a spec model does not declare ``kind: Literal["<its kind name>"]``.
    """
    key = tuple(kinds)
    if key == _BUILTIN_SPECS:
        return Manifest
    cached = _MODELS.get(key)
    if cached is not None:
        return cached
    for name, spec_model in key:
        field = spec_model.model_fields.get("kind")
        if field is None or getattr(field.annotation, "__args__", None) != (name,):
            raise TypeError(
                f"provider kind {name!r}: its spec model {spec_model.__qualname__} must declare "
                f'kind: Literal["{name}"]'
            )
    members = tuple(spec for _, spec in key)
    union: Any = Union[members] if len(members) > 1 else members[0]  # noqa: UP007
    provider_type: Any = (
        Annotated[union, Field(discriminator="kind")] if len(members) > 1 else union
    )
    model = create_model(
        "Manifest",
        __base__=Manifest,
        __module__=__name__,
        __doc__=Manifest.__doc__,
        providers=(dict[Name, provider_type], Field(min_length=1)),
    )
    model.provider_kinds = tuple(name for name, _ in key)
    _MODELS[key] = model
    return model


# --------------------------------------------------------------------------- references

Loc = tuple[str | int, ...]
ReferenceProblem = tuple[Loc, str, bool]
"""(loc, message, at_key): ``at_key`` means the problem points at the key, not its value."""

_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")


def looks_like_model_id(name: str) -> bool:
    """Whether ``name`` reads as a complete model id rather than a mistyped alias.

    Ids contain a digit or one of ``- / : .`` (``claude-sonnet-4-5``, ``anthropic/claude``,
    ``o3``); a bare word such as ``sonet`` is taken for an alias.
    """
    return bool(_MODEL_ID.fullmatch(name)) and any(c.isdigit() or c in "-/:." for c in name)


def _listed(names: Collection[str]) -> str:
    """Names defined by provcfg itself (metrics, kinds): few, so all of them, sorted."""
    return listing(names, 30)


def _suggest(word: str, candidates: Collection[str], fix: str) -> str:
    """``; did you mean 'x'?`` for a close candidate, else ``; <fix>``."""
    return hint(closest(word, candidates), fix)


def _mapping(value: object) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def reference_problems(
    data: Mapping[str, Any], kinds: Collection[str], suggester: Suggester | None = None
) -> list[ReferenceProblem]:
    """Cross-reference problems of manifest data (raw or dumped); empty when all is well.

    Checks: ``default_provider``, alert ``provider`` and ``fallbacks`` name a provider
    (fallbacks: not itself, not twice, no cycle), each ``pool:`` names
    a pool, each provider ``model:`` is an alias with an id for its kind or a plausible model
    id, ``models`` keys are known kinds, alias names are unique ignoring case, and the
    ``providers`` region (which holds live objects) is in memory. Values of the wrong type
    are skipped: field validation reports those, and so is a provider of an unknown kind
    (its kind is the one problem). Messages list a handful of the names that exist and
    suggest the closest one, within ``suggester``'s budget (a fresh one when None).
    """
    return list(_references(data, kinds, suggester or Suggester()))


@dataclass(frozen=True, slots=True)
class _Names:
    """The names one manifest declares, each prepared once for did-you-mean and listing."""

    providers: Vocabulary
    pools: Vocabulary
    aliases: Vocabulary
    kinds: Vocabulary
    suggester: Suggester

    def unknown(self, what: str, word: str, names: Vocabulary, fix: str) -> str:
        """``no <what> named 'x' (<what>s: a, b, ...); did you mean 'y'?``"""
        head = f"no {what} named {quote(word)} ({what}s: {names.listing()})"
        return head + self.suggester.hint(word, names, fix)


def _references(
    data: Mapping[str, Any], kinds: Collection[str], suggester: Suggester
) -> Iterator[ReferenceProblem]:
    providers = _mapping(data.get("providers"))
    pools = _mapping(data.get("pools"))
    models = _mapping(data.get("models"))
    known = _Names(
        providers=Vocabulary(providers),
        pools=Vocabulary(str(p) for p in pools),
        aliases=Vocabulary(str(a) for a in models),
        kinds=Vocabulary(kinds),
        suggester=suggester,
    )

    default = data.get("default_provider")
    if isinstance(default, str) and providers and default not in providers:
        yield (
            ("default_provider",),
            known.unknown("provider", default, known.providers, "name one of the providers"),
            False,
        )
    yield from _unique_aliases(("models",), models)
    for alias, table in models.items():
        if not isinstance(table, Mapping):
            continue
        if not table:
            yield (
                ("models", alias),
                "this alias maps no kinds; add e.g. anthropic-api: <model id>",
                False,
            )
        for kind in table:
            if isinstance(kind, str) and kind not in kinds:
                yield (
                    ("models", alias, kind),
                    f"unknown provider kind {quote(kind)} (kinds: {known.kinds.listing()})"
                    + suggester.hint(kind, known.kinds, "use one of the kinds"),
                    True,
                )
    cap = _mapping(data.get("warm")).get("max_processes", WarmLimitsSpec().max_processes)
    for name, spec in providers.items():
        if isinstance(spec, Mapping):
            yield from _provider_references(name, spec, pools, models, known)
            yield from _warm_references(name, spec, cap)
    names = [n for n in providers if isinstance(n, str)]
    yield from _fallback_problems(providers, names, known)
    region = _mapping(data.get("cache")).get("providers")
    if isinstance(region, Mapping) and region.get("backend") not in (None, "memory"):
        yield (
            ("cache", "providers", "backend"),
            "the providers region holds live provider objects and must be backend: memory",
            False,
        )
    if isinstance(region, Mapping) and region.get("invalidate_on") not in (None, (), []):
        yield (
            ("cache", "providers", "invalidate_on"),
            "the providers region already replaces exactly the instances whose spec changed; "
            "remove invalidate_on here",
            False,
        )
    for name, spec in _mapping(data.get("cache")).items():
        targets = _mapping(spec).get("invalidate_on")
        if not isinstance(targets, list | tuple) or not providers:
            continue
        for i, target in enumerate(targets):
            if isinstance(target, str) and target not in providers:
                yield (
                    ("cache", name, "invalidate_on", i),
                    known.unknown(
                        "provider",
                        target,
                        known.providers,
                        "name one of the providers, or write any",
                    ),
                    False,
                )
    alerts = _mapping(data.get("monitoring")).get("alerts")
    if isinstance(alerts, list | tuple):
        for i, alert in enumerate(alerts):
            target = _mapping(alert).get("provider")
            if isinstance(target, str) and providers and target not in providers:
                yield (
                    ("monitoring", "alerts", i, "provider"),
                    known.unknown("provider", target, known.providers, "name one of the providers"),
                    False,
                )
            pool = _mapping(alert).get("pool")
            if isinstance(pool, str) and pool not in pools:
                yield (
                    ("monitoring", "alerts", i, "pool"),
                    known.unknown("pool", pool, known.pools, "name one of the pools"),
                    False,
                )


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _warm_references(name: str, spec: Mapping[str, Any], cap: object) -> Iterator[ReferenceProblem]:
    warm = _mapping(spec.get("warm"))
    uses = warm.get("max_uses")
    if spec.get("kind") == "claude-code" and _whole(uses) and uses != 1:
        yield (
            ("providers", name, "warm", "max_uses"),
            "a Claude Code spare serves one conversation; remove max_uses or set it to 1 "
            "(provider.session() holds one process for many turns)",
            False,
        )
    spares = warm.get("spares")
    # Only when both are within their own ranges: a value past its range already has
    # its problem, and one problem per value is the rule (docs/manifest.md, Ranges).
    if _whole(spares) and _whole(cap) and cap <= WARM_MAX and cap < spares <= WARM_MAX:  # type: ignore[operator]
        yield (
            ("providers", name, "warm", "spares"),
            f"{spares} spares is above the runtime cap warm.max_processes: {cap}; lower spares "
            f"or raise warm.max_processes (each warm process holds 90-560 MiB: docs/clis.md)",
            False,
        )


def _fallbacks_of(spec: object) -> list[str]:
    listed = _mapping(spec).get("fallbacks")
    if not isinstance(listed, list | tuple):
        return []
    return [f for f in listed if isinstance(f, str)]


def _fallback_problems(
    providers: Mapping[Any, Any], names: list[str], known: _Names
) -> Iterator[ReferenceProblem]:
    """Unknown, repeated and self fallbacks; then every cycle, reported once where it closes."""
    edges: dict[str, list[str]] = {}
    for name in names:
        listed = _mapping(providers[name]).get("fallbacks")
        if not isinstance(listed, list | tuple):
            continue
        seen: set[str] = set()
        for i, target in enumerate(listed):
            if not isinstance(target, str):
                continue
            loc: Loc = ("providers", name, "fallbacks", i)
            if target == name:
                yield (loc, f"provider {quote(name)} cannot fall back to itself; remove it", False)
            elif target not in providers:
                # No list of every provider here: with many bad entries that would
                # make the output quadratic in the manifest's size.
                yield (
                    loc,
                    f"no provider named {quote(target)}"
                    + known.suggester.hint(target, known.providers, "name one of the providers"),
                    False,
                )
            elif target in seen:
                yield (loc, f"{quote(target)} is listed twice; remove one", False)
            else:
                edges.setdefault(name, []).append(target)
            seen.add(target)
    if not edges:
        return  # no fallback names another provider: no cycle (the common manifest)
    # A cycle (a -> b -> a) would send a request round in circles: report each once,
    # at the fallback entry that closes it. Iterative depth-first search: a hostile
    # manifest's chain of thousands of providers must not exhaust the recursion limit.
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[frozenset[str]] = set()
    for root in names:
        if root in state:
            continue
        path: list[str] = [root]
        state[root] = 1
        stack: list[Iterator[tuple[int, str]]] = [iter(enumerate(_fallbacks_of(providers[root])))]
        while stack:
            node = path[-1]
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            i, target = step
            if target not in edges.get(node, ()):
                continue
            if state.get(target) == 1:
                cycle = path[path.index(target) :]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    shown = [*cycle, target]
                    if len(shown) > 7:  # a hostile chain: keep the message short
                        shown = [*shown[:3], f"... ({len(cycle)} providers) ...", *shown[-2:]]
                    loop = " -> ".join(shown)
                    yield (
                        ("providers", node, "fallbacks", i),
                        f"fallback cycle {loop}; remove one of these fallbacks",
                        False,
                    )
            elif target not in state:
                state[target] = 1
                path.append(target)
                stack.append(iter(enumerate(_fallbacks_of(providers[target]))))


def _unique_aliases(loc: Loc, table: Mapping[Any, Any]) -> Iterator[ReferenceProblem]:
    seen: dict[str, str] = {}
    for alias in table:
        if not isinstance(alias, str):
            continue
        other = seen.setdefault(alias.casefold(), alias)
        if other != alias:
            yield (
                (*loc, alias),
                f"alias {quote(alias)} differs from {quote(other)} only by case; "
                "alias names must be unique ignoring case",
                True,
            )


def _provider_references(
    name: str,
    spec: Mapping[str, Any],
    pools: Mapping[Any, Any],
    models: Mapping[Any, Any],
    known: _Names,
) -> Iterator[ReferenceProblem]:
    loc: Loc = ("providers", name)
    pool = spec.get("pool")
    if isinstance(pool, str) and pool not in pools:
        yield (
            (*loc, "pool"),
            known.unknown("pool", pool, known.pools, "declare it under pools:"),
            False,
        )
    own = _mapping(spec.get("models"))
    yield from _unique_aliases((*loc, "models"), own)
    model = spec.get("model")
    kind = spec.get("kind")
    # A provider of an unknown kind has one problem, its kind: which fields and model
    # ids it needs cannot be known.
    if not isinstance(model, str) or model in own or kind not in known.kinds.names:
        return
    if model in models:
        table = models[model]
        if isinstance(table, Mapping) and table and kind not in table:
            yield (
                (*loc, "model"),
                f"alias {quote(model)} has no model id for kind {kind!r}; add {kind}: <model id> "
                f"under models.{_short(model)}, or give a complete model id",
                False,
            )
        return
    if spec.get("unknown_models") == "error":
        aliases = known.aliases if not own else Vocabulary([*known.aliases.names, *map(str, own)])
        yield (
            (*loc, "model"),
            f"unknown model alias {quote(model)} (aliases: {aliases.listing()})"
            + known.suggester.hint(
                model, aliases, "with unknown_models: error the model must be an alias"
            ),
            False,
        )
    elif not looks_like_model_id(model):
        aliases = known.aliases if not own else Vocabulary([*known.aliases.names, *map(str, own)])
        yield (
            (*loc, "model"),
            f"unknown model alias {quote(model)}"
            + known.suggester.hint(
                model,
                aliases,
                "declare it under models: or give a complete model id such as claude-sonnet-4-5",
            ),
            False,
        )


def _short(name: str) -> str:
    return name if len(name) <= MAX_WORD else quote(name)
