"""One provider's model table: alias -> provider-specific model id, and the pass-through rule.

A :class:`ModelTable` is built once per provider per generation from the manifest
(the global ``models:`` entries for the provider's kind, then the provider's own
``models:``, which win) and handed to the provider as data. ``rt.translate_model``
and a provider's ``ctx.resolve_model`` both end here, so the two can never disagree.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from provcfg._errors import UnknownModelError
from provcfg._manifest import looks_like_model_id
from provcfg._suggest import closest

__all__ = ["ModelTable"]

# A name this close to an alias is a typo of it, not a model id to pass through.
_TYPO_CUTOFF = 0.85
_PASSED_MAX = 1024


@dataclass(frozen=True, slots=True)
class ModelTable:
    """Aliases of one provider and what to do with a name that is not one.

    Attributes:
        provider: the provider's name, for messages.
        ids: alias -> model id (the hot path is one lookup in it).
        known_ids: every model id the table maps to (an id is accepted as itself).
        passthrough: ``unknown_models: passthrough``: a complete-looking id is used as is.
        default: the provider's ``model:`` (alias or id), used when a call names none.
        any_name: every name that is not an alias passes as it is (test contexts).
    """

    provider: str
    ids: Mapping[str, str]
    known_ids: frozenset[str]
    passthrough: bool = True
    default: str | None = None
    any_name: bool = False
    passed: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Names already let through (bounded): a caller passing a full model id on every
    request pays the typo check once, not per request."""

    @classmethod
    def of(
        cls,
        provider: str,
        aliases: Mapping[str, str],
        *,
        passthrough: bool = True,
        default: str | None = None,
        any_name: bool = False,
    ) -> ModelTable:
        """A table over ``aliases`` (alias -> id)."""
        ids = dict(aliases)
        return cls(provider, ids, frozenset(ids.values()), passthrough, default, any_name)

    def translate(self, name: str) -> str:
        """The model id for ``name`` (an alias, or an id that may pass through).

        Raises:
            UnknownModelError: ``name`` is no alias, no known id, and may not pass through
                (the policy is ``error``, it does not look like a complete model id, or it
                is a near-miss of an alias).
        """
        found = self.ids.get(name)
        if found is not None:
            return found
        if name in self.known_ids or self.any_name:
            return name
        if name in self.passed:
            return name
        if self.passthrough and looks_like_model_id(name):
            near = difflib.get_close_matches(name, list(self.ids), n=1, cutoff=_TYPO_CUTOFF)
            if not near:
                if len(self.passed) < _PASSED_MAX:
                    self.passed[name] = name
                return name
        raise UnknownModelError(self.provider, name, closest(name, self.ids), list(self.ids))

    def resolve(self, name: str | None) -> str | None:
        """``translate(name)``, or of the provider's default when ``name`` is None."""
        chosen = name if name is not None else self.default
        return None if chosen is None else self.translate(chosen)
