"""The committed JSON Schema is current and describes what the validator accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from provcfg._providers.base import KindRegistry
from provcfg._schema import SCHEMA_DIALECT, installed_schema_path, manifest_schema, schema_text
from tests.support_manifest import ROOT, run_cli

COMMITTED = ROOT / "schemas" / "providers.schema.json"
PACKAGED = ROOT / "provcfg" / "schemas" / "providers.schema.json"


def test_committed_schema_is_current() -> None:
    """schemas/providers.schema.json equals the generated schema; run `provcfg schema -o` if not."""
    assert COMMITTED.read_text(encoding="utf-8") == schema_text(), (
        "schema drifted: run `provcfg schema -o schemas/providers.schema.json`"
    )


def test_packaged_schema_is_current() -> None:
    """The schema shipped inside the package is the built-in kinds' schema, as generated."""
    assert PACKAGED.read_text(encoding="utf-8") == schema_text(KindRegistry.builtin()), (
        "schema drifted: run `provcfg schema -o provcfg/schemas/providers.schema.json`"
    )


def test_schema_path_prints_the_installed_schema() -> None:
    """`provcfg schema --path` prints one line: an existing file holding the schema."""
    done = run_cli("schema", "--path")
    assert done.returncode == 0, done.stderr
    path = done.stdout.removesuffix("\n")
    assert "\n" not in path and path == str(installed_schema_path())
    assert json.loads(Path(path).read_text(encoding="utf-8")) == manifest_schema(
        KindRegistry.builtin()
    )


def test_schema_path_refuses_other_options() -> None:
    """--path with --check or -o is a usage error (exit 2) that says so."""
    done = run_cli("schema", "--path", "--check")
    assert done.returncode == 2
    assert "--path" in done.stderr


def _defs() -> dict[str, Any]:
    schema = manifest_schema()
    assert schema["$schema"] == SCHEMA_DIALECT
    defs: dict[str, Any] = schema["$defs"]
    return defs


def _accepts_number_and_unit_string(prop: dict[str, Any]) -> bool:
    options = prop.get("anyOf", [])
    flat = [o for opt in options for o in opt.get("anyOf", [opt])]
    types = {o.get("type") for o in flat}
    patterns = [o.get("pattern", "") for o in flat if o.get("type") == "string"]
    return {"number", "string"} <= types and any("ms|s|m|h|d" in p for p in patterns)


def test_durations_accept_numbers_and_unit_strings() -> None:
    """Every duration property accepts a number or a string such as 30s (editors do not flag it)."""
    defs = _defs()
    for model, prop in [
        ("PoolSpec", "keepalive_expiry"),
        ("TimeoutsSpec", "read"),
        ("AnthropicApiSpec", "timeout"),
        ("AnthropicApiSpec", "retry_max_wait"),
        ("MemoryRegionSpec", "ttl"),
        ("AlertSpec", "window"),
    ]:
        assert _accepts_number_and_unit_string(defs[model]["properties"][prop]), (model, prop)


def test_providers_are_a_discriminated_union_of_all_kinds() -> None:
    """The providers map is a oneOf keyed by `kind`, listing every built-in kind."""
    schema = manifest_schema()
    providers = schema["properties"]["providers"]
    assert providers["additionalProperties"] is False  # names must match the pattern
    (spec,) = providers["patternProperties"].values()
    mapping = spec["discriminator"]["mapping"]
    assert set(mapping) == {"claude-code", "opencode", "codex", "anthropic-api"}
    assert schema["required"] == ["version", "providers"]


def test_schema_forbids_unknown_keys_and_names_secrets() -> None:
    """Models forbid unknown keys; secret fields are marked as passwords for editors."""
    defs = _defs()
    assert all(d.get("additionalProperties") is False for d in defs.values() if "properties" in d)
    api_key = defs["AnthropicApiSpec"]["properties"]["api_key"]
    assert any(o.get("format") == "password" for o in api_key["anyOf"])


def test_schema_text_is_stable_json() -> None:
    """Two generations give identical text ending in a newline."""
    first = schema_text()
    assert first == schema_text() and first.endswith("}\n")
    assert json.loads(first)["title"] == "provcfg providers.yaml"
