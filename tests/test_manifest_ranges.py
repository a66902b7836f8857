"""Every duration and size has a documented, enforced range; the JSON Schema says the same.

A value past a field's maximum (``socket_timeout: 1e300``, ``ttl: 400d``,
``max_size: 10**30``) is a positioned validation error naming the limit, never an
OverflowError or a server refusing every write at run time. The table below places each
spec model in a manifest, so every numeric field of every model is tried at its maximum
(valid) and just past it (invalid); a model or field added without a range, or without a
row in docs/manifest.md's range table, fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from provcfg._errors import ManifestError
from provcfg._manifest import _format_duration
from provcfg._schema import manifest_schema
from tests.support_manifest import ROOT, load_text

# Where each spec model sits in a manifest: a template with {field} and {value}.
PLACES: dict[str, str] = {
    "AnthropicApiSpec": "providers:\n  p: {{kind: anthropic-api, {field}: {value}}}\n",
    "ClaudeCodeSpec": "providers:\n  p: {{kind: claude-code, {field}: {value}}}\n",
    "OpenCodeSpec": "providers:\n  p: {{kind: opencode, {field}: {value}}}\n",
    "CodexSpec": "providers:\n  p: {{kind: codex, {field}: {value}}}\n",
    "MemoryRegionSpec": "cache:\n  r: {{backend: memory, {field}: {value}}}\n",
    "FileRegionSpec": "cache:\n  r: {{backend: file, path: /tmp/x, {field}: {value}}}\n",
    "RedisRegionSpec": "cache:\n  r: {{backend: redis, url: 'redis://h', {field}: {value}}}\n",
    "MemcachedRegionSpec": (
        "cache:\n  r: {{backend: memcached, url: 'memcached://h:1', {field}: {value}}}\n"
    ),
    "PoolSpec": "pools:\n  q: {{{field}: {value}}}\n",
    "TimeoutsSpec": "pools:\n  q: {{timeouts: {{{field}: {value}}}}}\n",
    "AlertSpec": (
        "monitoring:\n  alerts:\n"
        "    - {{metric: first_chunk_seconds, above: 1, {extra}{field}: {value}}}\n"
    ),
    "AlertmanagerSpec": (
        "monitoring:\n  alertmanager: {{url: 'http://127.0.0.1:9093', {field}: {value}}}\n"
    ),
    "MonitoringSpec": "monitoring:\n  {field}: {value}\n",
    "BreakerSpec": "providers:\n  p: {{kind: codex, breaker: {{{field}: {value}}}}}\n",
    "WarmSpec": (
        "providers:\n  p: {{kind: opencode, warm: {{{field}: {value}}}}}\n"
        "warm: {{max_processes: 256}}\n"
    ),
    "WarmLimitsSpec": "warm:\n  {field}: {value}\n",
}
EXTRA = {("AlertSpec", "for"): "window: 1d, "}
"""Other keys a field needs beside it (``for:`` may not be longer than ``window:``)."""
UNBOUNDED = {("AlertSpec", "above"), ("AlertSpec", "below")}
"""Alert thresholds compare with any metric value: any finite number (checked below)."""
BASE = "version: 1\nproviders:\n  base: {kind: codex}\n"


def _numeric(schema: Any) -> Iterator[dict[str, Any]]:
    """Every number or integer sub-schema of a property's schema."""
    if isinstance(schema, dict):
        if schema.get("type") in ("number", "integer"):
            yield schema
        for value in schema.values():
            yield from _numeric(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _numeric(value)


def _ranged_fields() -> list[tuple[str, str, float, bool]]:
    """(model, field, maximum, is_duration) for every numeric field of every model."""
    found = []
    for model, definition in manifest_schema()["$defs"].items():
        for field, prop in definition.get("properties", {}).items():
            numbers = list(_numeric(prop))
            if not numbers or (model, field) in UNBOUNDED:
                continue
            maxima = {n.get("maximum") for n in numbers}
            assert None not in maxima, f"{model}.{field} has no maximum in the schema"
            (maximum,) = maxima
            found.append((model, field, float(maximum), "pattern" in json.dumps(prop)))
    return found


RANGED = _ranged_fields()


def _manifest(model: str, field: str, value: object) -> str:
    extra = EXTRA.get((model, field), "")
    place = PLACES[model].format(field=field, value=value, extra=extra)
    if place.startswith("providers:"):
        return BASE + place.removeprefix("providers:\n")
    return BASE + place


def test_every_model_with_numbers_has_a_place() -> None:
    """Each model holding a numeric field is placed by the table (new models fail here)."""
    assert {model for model, *_ in RANGED} <= set(PLACES)
    assert len(RANGED) >= 30


@pytest.mark.parametrize(
    ("model", "field", "maximum", "duration"),
    [pytest.param(*row, id=f"{row[0]}.{row[1]}") for row in RANGED],
)
def test_maximum_is_accepted_and_just_past_it_is_a_positioned_error(
    model: str, field: str, maximum: float, duration: bool
) -> None:
    """At its maximum a field validates; past it, one problem at the value names the limit."""
    at_max = int(maximum) if maximum.is_integer() else maximum
    load_text(_manifest(model, field, at_max))
    past = maximum + 1 if not duration else maximum * 2
    text = _manifest(model, field, int(past) if not duration else past)
    with pytest.raises(ManifestError) as info:
        load_text(text)
    (problem,) = info.value.problems
    assert problem.loc.endswith(f".{field}")
    line = text.splitlines()[problem.line - 1]
    assert line[problem.column - 1 :].startswith(str(int(past) if not duration else past))
    if duration or field != "quantile":
        assert "must be at most" in problem.message, problem.message


@pytest.mark.parametrize(
    ("model", "field"),
    [pytest.param(m, f, id=f"{m}.{f}") for m, f, _, duration in RANGED if duration],
)
@pytest.mark.parametrize("value", ["1e300", ".inf", "400d", "9999999999999h"])
def test_huge_durations_are_errors_not_overflows(model: str, field: str, value: str) -> None:
    """1e300, .inf, 400d: a validation error, never OverflowError or a huge float downstream."""
    with pytest.raises(ManifestError) as info:
        load_text(_manifest(model, field, value))
    (problem,) = info.value.problems
    assert problem.loc.endswith(f".{field}") and problem.line > 0


@pytest.mark.parametrize("value", ["1e300", "99999999999999999999999999999", ".inf", ".nan"])
def test_huge_sizes_are_errors(value: str) -> None:
    """A size far past its range (or not finite) is a positioned error for every size field."""
    for model, field, _maximum, duration in RANGED:
        if duration:
            continue
        with pytest.raises(ManifestError) as info:
            load_text(_manifest(model, field, value))
        (problem,) = info.value.problems
        assert problem.loc.endswith(f".{field}"), (model, field, problem)


@pytest.mark.parametrize("field", ["above", "below"])
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_alert_thresholds_are_finite(field: str, value: str) -> None:
    """An alert threshold must be a finite number (an infinite one would never fire)."""
    text = BASE + f"monitoring:\n  alerts:\n    - {{metric: error_rate, {field}: {value}}}\n"
    with pytest.raises(ManifestError, match="must be a finite number"):
        load_text(text)


def test_env_override_past_the_range_names_the_variable() -> None:
    """PROVCFG_ overrides meet the same ranges; the problem names the variable."""
    text = BASE + "cache:\n  r: {backend: redis, url: 'redis://h'}\n"
    with pytest.raises(ManifestError) as info:
        load_text(text, environ={"PROVCFG_CACHE__R__SOCKET_TIMEOUT": "1e300"})
    (problem,) = info.value.problems
    assert problem.line == 0 and "PROVCFG_CACHE__R__SOCKET_TIMEOUT" in problem.message
    assert "must be at most 1d" in problem.message


def _limit_text(maximum: float, duration: bool) -> str:
    if duration:
        return str(_format_duration(maximum))
    return f"{int(maximum):,}" if maximum.is_integer() else f"{maximum:g}"


def test_docs_state_every_range() -> None:
    """docs/manifest.md's range table has a row for every field naming its maximum."""
    text = (ROOT / "docs" / "manifest.md").read_text()
    section = text.split("## Ranges", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    for model, field, maximum, duration in RANGED:
        limit = _limit_text(maximum, duration)
        assert any(re.search(rf"`{field}`", row) and f"{limit}" in row for row in rows), (
            f"docs/manifest.md: no range row for {model}.{field} with {limit}"
        )
