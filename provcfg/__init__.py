"""provcfg: a configuration-driven runtime for AI coding-agent providers.

``provcfg.load("providers.yaml")`` validates the manifest and materializes it into a
:class:`Runtime`; ``provcfg.watch(path)`` keeps one live across edits. Everything a
user needs is exported here; the submodules are private.
"""

from __future__ import annotations

from provcfg.errors import (
    BackendUnavailableError,
    CLINotFoundError,
    ManifestError,
    Problem,
    ProvcfgError,
    ProviderError,
    RuntimeClosedError,
    UnknownModelError,
    UnknownProviderError,
)

__all__ = [
    "BackendUnavailableError",
    "CLINotFoundError",
    "ManifestError",
    "Problem",
    "ProvcfgError",
    "ProviderError",
    "RuntimeClosedError",
    "UnknownModelError",
    "UnknownProviderError",
    "__version__",
]

__version__ = "0.1.0"
