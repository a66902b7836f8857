"""Passwords inside URLs (a provider's base_url, a memcached URL) never reach output or errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import provcfg
from provcfg._errors import ProviderError
from tests.support_services import held_port

PASSWORD = "url-pw-4f1c9a"


def _manifest(tmp_path: Path, port: int, transport: str = "fast") -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text(
        "version: 1\n"
        "cache:\n"
        f"  m: {{backend: memcached, url: 'memcached://u:{PASSWORD}@127.0.0.1:{port}'}}\n"
        "providers:\n"
        "  a: {kind: anthropic-api, api_key: k, max_retries: 0, model: claude-haiku-4-5,\n"
        f"      base_url: 'http://u:{PASSWORD}@127.0.0.1:{port}', transport: {transport}}}\n"
    )
    return path


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_show_masks_url_passwords(tmp_path: Path, fmt: str) -> None:
    """``provcfg show`` masks the password of a memcached URL and of a base_url, as of redis."""
    done = subprocess.run(
        [sys.executable, "-m", "provcfg", "show", "--format", fmt, str(_manifest(tmp_path, 9))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout
    assert "memcached://u:**********@127.0.0.1:9" in done.stdout
    assert "http://u:**********@127.0.0.1:9" in done.stdout


@pytest.mark.parametrize("transport", ["fast", "sdk"])
async def test_provider_error_masks_base_url_password(tmp_path: Path, transport: str) -> None:
    """A request error names the endpoint with its password masked, in message and repr."""
    with held_port() as port:
        async with provcfg.load(_manifest(tmp_path, port, transport)) as rt:
            with pytest.raises(ProviderError) as caught:
                await rt.provider("a").complete("hi")
    error = caught.value
    assert error.kind == "network"
    assert f"http://u:**********@127.0.0.1:{port}/v1/messages" in str(error)
    for text in (str(error), repr(error), repr(error.details), repr(error.args)):
        assert PASSWORD not in text
