"""The public API: exactly the intended names, importable lazily."""

from __future__ import annotations

import provcfg


def test_exported_names_are_exactly_the_intended_ones() -> None:
    """provcfg.__all__ is the curated list; adding or dropping a public name is deliberate."""
    assert sorted(provcfg.__all__) == sorted(
        [
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
    )
    for name in provcfg.__all__:
        assert getattr(provcfg, name) is not None


def test_errors_share_one_root() -> None:
    """Every exported error derives from ProvcfgError so callers can catch one root."""
    for name in provcfg.__all__:
        value = getattr(provcfg, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, provcfg.ProvcfgError), name
