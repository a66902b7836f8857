"""The committed JSON Schema as editors use it: it accepts the example and rejects typos."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "schemas" / "providers.schema.json").read_text())


def test_example_manifest_validates_against_the_committed_schema() -> None:
    """providers.yaml, as an editor's YAML plugin sees it, is valid under the schema."""
    data = yaml.safe_load((ROOT / "providers.yaml").read_text())
    jsonschema.validate(data, SCHEMA)


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        ({"providers": {"api": {"kind": "anthropic-api", "bse_url": "x"}}}, "bse_url"),
        ({"providers": {"c": {"kind": "claude-code", "init": "sometimes"}}}, "sometimes"),
        ({"providers": {"x": {"kind": "no-such-kind"}}}, "no-such-kind"),
        ({"pools": {"p": {"max_connections": 0}}, "providers": {"a": {"kind": "codex"}}}, "0"),
        ({"providers": {"a": {"kind": "codex", "timeout": "5 minutes"}}}, "5 minutes"),
    ],
)
def test_schema_rejects_what_the_validator_rejects(patch: dict[str, object], where: str) -> None:
    """An editor flags an unknown key, a bad enum, an unknown kind, a bad number or duration."""
    data = {"version": 1, **patch}
    with pytest.raises(jsonschema.ValidationError) as info:
        jsonschema.validate(data, SCHEMA)
    assert where in str(info.value)
