"""The effective manifest as text: what ``provcfg show`` prints.

Values are those after ``${VAR}`` substitution and ``PROVCFG_`` overrides; durations are
written back as ``30s``/``5m``; every secret is ``**********`` (a URL, of redis, memcached
or a provider's base_url, keeps its scheme, host and database and hides only its
password). The YAML output validates again: strings that YAML would read as something
else are quoted, and a literal ``${`` in a value is written ``$${`` so it is not taken
for a variable.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from provcfg import _yaml
from provcfg._manifest import Manifest, mask_url

__all__ = ["effective_data", "render_manifest"]


def effective_data(manifest: Manifest) -> dict[str, Any]:
    """JSON-compatible data of ``manifest``, secrets masked, ``${`` escaped as ``$${``."""
    data: dict[str, Any] = manifest.model_dump(mode="json")
    # The discriminator first, as people write it: `kind:` of a provider, `backend:` of a region.
    for section, tag in (("providers", "kind"), ("cache", "backend")):
        for name, spec in data.get(section, {}).items():
            if isinstance(spec, dict) and tag in spec:
                data[section][name] = {tag: spec[tag], **spec}
    # Only a redis URL is a SecretStr, but any URL may carry a password (memcached://u:pw@h,
    # a base_url of http://u:pw@host): mask the userinfo of every one.
    for section, field in (("providers", "base_url"), ("cache", "url")):
        for spec in data.get(section, {}).values():
            if isinstance(spec, dict) and isinstance(spec.get(field), str):
                spec[field] = mask_url(spec[field])
    escaped: dict[str, Any] = _escape(data)
    return escaped


def render_manifest(manifest: Manifest, fmt: Literal["yaml", "json"] = "yaml") -> str:
    """``manifest`` as YAML (default) or JSON text, ending in a newline."""
    data = effective_data(manifest)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return _yaml.dump(data)


def _escape(node: Any) -> Any:
    if isinstance(node, str):
        return node.replace("${", "$${") if "${" in node else node
    if isinstance(node, dict):
        return {key: _escape(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_escape(value) for value in node]
    return node
