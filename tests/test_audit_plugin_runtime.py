"""Plugin kinds at run time: a spec declaring only ``kind`` (all docs/manifest.md asks) runs,
and ``provcfg run`` reports a failing factory by provider and kind, not as an internal error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

import provcfg
from provcfg.plugin import BaseProvider, Chunk, KindRegistry, ProviderKind
from tests.support_manifest import clean_env, run_cli


class _MinimalSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["minimal"]


class _MinimalProvider(BaseProvider):
    async def stream(self, prompt: str, **kwargs: Any) -> AsyncIterator[Chunk]:
        yield Chunk("text", prompt.upper())
        yield Chunk("result", data={})


def _registry(factory: Any) -> KindRegistry:
    builtin = KindRegistry.discover()
    kinds = {k.name: k for k in builtin.kinds()}
    kinds["minimal"] = ProviderKind("minimal", _MinimalSpec, factory)
    return KindRegistry(kinds)


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "providers.yaml"
    path.write_text("version: 1\nproviders: {p: {kind: minimal}}\n")
    return path


async def test_minimal_plugin_spec_builds_and_streams(tmp_path: Path) -> None:
    """A spec without model/models/init/unknown_models builds a runtime and streams."""
    async with provcfg.load(_manifest(tmp_path), registry=_registry(_MinimalProvider)) as rt:
        assert rt.translate_model("p", "some-model-1") == "some-model-1"
        chunks = [c async for c in rt.provider("p").stream("hi")]
        await rt.warmup()
    assert chunks[0].text == "HI"


PLUGIN = """\
from typing import Literal
from pydantic import BaseModel, ConfigDict
from provcfg.plugin import ProviderKind


class BrokenSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["broken"]


def make(ctx):
    raise RuntimeError("internal detail")


KIND = ProviderKind("broken", BrokenSpec, "provcfg_auditplugin:make")
"""


def test_run_with_failing_plugin_factory(tmp_path: Path) -> None:
    """``provcfg run`` on a kind whose factory raises exits 2 naming provider, kind and fix."""
    (tmp_path / "provcfg_auditplugin.py").write_text(PLUGIN)
    info = tmp_path / "provcfg_auditplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: provcfg-auditplugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[provcfg.providers]\nbroken = provcfg_auditplugin:KIND\n"
    )
    (tmp_path / "m.yaml").write_text("version: 1\nproviders: {p: {kind: broken}}\n")
    done = run_cli(
        "run", "-f", "m.yaml", "hi", cwd=tmp_path, env=clean_env(PYTHONPATH=str(tmp_path))
    )
    assert done.returncode == 2, done.stderr
    assert "provider 'p': kind 'broken' could not build it (RuntimeError)" in done.stderr
    assert "reinstall" in done.stderr
    assert "internal detail" not in done.stderr and "internal error" not in done.stderr
