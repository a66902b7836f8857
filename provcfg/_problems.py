"""Turn validation failures into positioned, secret-free manifest problems.

:class:`ProblemMapper` collects problems by loc while a manifest is loaded and, at the
end, gives each a place: an unknown key points at the key, a missing key at the mapping
that lacks it, a wrong value at the value, and anything an environment override put
there at line 0 with the variable's name. pydantic's wording is rewritten into what to
write instead ("unknown key 'bse_url'; did you mean 'base_url'?"). Before an error
leaves, every secret value seen is scrubbed from its text as a last line of defence.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from provcfg import _yaml
from provcfg._errors import Problem
from provcfg._manifest import NAME_PATTERN, WARM_KINDS, Manifest
from provcfg._secrets import MASK

__all__ = ["ProblemMapper"]

Loc = tuple[str | int, ...]
_MASK = MASK
_QUOTED = re.compile(r"'([^']*)'")
_PATTERN_HINTS = {
    NAME_PATTERN: "names use letters, digits, '.', '_' and '-', and start with a letter or digit",
    r"^https?://\S+$": "must be an http:// or https:// URL",
    r"^memcached://\S+$": "must be a memcached://host:port URL",
}
_TYPE_WORDS = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "dict_type": "must be a mapping (indented key: value lines)",
    "model_type": "must be a mapping (indented key: value lines)",
    "model_attributes_type": "must be a mapping (indented key: value lines)",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "finite_number": "must be a finite number",
}
_MISSING_HINTS = {
    "version": "add 'version: 1' at the top",
    "providers": "declare at least one provider under providers:",
}


class ProblemMapper:
    """Collects problems of one manifest by loc and resolves them to :class:`Problem`."""

    def __init__(
        self, file: str, model: type[Manifest], data: dict[str, Any], composed: _yaml.Composed
    ) -> None:
        self.file = file
        self.model = model
        self.data = data
        self.composed = composed
        self.env_locs: dict[Loc, str] = {}
        self.extra: list[Problem] = []  # already placed (environment problems)
        self._found: list[tuple[Loc, str, str, bool]] = []  # loc, message, where, validation
        self._secrets: set[str] = set()

    def add(self, loc: Loc, message: str, *, at_key: bool = False) -> None:
        """Record a problem about the value (or, with ``at_key``, the key) at ``loc``."""
        self._found.append((loc, message, "key" if at_key else "value", False))

    def secret(self, value: str) -> None:
        """Remember a secret value so that :meth:`scrub` removes it from any message."""
        if len(value) >= 4:
            self._secrets.add(value)

    def env_problem(self, variable: str, message: str) -> Problem:
        """A problem caused by the environment variable ``variable`` (line 0)."""
        return Problem(self.file, 0, 0, "", f"environment variable {variable}: {message}")

    # ------------------------------------------------------------------ pydantic

    def validation(self, exc: ValidationError) -> None:
        """Record every error of a failed ``model_validate`` of this mapper's data."""
        for error in exc.errors(include_url=False, include_input=False):
            loc, where = self._raw_loc(error["loc"], error["type"])
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                ctx = error.get("ctx") or {}
                loc = (*loc, str(ctx.get("discriminator", "kind")).strip("'\""))
            self._found.append((loc, self._message(error, loc), where, True))

    def _raw_loc(self, loc: tuple[int | str, ...], kind: str) -> tuple[Loc, str]:
        """pydantic's loc -> the loc in the data, dropping union tags; and where to point."""
        node: Any = self.data
        out: list[str | int] = []
        last = len(loc) - 1
        for i, part in enumerate(loc):
            if part == "[key]":
                return tuple(out), "key"
            if _has(node, part):
                node = node[part]
            elif i == last:
                out.append(part)
                return tuple(out), "missing"
            else:
                continue  # a union tag such as 'anthropic-api' or 'function-after[...]'
            out.append(part)
        if kind == "extra_forbidden":
            return tuple(out), "key"
        if kind in ("union_tag_not_found", "missing"):
            return tuple(out), "missing"
        return tuple(out), "value"

    def _message(self, error: Any, loc: Loc) -> str:
        kind: str = error["type"]
        ctx: dict[str, Any] = error.get("ctx") or {}
        value = _get(self.data, loc)
        if kind == "missing":
            name = str(loc[-1]) if loc else "?"
            hint = _MISSING_HINTS.get(name, f"add {name}: <value>")
            return f"missing required key {name!r}; {hint}"
        if kind == "extra_forbidden":
            return self._unknown_key(loc)
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            field = str(loc[-1])
            tags = _QUOTED.findall(str(ctx.get("expected_tags", ""))) or _tags_at(
                self.model, loc[:-1], self.data, field
            )
            listed = ", ".join(tags)
            if kind == "union_tag_not_found":
                return f"missing required key {field!r}; add {field}: one of {listed}"
            tag = str(ctx.get("tag", ""))
            return f"unknown {field} {tag!r} ({field}s: {listed})" + self._suggest(
                tag, tags, f"use one of the {field}s"
            )
        if kind == "literal_error":
            choices = _QUOTED.findall(str(ctx.get("expected", ""))) or [str(ctx.get("expected"))]
            if len(choices) == 1:
                return f"must be {choices[0]}"
            match = _closest(value, choices) if isinstance(value, str) else None
            hint = f"; did you mean {match!r}?" if match else ""
            return f"must be one of {', '.join(choices)}{hint}"
        if kind in {"value_error", "assertion_error"}:
            return (
                str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
            )
        if kind == "string_pattern_mismatch":
            pattern = str(ctx.get("pattern", ""))
            return _PATTERN_HINTS.get(pattern, f"must match the pattern {pattern}")
        if value is None and kind in _TYPE_WORDS:
            return f"has no value; {_TYPE_WORDS[kind]}, or remove the key"
        if kind in _TYPE_WORDS:
            text = _TYPE_WORDS[kind]
            if kind == "string_type" and isinstance(value, bool | int | float):
                text += "; put the value in quotes"
            return text
        if kind == "string_too_short" and ctx.get("min_length") == 1:
            return "must not be empty"
        if kind == "too_short" and loc == ("providers",):
            return "declare at least one provider"
        return str(error["msg"]).replace("Input should be", "must be")

    def _unknown_key(self, loc: Loc) -> str:
        key = str(loc[-1]) if loc else ""
        if key == "warm" and len(loc) == 3 and loc[0] == "providers":
            owner = _get(self.data, loc[:-1])
            kind = owner.get("kind") if isinstance(owner, dict) else None
            return (
                f"kind {kind or '?'} runs no agent process to keep warm; remove warm "
                f"(only {', '.join(WARM_KINDS)} can be warmed; sessions need no warm processes)"
            )
        fields = _fields_at(self.model, loc[:-1], self.data)
        if not fields:
            return f"unknown key {key!r}; remove it"
        return f"unknown key {key!r}" + self._suggest(
            key, fields, f"remove it (allowed: {', '.join(fields)})"
        )

    def _suggest(self, word: str, candidates: Iterable[str], fix: str) -> str:
        match = _closest(word, candidates)
        return f"; did you mean {match!r}?" if match else f"; {fix}"

    # ------------------------------------------------------------------ positions

    def problems(self) -> list[Problem]:
        """Every recorded problem, placed; validation noise under unusable values dropped."""
        out: list[Problem] = list(self.extra)
        poisoned = self.composed.poisoned
        for loc, message, where, from_validation in self._found:
            if from_validation and any(loc[: len(p)] == p for p in poisoned):
                continue
            variable = self._variable(loc, where)
            dotted = ".".join(map(str, loc))
            if variable is not None:
                out.append(
                    Problem(
                        self.file,
                        0,
                        0,
                        dotted,
                        f"{message} (set by environment variable {variable})",
                    )
                )
                continue
            line, column = self._position(loc, where)
            out.append(Problem(self.file, line, column, dotted, message))
        return out

    def _variable(self, loc: Loc, where: str) -> str | None:
        if not self.env_locs:
            return None
        for i in range(len(loc), -1, -1):
            name = self.env_locs.get(loc[:i])
            if name is not None:
                return name
        # A mapping that exists only because an override created it.
        anchor = loc[:-1] if where == "missing" else loc
        if anchor not in self.composed.values:
            for env_loc, name in self.env_locs.items():
                if env_loc[: len(anchor)] == anchor:
                    return name
        return None

    def _position(self, loc: Loc, where: str) -> tuple[int, int]:
        values, keys = self.composed.values, self.composed.keys
        if where == "key" and loc in keys:
            return keys[loc]
        if where == "missing":
            parent = loc[:-1]
            found = keys.get(parent) or values.get(parent)
            if found:
                return found
            loc = parent
        for i in range(len(loc), -1, -1):
            found = values.get(loc[:i]) or keys.get(loc[:i])
            if found:
                return found
        return (0, 0)

    # ------------------------------------------------------------------ secrets

    def scrub(self, problems: Iterable[Problem]) -> list[Problem]:
        """``problems`` with every known secret value replaced by ``**********``."""
        secrets = self._secrets | _secret_values(self.data)
        secrets = {s for s in secrets if len(s) >= 4}
        if not secrets:
            return list(problems)
        ordered = sorted(secrets, key=len, reverse=True)
        out = []
        for problem in problems:
            message = problem.message
            loc = problem.loc
            for secret in ordered:
                message = message.replace(secret, _MASK)
                loc = loc.replace(secret, _MASK)
            out.append(Problem(problem.file, problem.line, problem.column, loc, message))
        return out


