"""A CLI that echoes a secret env value in an error event: the chunk shows it masked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provcfg._errors import ProviderError
from provcfg._manifest import CodexSpec
from provcfg._providers.codex import CodexProvider
from tests.support_fake_cli import make_provider

SECRET = "sk-audit-env-7d2e91"


def _line(etype: str, **fields: object) -> str:
    return json.dumps({"type": etype, **fields}) + "\n"


async def test_error_chunks_mask_env_secrets(tmp_path: Path) -> None:
    """Error chunks (item errors and stream errors) never carry a declared env value."""
    script = (
        _line("thread.started", thread_id="th_1")
        + _line("turn.started")
        + _line("item.completed", item={"id": "i0", "type": "error", "message": f"k={SECRET}"})
        + _line("error", message=f"reconnecting with {SECRET}")
        + _line("turn.failed", error={"message": f"auth failed for {SECRET}"})
    )
    provider, _ = make_provider(
        CodexProvider, CodexSpec, "codex", tmp_path, script, env={"TOKEN": SECRET}
    )
    chunks = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in provider.stream("hi"):
            chunks.append(chunk)
    await provider.aclose()
    errors = [c for c in chunks if c.type == "error"]
    assert len(errors) == 2
    for chunk in errors:
        assert "**********" in chunk.data["message"]
        assert SECRET not in json.dumps(chunk.as_dict())
    assert SECRET not in str(caught.value)
