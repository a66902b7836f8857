"""Spec digests: secrets change the digest but never appear in it."""

from __future__ import annotations

from pydantic import SecretStr

from provcfg._digest import canonical, spec_digest
from provcfg._manifest import AnthropicApiSpec


def test_secret_changes_digest_but_not_visible() -> None:
    """Two specs that differ only in the API key differ in digest; the key is in no output."""
    a = AnthropicApiSpec(kind="anthropic-api", api_key=SecretStr("sk-test-SECRET-A"))
    b = AnthropicApiSpec(kind="anthropic-api", api_key=SecretStr("sk-test-SECRET-B"))
    assert spec_digest(a) != spec_digest(b)
    assert "SECRET" not in repr(canonical(a))
    assert spec_digest(a) == spec_digest(
        AnthropicApiSpec(kind="anthropic-api", api_key=SecretStr("sk-test-SECRET-A"))
    )


def test_field_order_and_equal_values_give_equal_digest() -> None:
    """Canonical JSON ignores mapping order."""
    assert spec_digest({"b": 1, "a": [1, 2]}) == spec_digest({"a": [1, 2], "b": 1})
    assert spec_digest({"a": 1}) != spec_digest({"a": 2})
