"""Helpers for the manifest tests: secret markers, a loader wrapper, the real CLI subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from provcfg._errors import ManifestError
from provcfg._loading import parse_manifest_text
from provcfg._manifest import Manifest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "providers.yaml"

# Secret values planted in test manifests; none may ever appear in any output.
API_KEY = "sk-ant-TOPSECRET-4242"
ENV_SECRET = "env-SECRET-value-9191"
REDIS_PASSWORD = "redisPW-SECRET-7070"
SECRETS = (API_KEY, ENV_SECRET, REDIS_PASSWORD)


def yaml_text(text: str) -> str:
    """Dedent a manifest written inline in a test."""
    return textwrap.dedent(text).lstrip("\n")


def load_text(
    text: str | bytes, environ: Mapping[str, str] | None = None, **kw: object
) -> Manifest:
    """parse_manifest_text with an empty environment unless one is given."""
    return parse_manifest_text(
        text,
        file="m.yaml",
        environ={} if environ is None else environ,
        **kw,  # type: ignore[arg-type]
    )


def problems_of(text: str | bytes, environ: Mapping[str, str] | None = None) -> ManifestError:
    """The ManifestError that loading ``text`` raises (the test fails if it loads)."""
    with pytest.raises(ManifestError) as info:
        load_text(text, environ)
    return info.value


def assert_no_secret(*texts: str) -> None:
    """None of the planted secret values appears in any of ``texts``."""
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret leaked: {text!r}"


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment for a provcfg subprocess (no PROVCFG_ or API variables)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``provcfg`` console script; returns the completed process (text mode)."""
    script = Path(sys.executable).with_name("provcfg")
    return subprocess.run(
        [str(script), *args],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
