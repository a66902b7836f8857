"""Manifest text -> a validated, frozen :class:`~provcfg._manifest.Manifest`.

The pipeline, each step reporting positioned problems rather than raising early:

1. read at most ``max_bytes`` (1 MiB by default) and decode strict UTF-8;
2. screen characters YAML forbids and tabs used for indentation;
3. compose the YAML strictly (:mod:`provcfg._yaml`), keeping a loc -> line:column map;
4. substitute ``${VAR}`` / ``${VAR:-default}`` in string values (``$${`` is a literal ``${``);
5. apply ``PROVCFG_*`` environment overrides (pydantic-settings, ``__`` nesting, names
   matched to the file's keys ignoring case), environment over file;
6. validate against the manifest model of the kind registry (plugin kinds included);
7. check cross references (default provider, pools, model aliases, ...).

All problems of one run are raised together as :class:`~provcfg._errors.ManifestError`,
sorted by position. A problem caused by an environment override has line 0, column 0
and names the variable. No message ever holds a secret's value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from provcfg import _yaml
from provcfg._errors import ManifestError, ManifestReadError, Problem, ProvcfgError
from provcfg._manifest import SKIP_REFERENCE_CHECKS, Manifest, manifest_model, reference_problems
from provcfg._problems import ProblemMapper

if TYPE_CHECKING:
    from provcfg._kinds import KindRegistry

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ENV_PREFIX",
    "ManifestReadError",
    "load_manifest",
    "manifest_model_for",
    "parse_manifest_text",
]

DEFAULT_MAX_BYTES = 1024 * 1024
ENV_PREFIX = "PROVCFG_"


def manifest_model_for(registry: KindRegistry | None = None) -> type[Manifest]:
    """The Manifest model accepting the registry's kinds (discovered when None).

    Raises:
        ProvcfgError: a plugin fails to load or its spec model has no ``kind`` literal.
    """
    if registry is None:
        from provcfg._entrypoints import provider_entry_points

        # No plugin installed (the common case): the built-in Manifest, without importing
        # the provider contract module and what it pulls in.
        if not provider_entry_points():
            return Manifest
        from provcfg._kinds import KindRegistry

        registry = KindRegistry.discover()
    try:
        return manifest_model(tuple((k.name, k.spec_model) for k in registry.kinds()))
    except TypeError as exc:
        raise ProvcfgError(str(exc)) from None


def load_manifest(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    registry: KindRegistry | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Manifest:
    """Read, check and validate the manifest at ``path``.

    ``environ`` (default ``os.environ``) feeds both ``${VAR}`` substitution and the
    ``PROVCFG_`` overrides; ``registry`` (default: discovered) decides the provider kinds.

    Returns:
        The frozen Manifest.

    Raises:
        ManifestReadError: the file cannot be read (not found, a folder, no permission).
        ManifestError: every problem found, each with file, line, column, loc, message.
        ProvcfgError: a provider plugin is broken.
    """
    file = os.fspath(path)
    try:
        with open(file, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except FileNotFoundError:
        raise ManifestReadError(
            [Problem(file, 0, 0, "", "file not found; check the path")]
        ) from None
    except IsADirectoryError:
        raise ManifestReadError(
            [Problem(file, 0, 0, "", "is a folder; give the path of the manifest file")]
        ) from None
    except PermissionError:
        raise ManifestReadError(
            [Problem(file, 0, 0, "", "permission denied; make the file readable")]
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ManifestReadError([Problem(file, 0, 0, "", f"cannot read: {reason}")]) from None
    return parse_manifest_text(
        data, file=file, environ=environ, registry=registry, max_bytes=max_bytes
    )


def parse_manifest_text(
    text: str | bytes,
    *,
    file: str,
    environ: Mapping[str, str] | None = None,
    registry: KindRegistry | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Manifest:
    """Validate manifest text already in memory (bytes are decoded as strict UTF-8).

    ``file`` is only used to name the place in problems. Safe to call from any thread.

    Returns:
        The frozen Manifest.

    Raises:
        ManifestError: every problem found, sorted by position.
        ProvcfgError: a provider plugin is broken.
    """
    model = manifest_model_for(registry)
    source = _decode(text, file, max_bytes)
    _screen(source, file)
    composed = _yaml.compose(source)
    problems = [
        Problem(file, p.line, p.column, _dotted(p.loc), p.message) for p in composed.problems
    ]
    if composed.data is None:
        raise ManifestError(problems)
    env = os.environ if environ is None else environ
    data = composed.data
    mapper = ProblemMapper(file, model, data, composed)
    _interpolate(data, (), composed, env, mapper)
    mapper.env_locs = _apply_overrides(data, model, env, mapper)
    manifest: Manifest | None = None
    try:
        manifest = model.model_validate(data, context={SKIP_REFERENCE_CHECKS: True})
    except ValidationError as exc:
        mapper.validation(exc)
    for loc, message, at_key in reference_problems(data, model.provider_kinds):
        mapper.add(loc, message, at_key=at_key)
    problems.extend(mapper.problems())
    if problems or manifest is None:
        raise ManifestError(mapper.scrub(problems))
    return manifest


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc)


# --------------------------------------------------------------------------- bytes -> text


def _decode(text: str | bytes, file: str, max_bytes: int) -> str:
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ManifestError.single(
            file,
            f"the file is larger than the {max_bytes}-byte limit; "
            "a manifest this big is almost certainly not one",
        )
    if isinstance(text, str):
        return text.removeprefix("\ufeff")
    try:
        return text.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = text.count(b"\n", 0, exc.start) + 1
        start = text.rfind(b"\n", 0, exc.start) + 1
        column = len(text[start : exc.start].decode("utf-8", "replace")) + 1
        raise ManifestError.single(
            file,
            f"byte 0x{text[exc.start]:02X} (offset {exc.start}) is not valid UTF-8; "
            "save the file as UTF-8",
            line=line,
            column=column,
        ) from None


# Characters YAML 1.2 forbids in a stream (C0 controls but tab/LF/CR, DEL, C1 but NEL,
# surrogates, U+FFFE/U+FFFF). Screening here gives a precise position and message.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
_TAB_INDENT = re.compile(r"^[ ]*\t", re.MULTILINE)


def _screen(text: str, file: str) -> None:
    problems = []
    bad = _FORBIDDEN.search(text)
    if bad is not None:
        line, column = _position(text, bad.start())
        problems.append(
            Problem(
                file,
                line,
                column,
                "",
                f"character U+{ord(bad.group()):04X} is not allowed in YAML; remove it",
            )
        )
    if "\t" in text:
        for match in _TAB_INDENT.finditer(text):
            line, column = _position(text, match.end() - 1)
            problems.append(
                Problem(file, line, column, "", "tab in indentation; YAML indents with spaces")
            )
    if problems:
        raise ManifestError(problems)


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


# --------------------------------------------------------------------------- ${VAR}

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_SECRET_NAME = re.compile(r"(?i)key|token|secret|pass|pwd|auth|credential|cookie|session|dsn")


def _interpolate(
    node: dict[str, Any] | list[Any],
    loc: tuple[str | int, ...],
    composed: _yaml.Composed,
    env: Mapping[str, str],
    mapper: ProblemMapper,
) -> None:
    """Substitute variables in every string value under ``node``, in place."""
    items: Any = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        if isinstance(value, str):
            if "$" in value:
                node[key] = _substitute(value, (*loc, key), composed, env, mapper)
        elif isinstance(value, dict | list):
            _interpolate(value, (*loc, key), composed, env, mapper)


def _substitute(
    value: str,
    loc: tuple[str | int, ...],
    composed: _yaml.Composed,
    env: Mapping[str, str],
    mapper: ProblemMapper,
) -> Any:
    def replace(match: re.Match[str]) -> str:
        text = match.group()
        if text == "$${":
            return "${"
        body = match.group(1)
        parsed = _BODY.fullmatch(body) if body is not None else None
        if parsed is None:
            mapper.add(
                loc,
                "malformed variable reference; write ${NAME} or ${NAME:-default}, "
                "or $${ for a literal ${",
            )
            return ""
        name, default = parsed.group(1), parsed.group(2)
        if default is not None and "${" in default:
            mapper.add(loc, f"nested variables in the default of ${{{name}}} are not supported")
            return ""
        found = env.get(name)
        if found is None or (found == "" and default is not None):
            if default is None:
                mapper.add(
                    loc,
                    f"environment variable {name} is not set; export it, "
                    f"or write ${{{name}:-default}}",
                )
                return ""
            return default
        if _SECRET_NAME.search(name):
            mapper.secret(found)
        return found

    result = _REFERENCE.sub(replace, value)
    # A plain scalar such as `max_tokens: ${N:-4096}` reads like YAML written in place.
    return _yaml.resolve_plain(result) if loc in composed.plain_dollar else result


# --------------------------------------------------------------------------- PROVCFG_*


def _apply_overrides(
    data: dict[str, Any], model: type[Manifest], env: Mapping[str, str], mapper: ProblemMapper
) -> dict[tuple[str | int, ...], str]:
    """Merge ``PROVCFG_*`` overrides into ``data``; returns loc -> variable name."""
    variables = {k: v for k, v in env.items() if k[:8].upper() == ENV_PREFIX}
    if not variables:
        return {}
    from provcfg._envsource import read_overrides

    return read_overrides(data, model, variables, mapper)
