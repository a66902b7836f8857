"""The public API for provider authors: everything a provider kind needs, in one module.

A provider kind is a :class:`ProviderKind` (its name, its pydantic spec model and a
factory) registered under the entry-point group ``provcfg.providers``. The runtime
calls the factory with a :class:`ProviderContext` (data only: the spec, the model
table, the pool, the CLI lookup and the metrics hook) and drives the returned object
through the :class:`Provider` protocol. Subclass :class:`BaseProvider` to get
``complete()``, lazy preparation and in-flight tracking for free.

The conformance suite (:class:`ProviderConformance`, :class:`Request`,
:func:`make_context`) is re-exported from :mod:`provcfg.testing` on first access,
so importing this module never imports pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provcfg._entrypoints import GROUP as ENTRY_POINT_GROUP
from provcfg._errors import ErrorKind, ProvcfgError, ProviderError, RuntimeClosedError
from provcfg._providers.base import (
    BaseProvider,
    Chunk,
    ChunkType,
    KindRegistry,
    Provider,
    ProviderContext,
    ProviderFactory,
    ProviderKind,
    Result,
    Session,
    Timings,
    Usage,
)

if TYPE_CHECKING:
    from provcfg.testing import ProviderConformance, Request, make_context

__all__ = [
    "ENTRY_POINT_GROUP",
    "BaseProvider",
    "Chunk",
    "ChunkType",
    "ErrorKind",
    "KindRegistry",
    "ProvcfgError",
    "Provider",
    "ProviderConformance",
    "ProviderContext",
    "ProviderError",
    "ProviderFactory",
    "ProviderKind",
    "Request",
    "Result",
    "RuntimeClosedError",
    "Session",
    "Timings",
    "Usage",
    "make_context",
]

_FROM_TESTING = frozenset({"ProviderConformance", "Request", "make_context"})


def __getattr__(name: str) -> Any:
    if name in _FROM_TESTING:
        import provcfg.testing

        value = getattr(provcfg.testing, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'provcfg.plugin' has no attribute {name!r}")
