"""Stable digests of specs: what decides that a part of the Runtime can be reused.

A digest is the sha256 of the canonical JSON of a spec. Secrets contribute a keyed
fingerprint (HMAC-SHA256) instead of their value, so a changed API key still
changes the digest while the digest itself reveals nothing usable: it is never a
plain hash of the secret. The key is ``PROVCFG_FINGERPRINT_KEY`` when set (set it
to the same value in every process that shares a redis region), else a constant,
so that two processes with the same manifest agree on their digests.

Never ``hash()`` (salted per process) nor ``str()`` (leaks secrets, not canonical).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

if TYPE_CHECKING:
    from provcfg._manifest import Manifest

__all__ = ["ManifestDigests", "canonical", "combine_digests", "spec_digest"]

_DEFAULT_KEY = b"provcfg/spec-digest/v1"


def _fingerprint_key() -> bytes:
    key = os.environ.get("PROVCFG_FINGERPRINT_KEY")
    return key.encode() if key else _DEFAULT_KEY


_SCALARS = (str, int, float, bool, type(None))
# Sorted field names per model class. Process-wide on purpose: a pure function of the
# class (classes are never redefined), read on every load for every spec.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def canonical(value: Any, *, key: bytes | None = None) -> Any:
    """Turn a spec (or any nested value) into JSON-ready data with secrets fingerprinted."""
    # Exact-type checks first: this runs for every field of every spec on each load,
    # and isinstance against ABCs (Mapping, BaseModel) costs several times more.
    kind = type(value)
    if kind in _SCALARS:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is not None:  # a model class seen before (no isinstance against the ABC)
        fields = value.__dict__
        return {name: canonical(fields[name], key=key) for name in names}
    if kind is dict:
        return {str(k): canonical(v, key=key) for k, v in sorted(value.items())}
    if kind is tuple or kind is list:
        return [canonical(v, key=key) for v in value]
    if kind is SecretStr:
        mac = hmac.new(key or _fingerprint_key(), value.get_secret_value().encode(), "sha256")
        return {"$secret": mac.hexdigest()[:32]}
    if isinstance(value, BaseModel):
        # Iterate declared fields (not model_dump) so SecretStr stays recognizable.
        names = _FIELD_NAMES[kind] = tuple(sorted(kind.model_fields))
        fields = value.__dict__
        return {name: canonical(fields[name], key=key) for name in names}
    if isinstance(value, SecretStr):
        return canonical(SecretStr(value.get_secret_value()), key=key)
    if isinstance(value, Mapping):
        return {str(k): canonical(v, key=key) for k, v in sorted(value.items())}
    if isinstance(value, frozenset | set):
        return sorted((canonical(v, key=key) for v in value), key=json.dumps)
    if isinstance(value, list | tuple):
        return [canonical(v, key=key) for v in value]
    if isinstance(value, _SCALARS):
        return value
    return str(value)


def spec_digest(value: Any) -> str:
    """sha256 hex digest of the canonical JSON of ``value`` (secrets fingerprinted)."""
    key = _fingerprint_key()
    # canonical() already sorts every mapping's keys (and a model's fields).
    text = json.dumps(canonical(value, key=key), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def combine_digests(*parts: str | None) -> str:
    """One digest of several digests (or short plain strings): cheap, order-sensitive.

    For identities made of parts that are already digests: hashing their joined hex
    costs a fraction of walking the specs again.
    """
    text = "\x1f".join("\x00" if p is None else p for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ManifestDigests:
    """Every part's digest, computed once per build (each spec is walked once)."""

    manifest: str
    regions: dict[str, str]
    pools: dict[str, str]
    providers: dict[str, str]

    @staticmethod
    def table(ids: Mapping[str, str]) -> str:
        """Digest of a model table (alias -> id)."""
        text = json.dumps(sorted(ids.items()), separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def of(cls, m: Manifest) -> ManifestDigests:
        regions = {name: spec_digest(spec) for name, spec in m.cache.items()}
        pools = {name: spec_digest(spec) for name, spec in m.pools.items()}
        providers = {name: spec_digest(spec) for name, spec in m.providers.items()}
        whole = spec_digest(
            {
                "version": m.version,
                "default_provider": m.default_provider,
                "models": m.models,
                "monitoring": m.monitoring,
                "cache": regions,
                "pools": pools,
                "providers": providers,
                "fields": sorted(type(m).model_fields),
            }
        )
        return cls(whole, regions, pools, providers)