_SECRET_KEY = re.compile(r"(?i)key|token|secret|passw|auth|credential|url|dsn")


def _secret_values(node: Any, under_env: bool = False) -> set[str]:
    """Strings under secret-looking keys (api_key, url, token, ...) and under any ``env:``."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            secret = under_env or bool(_SECRET_KEY.search(str(key)))
            if isinstance(value, str | SecretStr) and secret:
                found.add(value.get_secret_value() if isinstance(value, SecretStr) else value)
            elif isinstance(value, dict | list):
                found |= _secret_values(value, under_env=key == "env" and isinstance(value, dict))
    elif isinstance(node, list):
        for value in node:
            found |= _secret_values(value)
    return found


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    import difflib  # only on the error path

    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return match[0] if match else None


def _get(data: Any, loc: Loc) -> Any:
    node = data
    for part in loc:
        if not _has(node, part):
            return None
        node = node[part]
    return node


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _fields_at(model: type[BaseModel], loc: Loc, data: Any) -> list[str]:
    """Field names of the model that validates the mapping at ``loc`` (empty if unknown)."""
    tp = _narrow(_type_at(model, loc, data), _get(data, loc))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _tags_at(model: type[BaseModel], loc: Loc, data: Any, field: str) -> list[str]:
    """The values ``field`` may take in the union validating ``loc`` (``kind`` -> kinds)."""
    tp = _type_at(model, loc, data)
    while get_origin(tp) is typing.Annotated:
        tp = get_args(tp)[0]
    tags: list[str] = []
    for member in get_args(tp):
        if (
            isinstance(member, type)
            and issubclass(member, BaseModel)
            and field in member.model_fields
        ):
            tags.extend(str(t) for t in get_args(member.model_fields[field].annotation))
    return tags


def _type_at(model: type[BaseModel], loc: Loc, data: Any) -> Any:
    tp: Any = model
    node: Any = data
    for part in loc:
        tp = _narrow(tp, node)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) in (tuple, list):
            tp = get_args(tp)[0]
        else:
            return None
        node = _get(node, (part,))
    return tp


def _narrow(tp: Any, node: Any) -> Any:
    """Strip Annotated/Optional and pick the union member whose Literal fields match ``node``."""
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp = get_args(tp)[0]
        elif origin is typing.Union or origin is types.UnionType:
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
            return _pick(members, node)
        else:
            return tp


def _pick(members: list[Any], node: Any) -> Any:
    if not isinstance(node, dict):
        return None
    for member in members:
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        for name, field in member.model_fields.items():
            if get_origin(field.annotation) is typing.Literal and node.get(name) in get_args(
                field.annotation
            ):
                return member
    return None
