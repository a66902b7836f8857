"""provcfg: a configuration-driven runtime for AI coding-agent providers.

``provcfg.load("providers.yaml")`` validates the manifest and materializes it into a
:class:`Runtime`; ``provcfg.watch(path)`` keeps one live across edits. Everything a
user needs is exported here; the submodules are private.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from provcfg._errors import (
    BackendUnavailableError,
    CacheBackendError,
    CLINotFoundError,
    ManifestError,
    ManifestReadError,
    Problem,
    ProvcfgError,
    ProviderError,
    RuntimeClosedError,
    UnknownModelError,
    UnknownProviderError,
    UnknownRegionError,
)

__all__ = [
    "BackendUnavailableError",
    "CLINotFoundError",
    "CacheBackendError",
    "LiveRuntime",
    "Manifest",
    "ManifestError",
    "ManifestReadError",
    "Problem",
    "ProvcfgError",
    "ProviderError",
    "Runtime",
    "RuntimeClosedError",
    "UnknownModelError",
    "UnknownProviderError",
    "UnknownRegionError",
    "__version__",
    "load",
    "load_manifest",
    "manifest_schema",
    "parse_manifest_text",
    "render_manifest",
    "serve_metrics",
    "watch",
]

from provcfg._version import __version__

if TYPE_CHECKING:
    from provcfg._loading import load_manifest, parse_manifest_text
    from provcfg._manifest import Manifest
    from provcfg._monitoring import serve_metrics
    from provcfg._reload import LiveRuntime, watch
    from provcfg._render import render_manifest
    from provcfg._runtime import Runtime, load
    from provcfg._schema import manifest_schema

# The runtime and the watcher are imported on first use so that `import provcfg`
# (and `provcfg validate`) stay cheap.
_LAZY = {
    "load": "provcfg._runtime",
    "Runtime": "provcfg._runtime",
    "watch": "provcfg._reload",
    "LiveRuntime": "provcfg._reload",
    "Manifest": "provcfg._manifest",
    "load_manifest": "provcfg._loading",
    "parse_manifest_text": "provcfg._loading",
    "render_manifest": "provcfg._render",
    "manifest_schema": "provcfg._schema",
    "serve_metrics": "provcfg._monitoring",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'provcfg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
