"""The JSON Schema of ``providers.yaml``, generated from the manifest models.

Editors use it through the ``# yaml-language-server: $schema=...`` line of the manifest.
This output for the built-in kinds ships inside the package (:func:`installed_schema_path`,
what ``provcfg schema --path`` prints) and in the repository as
``schemas/providers.schema.json``; a test keeps both current, and ``provcfg schema --check``
tells when a copy drifted. Plugin kinds of the registry appear exactly like built-in ones.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provcfg._loading import manifest_model_for

if TYPE_CHECKING:
    from provcfg._kinds import KindRegistry

__all__ = ["SCHEMA_DIALECT", "installed_schema_path", "manifest_schema", "schema_text"]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def manifest_schema(registry: KindRegistry | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a manifest for ``registry``'s kinds.

    Raises:
        ProvcfgError: a provider plugin is broken.
    """
    model = manifest_model_for(registry)
    body = model.model_json_schema(mode="validation")
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "title": "provcfg providers.yaml",
        "description": "Providers, model aliases, cache regions, pools and alerts of provcfg.",
    }
    body.pop("title", None)
    body.pop("description", None)
    schema.update(body)
    _close_pattern_maps(schema)
    return schema


def _close_pattern_maps(node: Any) -> None:
    """Maps keyed by a name pattern reject other keys, as the validator does."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_maps(value)


def schema_text(registry: KindRegistry | None = None) -> str:
    """:func:`manifest_schema` as stable, indented JSON ending in a newline."""
    return json.dumps(manifest_schema(registry), indent=2, ensure_ascii=False) + "\n"


def installed_schema_path() -> Path:
    """The schema of the built-in kinds as shipped inside the installed package.

    A stable file for editors of any project on this machine; it does not know plugin
    kinds (write a schema that does with ``provcfg schema -o FILE``).
    """
    return Path(str(resources.files("provcfg") / "schemas" / "providers.schema.json"))
