"""Provider kinds: a name, a spec model and a factory, found in one :class:`KindRegistry`.

The registry sits low (beside the manifest) because validation needs it: the
manifest model accepts exactly the spec models of the registered kinds. Built-in
kinds name their implementation as ``"module:attribute"`` strings, so that
``provcfg validate`` imports none of the heavy dependencies (anthropic, httpx2).
Plugins register a :class:`ProviderKind` under the entry-point group
``provcfg.providers``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from provcfg._entrypoints import GROUP as ENTRY_POINT_GROUP

if TYPE_CHECKING:
    from provcfg._contract import Provider, ProviderContext

__all__ = ["BUILTIN_KINDS", "ENTRY_POINT_GROUP", "KindRegistry", "ProviderFactory", "ProviderKind"]

ProviderFactory = Callable[["ProviderContext"], "Provider"]
"""Builds one provider instance from its context (a class taking ``ctx`` is one)."""

BUILTIN_KINDS: tuple[str, ...] = ("claude-code", "opencode", "codex", "anthropic-api")


@dataclass(frozen=True)
class ProviderKind:
    """A provider kind: its spec model and how to build an instance.

    ``factory`` is either a callable or a ``"module:attribute"`` string imported on
    first use, so that validating a manifest never imports a kind's implementation.
    ``install_hint`` tells users how to get the CLI (shown by CLINotFoundError).
    """

    name: str
    spec_model: type[BaseModel]
    factory: ProviderFactory | str
    install_hint: str = ""

    def load_factory(self) -> ProviderFactory:
        """Return the factory, importing it if it was given as a string."""
        if isinstance(self.factory, str):
            module, _, attr = self.factory.partition(":")
            factory: ProviderFactory = getattr(importlib.import_module(module), attr)
            return factory
        return self.factory


def _builtin_kinds() -> dict[str, ProviderKind]:
    from provcfg import _manifest as m

    return {
        "claude-code": ProviderKind(
            "claude-code",
            m.ClaudeCodeSpec,
            "provcfg._providers.claude_code:ClaudeCodeProvider",
            "Install it with: npm install -g @anthropic-ai/claude-code",
        ),
        "opencode": ProviderKind(
            "opencode",
            m.OpenCodeSpec,
            "provcfg._providers.opencode:OpenCodeProvider",
            "Install it with: npm install -g opencode-ai",
        ),
        "codex": ProviderKind(
            "codex",
            m.CodexSpec,
            "provcfg._providers.codex:CodexProvider",
            "Install it with: npm install -g @openai/codex",
        ),
        "anthropic-api": ProviderKind(
            "anthropic-api",
            m.AnthropicApiSpec,
            "provcfg._providers.anthropic_api:AnthropicApiProvider",
        ),
    }


class KindRegistry:
    """Built-in kinds plus those registered through the ``provcfg.providers`` entry points."""

    def __init__(self, kinds: Mapping[str, ProviderKind]) -> None:
        self._kinds = dict(kinds)

    @classmethod
    def builtin(cls) -> KindRegistry:
        """Only the built-in kinds (no entry points are read)."""
        return cls(_builtin_kinds())

    def with_kind(self, kind: ProviderKind) -> KindRegistry:
        """A copy with ``kind`` added or replacing the kind of the same name."""
        return KindRegistry({**self._kinds, kind.name: kind})

    @classmethod
    def discover(cls) -> KindRegistry:
        """Built-in kinds plus every installed plugin kind.

        Raises:
            ProvcfgError: a plugin entry point fails to load or is not a ProviderKind.
        """
        from provcfg._entrypoints import provider_entry_points
        from provcfg._errors import ProvcfgError

        kinds = _builtin_kinds()
        for ep in provider_entry_points():
            try:
                kind: Any = ep.load()
            except Exception as exc:
                raise ProvcfgError(
                    f"provider plugin {ep.name!r} ({ep.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
            if not isinstance(kind, ProviderKind):
                raise ProvcfgError(
                    f"provider plugin {ep.name!r} ({ep.value}) is not a provcfg ProviderKind"
                )
            if kind.name in kinds:
                raise ProvcfgError(f"provider plugin {ep.name!r} redefines kind {kind.name!r}")
            kinds[kind.name] = kind
        return cls(kinds)

    def __getitem__(self, name: str) -> ProviderKind:
        return self._kinds[name]

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def names(self) -> tuple[str, ...]:
        """Kind names, built-ins first."""
        return tuple(self._kinds)

    def kinds(self) -> tuple[ProviderKind, ...]:
        """Every registered kind."""
        return tuple(self._kinds.values())
