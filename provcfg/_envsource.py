"""``PROVCFG_*`` environment overrides, read by pydantic-settings and merged over the file.

pydantic-settings' :class:`~pydantic_settings.EnvSettingsSource` does the reading:
prefix ``PROVCFG_``, ``__`` between levels, JSON for list and mapping values, names
case-insensitive (it lowercases them). This module feeds it a given environment instead
of ``os.environ`` and merges its result into the file's data so that:

* a name matches the file's key ignoring case (``PROVCFG_PROVIDERS__API__BASE_URL``
  overrides ``providers.api.base_url`` and also ``providers.API.base_url``);
* a key the file does not have is created in lower case, except under a CLI provider's
  ``env:``, where it is upper case (environment variable names are);
* ``true``/``false`` become booleans; other values stay strings, which numeric and
  duration fields parse;
* every overridden loc remembers its variable, so problems name the variable.

Imported only when a ``PROVCFG_`` variable exists: pydantic-settings costs ~30 ms to import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from pydantic_settings import EnvSettingsSource, SettingsError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from provcfg._manifest import Manifest
    from provcfg._problems import ProblemMapper

__all__ = ["PREFIX", "read_overrides"]

PREFIX = "PROVCFG_"
Loc = tuple[str | int, ...]
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


class _ManifestEnvSource(EnvSettingsSource):
    """EnvSettingsSource reading a given mapping rather than ``os.environ``."""

    def __init__(self, model: type[Manifest], variables: Mapping[str, str]) -> None:
        self._variables = variables
        super().__init__(
            cast("type[BaseSettings]", model),
            case_sensitive=False,
            env_prefix=PREFIX,
            env_nested_delimiter="__",
        )

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._variables.items()}


def read_overrides(
    data: dict[str, Any],
    model: type[Manifest],
    variables: Mapping[str, str],
    mapper: ProblemMapper,
) -> dict[Loc, str]:
    """Merge the overrides in ``variables`` into ``data`` in place.

    Returns:
        loc -> name of the variable that set it. Variables that cannot be read (invalid
        JSON for a list or mapping) are recorded on ``mapper`` as problems.
    """
    try:
        overrides = _ManifestEnvSource(model, variables)()
    except SettingsError as exc:
        field = re.search(r'field "([^"]+)"', str(exc))
        head = f"{PREFIX}{field.group(1).upper()}" if field else PREFIX
        names = sorted(n for n in variables if n.upper().startswith(head)) or [head]
        for name in names:
            mapper.extra.append(
                mapper.env_problem(name, "not valid JSON for a list or mapping value")
            )
        return {}
    by_name = {name.upper(): name for name in variables}
    found: dict[Loc, str] = {}
    _merge(data, overrides, loc=(), path=(), by_name=by_name, found=found)
    return found


def _merge(
    target: dict[str, Any],
    overrides: Mapping[str, Any],
    *,
    loc: Loc,
    path: tuple[str, ...],
    by_name: Mapping[str, str],
    found: dict[Loc, str],
) -> None:
    for key, value in overrides.items():
        key_path = (*path, str(key))
        actual = _match_key(target, str(key), loc)
        here = (*loc, actual)
        variable = by_name.get((PREFIX + "__".join(key_path)).upper())
        if variable is not None:
            found[here] = variable
            target[actual] = _BOOLS.get(value, value) if isinstance(value, str) else value
        elif isinstance(value, Mapping):
            if not isinstance(target.get(actual), dict):
                target[actual] = {}
            _merge(target[actual], value, loc=here, path=key_path, by_name=by_name, found=found)
        else:
            target[actual] = value


def _match_key(target: Mapping[str, Any], key: str, loc: Loc) -> str:
    if key in target:
        return key
    folded = key.casefold()
    for existing in target:
        if isinstance(existing, str) and existing.casefold() == folded:
            return existing
    if len(loc) == 3 and loc[0] == "providers" and loc[2] == "env":
        return key.upper()
    return key
