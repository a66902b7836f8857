"""Cache key namespacing and hashing."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provcfg._cache import MAX_KEY_LENGTH, make_key_mangler


def test_short_safe_keys_get_the_region_and_namespace_prefix() -> None:
    """A printable ASCII key is kept readable behind provcfg:{region}:{namespace}:."""
    mangle = make_key_mangler("responses", "3f2a9c")
    assert mangle("api:claude-sonnet") == "provcfg:responses:3f2a9c:api:claude-sonnet"


@pytest.mark.parametrize(
    "key",
    ["has space", "tab\there", "nl\n", "ünïcode", "x" * 300, "#literal", "\x7f"],
)
def test_long_or_unsafe_keys_are_sha256_hashed(key: str) -> None:
    """Keys with spaces, control or non-ASCII characters, '#' or too long become '#'+sha256."""
    mangled = make_key_mangler("r", "ns")(key)
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert mangled == f"provcfg:r:ns:#{digest}"


def test_a_new_namespace_never_reads_the_old_keys() -> None:
    """The same key under two configuration digests maps to two different stored keys."""
    assert make_key_mangler("r", "gen1")("k") != make_key_mangler("r", "gen2")("k")


def test_keys_are_stable_across_processes() -> None:
    """A fresh interpreter (another hash seed) mangles a hashed key to the same string."""
    key = "a key with spaces " * 3
    here = make_key_mangler("r", "ns")(key)
    code = (
        "import sys; from provcfg._cache import make_key_mangler; "
        "print(make_key_mangler('r', 'ns')(sys.argv[1]))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code, key],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout.strip()
    assert there == here


def test_non_string_keys_are_refused() -> None:
    """A non-str key raises TypeError rather than being str()-ed (unstable, may hold secrets)."""
    with pytest.raises(TypeError, match="must be str"):
        make_key_mangler("r", "ns")(("tuple", 1))  # type: ignore[arg-type]


@pytest.mark.parametrize("namespace", ["", "has space", "a" * 65, "colon:inside", "#x"])
def test_bad_namespace_is_refused(namespace: str) -> None:
    """The namespace must be 1-64 characters of letters, digits, _ . - so keys stay unambiguous."""
    with pytest.raises(ValueError, match="namespace"):
        make_key_mangler("r", namespace)


@given(key=st.text(max_size=400))
def test_every_mangled_key_fits_memcached(key: str) -> None:
    """Whatever the key, the stored key is printable ASCII without spaces and <= 250 characters."""
    mangled = make_key_mangler("r" * 64, "n" * 64)(key)
    assert len(mangled) <= MAX_KEY_LENGTH
    assert mangled.isascii()
    assert mangled.isprintable()
    assert " " not in mangled
