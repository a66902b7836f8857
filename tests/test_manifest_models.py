"""The manifest models used directly from Python: checks, durations, URL masking, model ids."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from provcfg._manifest import (
    AlertSpec,
    Manifest,
    _format_duration,
    looks_like_model_id,
    mask_url,
    parse_duration,
)
from tests.support_manifest import REDIS_PASSWORD, assert_no_secret


def _data(**extra: Any) -> dict[str, Any]:
    return {"version": 1, "providers": {"api": {"kind": "anthropic-api"}}, **extra}


def test_direct_construction_checks_references() -> None:
    """Manifest.model_validate runs the cross-reference checks too (one combined error)."""
    with pytest.raises(ValidationError) as info:
        Manifest.model_validate(
            _data(
                default_provider="apx",
                pools={"p": {}},
                providers={"api": {"kind": "anthropic-api", "pool": "q", "model": "sonet"}},
                models={"sonnet": {"anthropic-api": "claude-x-1"}},
            )
        )
    text = str(info.value)
    assert "default_provider: no provider named 'apx'" in text
    assert "providers.api.pool: no pool named 'q'" in text
    assert "did you mean 'sonnet'?" in text


def test_valid_direct_construction_and_alias_resolution() -> None:
    """A consistent manifest builds; aliases with an id for the kind and plain ids are accepted."""
    manifest = Manifest.model_validate(
        _data(
            models={"fast": {"anthropic-api": "claude-haiku-4-5"}},
            providers={
                "api": {"kind": "anthropic-api", "model": "fast"},
                "c": {"kind": "codex", "model": "gpt-5-codex", "models": {"big": "o3"}},
                "o": {"kind": "opencode", "model": "big2", "models": {"big2": "x/y"}},
            },
        )
    )
    assert manifest.providers["api"].model == "fast"


def test_providers_region_must_be_memory() -> None:
    """The providers cache region holds live objects, so only the memory backend is allowed."""
    with pytest.raises(ValidationError, match="must be backend: memory"):
        Manifest.model_validate(_data(cache={"providers": {"backend": "file", "path": "/tmp/x"}}))


def test_alert_needs_a_threshold() -> None:
    """An alert without above/below would never fire, so it is refused."""
    with pytest.raises(ValidationError, match="add above"):
        AlertSpec.model_validate({"metric": "error_rate"})
    assert AlertSpec.model_validate({"metric": "error_rate", "below": 1}).below == 1


@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (0.25, "250ms"),
        (30.0, "30s"),
        (300.0, "5m"),
        (3600.0, "1h"),
        (86400.0, "1d"),
        (90.0, "90s"),
        (0.009, "9ms"),
        (1e-7, 1e-7),
        (0.0, "0ms"),
    ],
)
def test_durations_format_back_exactly(seconds: float, written: object) -> None:
    """Durations are written with the largest exact unit and parse back to the same float."""
    assert _format_duration(seconds) == written
    assert parse_duration(written) == seconds


@pytest.mark.parametrize("bad", ["5x", "-1s", "nan", "inf", True, "1e999"])
def test_bad_durations_are_refused_without_echo(bad: object) -> None:
    """Invalid, negative and non-finite durations raise, and the message never repeats the value."""
    with pytest.raises(ValueError) as info:
        parse_duration(bad)
    assert str(bad) not in str(info.value)


def test_mask_url_hides_only_the_password() -> None:
    """Passwords (also with '/' in them) and secret query values are masked; the rest stays."""
    cases = {
        f"redis://:{REDIS_PASSWORD}@h:6379/0": "redis://:**********@h:6379/0",
        f"redis://user:{REDIS_PASSWORD}/x@h/1": "redis://user:**********@h/1",
        f"rediss://{REDIS_PASSWORD}@h": "rediss://**********@h",
        f"redis://h:6379/0?password={REDIS_PASSWORD}&db=1": "redis://h:6379/0?password=**********&db=1",
        "redis://127.0.0.1:6379/0": "redis://127.0.0.1:6379/0",
        f"unix://:{REDIS_PASSWORD}@/run/redis.sock": "unix://:**********@/run/redis.sock",
        REDIS_PASSWORD: "**********",
    }
    for url, masked in cases.items():
        assert mask_url(url) == masked
        assert_no_secret(mask_url(url))


@pytest.mark.parametrize(
    ("name", "is_id"),
    [
        ("claude-sonnet-4-5", True),
        ("anthropic/claude", True),
        ("o3", True),
        ("gpt-5", True),
        ("sonnet", False),
        ("sonet", False),
        ("", False),
        ("has space-1", False),
    ],
)
def test_looks_like_model_id(name: str, is_id: bool) -> None:
    """Ids contain a digit or - / : . ; a bare word is taken for an alias."""
    assert looks_like_model_id(name) is is_id
