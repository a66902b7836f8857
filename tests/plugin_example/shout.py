"""A plugin kind ("shout") that uses only provcfg, provcfg.plugin and provcfg.testing.

tests/test_architecture.py runs ``mypy --strict`` on this package: it fails if the
public surface stops offering what a provider author needs, or offers it untyped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from provcfg.plugin import (
    BaseProvider,
    Chunk,
    KindRegistry,
    Provider,
    ProviderContext,
    ProviderError,
    ProviderKind,
    Timings,
    Usage,
)
from provcfg.testing import make_context


class ShoutSpec(BaseModel):
    """The kind's spec: just the kind and a default model."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["shout"] = "shout"
    model: str | None = "shout-1"


class ShoutProvider(BaseProvider):
    """Streams the prompt back in capitals, word by word."""

    kind = "shout"

    async def stream(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        max_tokens: int | None = None,
        cwd: str | Path | None = None,
        timeout: float | None = None,
        **kind_options: Any,
    ) -> AsyncIterator[Chunk]:
        """Yield each word in capitals, then the result."""
        model_id = self.ctx.resolve_model(model)
        if model_id == "fail":
            raise ProviderError(
                message="the model 'fail' fails", kind="model_not_found", provider=self.name
            )
        words = prompt.split()
        for word in words:
            yield Chunk("text", word.upper() + " ")
        usage = Usage(input_tokens=len(words), output_tokens=len(words))
        yield Chunk("result", data={"usage": usage, "model": model_id, "timings": Timings()})


def make(ctx: ProviderContext) -> Provider:
    """The kind's factory."""
    return ShoutProvider(ctx)


KIND = ProviderKind("shout", ShoutSpec, make)


def registry() -> KindRegistry:
    """The built-in kinds plus this one."""
    return KindRegistry.builtin().with_kind(KIND)


async def shout(prompt: str) -> str:
    """Run the provider outside a runtime, the way its tests do."""
    provider: Provider = make(make_context(ShoutSpec(), name="shout"))
    try:
        result = await provider.complete(prompt)
    finally:
        await provider.aclose()
    return result.text
