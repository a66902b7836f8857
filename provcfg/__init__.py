"""provcfg: a configuration-driven runtime for AI coding-agent providers.

``provcfg.load("providers.yaml")`` validates the manifest and materializes it into a
:class:`Runtime`; ``provcfg.watch(path)`` keeps one live across edits. Everything a
user needs is exported here; the submodules are private.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from provcfg.errors import (
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
    "watch",
]

__version__ = "0.1.0"

if TYPE_CHECKING:
    from provcfg.reload import LiveRuntime, watch
    from provcfg.runtime import Runtime, load

# The runtime and the watcher are imported on first use so that `import provcfg`
# (and `provcfg validate`) stay cheap.
_LAZY = {
    "load": "provcfg.runtime",
    "Runtime": "provcfg.runtime",
    "watch": "provcfg.reload",
    "LiveRuntime": "provcfg.reload",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'provcfg' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
