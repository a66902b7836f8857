"""Helpers for runtime tests: manifests from dicts and a registry with a test kind.

The test kind ("echo") is a real provider class plugged in through the same
``KindRegistry`` mechanism plugins use; it lets runtime tests count creations,
preparations and closes without any network or CLI.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from provcfg._manifest import Manifest
from provcfg.plugin import (
    BaseProvider,
    Chunk,
    KindRegistry,
    ProviderContext,
    ProviderKind,
    Usage,
)


class EchoProvider(BaseProvider):
    """Echoes the prompt word by word; records lifecycle events in ``EchoProvider.log``."""

    kind = "anthropic-api"
    created: int = 0
    log: list[tuple[str, str]] = []  # noqa: RUF012 - shared on purpose: tests read it
    fail_prepare: set[str] = set()  # noqa: RUF012
    lock = threading.Lock()

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        with EchoProvider.lock:
            EchoProvider.created += 1
        EchoProvider.log.append(("create", ctx.name))

    def prepare(self) -> None:
        EchoProvider.log.append(("prepare", self.name))
        if self.name in EchoProvider.fail_prepare:
            raise OSError(f"prepare of {self.name} failed")

    async def stream(self, prompt: str, **kwargs: Any) -> AsyncIterator[Chunk]:
        model = self.ctx.resolve_model(kwargs.get("model"))
        for word in prompt.split():
            yield Chunk("text", word)
        yield Chunk("result", data={"usage": Usage(1, 1), "model": model})

    async def aclose(self) -> None:
        EchoProvider.log.append(("close", self.name))
        await super().aclose()

    @classmethod
    def reset(cls) -> None:
        cls.created = 0
        cls.log = []
        cls.fail_prepare = set()


def echo_registry(factory: Callable[[ProviderContext], Any] | None = None) -> KindRegistry:
    """Built-in kinds, with anthropic-api served by ``factory`` (EchoProvider by default)."""
    builtin = KindRegistry.builtin()
    api = builtin["anthropic-api"]
    return builtin.with_kind(ProviderKind(api.name, api.spec_model, factory or EchoProvider))


def manifest(providers: dict[str, dict[str, Any]], **extra: Any) -> Manifest:
    """A validated Manifest from plain data (providers default to kind anthropic-api)."""
    data: dict[str, Any] = {"version": 1, "providers": {}}
    for name, spec in providers.items():
        data["providers"][name] = {"kind": "anthropic-api", **spec}
    data.update(extra)
    return Manifest.model_validate(data)
