"""Turn validation failures into positioned, secret-free manifest problems.

:class:`ProblemMapper` collects problems by loc while a manifest is loaded and, at the
end, gives each a place: an unknown key points at the key, a missing key at the mapping
that lacks it, a wrong value at the value, and anything an environment override put
there at line 0 with the variable's name. pydantic's wording is rewritten into what to
write instead ("unknown key 'bse_url'; did you mean 'base_url'?"). Before an error
leaves, every secret value seen is scrubbed from its text as a last line of defence.

Cost stays bounded whatever the file holds: problems are placed cheaply, only the first
:data:`~provcfg._errors.PROBLEM_LIMIT` by position get their message written (with a
did-you-mean from the run's :class:`~provcfg._suggest.Suggester`) and scrubbed, and the
rest are only counted.
"""

from __future__ import annotations

import heapq
import re
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from provcfg import _yaml
from provcfg._errors import PROBLEM_LIMIT, Problem
from provcfg._manifest import NAME_PATTERN, WARM_KINDS, Manifest
from provcfg._secrets import MASK, every_form
from provcfg._suggest import MAX_WORD, Suggester, listing, quote

__all__ = ["ProblemMapper", "dotted", "first_problems"]

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
    "int_parsing_size": "must be a whole number, and this one is far too large",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "must be at least"),
    "greater_than": ("gt", "must be greater than"),
    "less_than_equal": ("le", "must be at most"),
    "less_than": ("lt", "must be less than"),
}
_CODE_NAMES_SHOWN = 30  # names that come from the models (fields, kinds, choices), not the file
_MISSING_HINTS = {
    "version": "add 'version: 1' at the top",
    "providers": "declare at least one provider under providers:",
}


class ProblemMapper:
    """Collects problems of one manifest by loc and resolves them to :class:`Problem`."""

    def __init__(
        self,
        file: str,
        model: type[Manifest],
        data: dict[str, Any],
        composed: _yaml.Composed,
        suggester: Suggester | None = None,
    ) -> None:
        self.file = file
        self.model = model
        self.data = data
        self.composed = composed
        self.suggester = suggester if suggester is not None else Suggester()
        self.env_locs: dict[Loc, str] = {}
        self.extra: list[Problem] = []  # already placed (environment problems)
        # loc, message (or the pydantic error to word later), where, from validation
        self._found: list[tuple[Loc, str | dict[str, Any], str, bool]] = []
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
            # Worded only if it is among the problems shown (see problems()).
            self._found.append((loc, dict(error), where, True))

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
            listed = listing(tags, _CODE_NAMES_SHOWN, ordered=True)
            if kind == "union_tag_not_found":
                return f"missing required key {field!r}; add {field}: one of {listed}"
            tag = str(ctx.get("tag", ""))
            return f"unknown {field} {quote(tag)} ({field}s: {listed})" + self.suggester.hint(
                tag, tags, f"use one of the {field}s"
            )
        if kind == "literal_error":
            choices = _QUOTED.findall(str(ctx.get("expected", ""))) or [str(ctx.get("expected"))]
            if len(choices) == 1:
                return f"must be {choices[0]}"
            hint = self.suggester.hint(value, choices) if isinstance(value, str) else ""
            return f"must be one of {listing(choices, _CODE_NAMES_SHOWN, ordered=True)}{hint}"
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
        if kind in _BOUNDS:
            key, words = _BOUNDS[kind]
            bound = ctx.get(key)
            if isinstance(bound, int) and not isinstance(bound, bool):
                return f"{words} {bound:,}"
            if isinstance(bound, float):
                return f"{words} {bound:g}"
        if kind == "string_too_long" and isinstance(ctx.get("max_length"), int):
            return f"must be at most {ctx['max_length']:,} characters long"
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
            return f"unknown key {quote(key)}; remove it"
        allowed = listing(fields, _CODE_NAMES_SHOWN, ordered=True)
        return f"unknown key {quote(key)}" + self.suggester.hint(
            key, fields, f"remove it (allowed: {allowed})"
        )

    # ------------------------------------------------------------------ positions

    def problems(self) -> tuple[list[Problem], int]:
        """The first :data:`PROBLEM_LIMIT` recorded problems by position, and how many more.

        Validation noise under unusable values (aliases, tags) is dropped. Every problem is
        placed, but only the ones kept are worded: a flood of errors costs a dict lookup each.
        """
        poisoned = self.composed.poisoned
        placed: list[tuple[int, int, int, str | None]] = []  # line, column, index, variable
        for index, (loc, _message, where, from_validation) in enumerate(self._found):
            if from_validation and poisoned and _under(loc, poisoned):
                continue
            variable = self._variable(loc, where)
            line, column = (0, 0) if variable is not None else self._position(loc, where)
            placed.append((line, column, index, variable))
        kept, omitted = first_problems(placed, key=lambda p: (p[0], p[1], p[2]))
        out: list[Problem] = list(self.extra)
        for line, column, index, variable in kept:
            loc, message, _where, _ = self._found[index]
            text = message if isinstance(message, str) else self._message(message, loc)
            if variable is not None:
                text = f"{text} (set by environment variable {variable})"
            out.append(Problem(self.file, line, column, dotted(loc), text))
        return out, omitted

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
        """``problems`` with every known secret value replaced by ``**********``.

        The cost depends on the size of the problems' text, not on how many secrets the
        file holds (see :func:`_secrets_in`).
        """
        problems = list(problems)
        secrets = self._secrets | _secret_values(self.data)
        forms = set(every_form(secrets))  # URL-encoded, base64 of user:password, ...
        found = _secrets_in([f"{p.loc}\0{p.message}" for p in problems], forms)
        if not found:
            return problems
        ordered = sorted(found, key=len, reverse=True)
        out = []
        for problem in problems:
            message = problem.message
            loc = problem.loc
            for secret in ordered:
                message = message.replace(secret, _MASK)
                loc = loc.replace(secret, _MASK)
            out.append(Problem(problem.file, problem.line, problem.column, loc, message))
        return out


def _secrets_in(texts: Sequence[str], secrets: Iterable[str]) -> set[str]:
    """The secrets (4 characters or more) that occur in any of ``texts``.

    Words echoed in messages are at most MAX_WORD characters (longer ones are never
    echoed), so short secrets are looked up by every substring of each of their lengths
    (at most ~60 lengths x the text); the rare long ones are searched for directly.
    """
    text = "\0".join(texts)
    short: dict[int, set[str]] = {}
    long: list[str] = []
    for secret in secrets:
        if len(secret) < 4:
            continue
        if len(secret) <= MAX_WORD:
            short.setdefault(len(secret), set()).add(secret)
        else:
            long.append(secret)
    found = {secret for secret in long if secret in text}
    for size, group in short.items():
        found.update(group.intersection(text[i : i + size] for i in range(len(text) - size + 1)))
    return found


def first_problems(
    items: Iterable[Any], *, key: Any, limit: int = PROBLEM_LIMIT
) -> tuple[list[Any], int]:
    """The ``limit`` smallest ``items`` by ``key``, in order, and how many were left out."""
    items = list(items)
    if len(items) <= limit:
        return sorted(items, key=key), 0
    return heapq.nsmallest(limit, items, key=key), len(items) - limit


def dotted(loc: Loc) -> str:
    """``providers.api.base_url`` for a loc; a part too long to echo becomes its length."""
    return ".".join(_part(part) for part in loc)


def _part(part: str | int) -> str:
    text = str(part)
    return text if len(text) <= MAX_WORD else quote(text)


def _under(loc: Loc, poisoned: set[Loc]) -> bool:
    return any(loc[:i] in poisoned for i in range(len(loc) + 1))


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
    """Strip Annotated/Optional; of a union, the member that validates ``node``.

    A discriminated union (``Field(discriminator="kind")``) is decided by the
    discriminator's value alone, as pydantic decides it.
    """
    discriminator: str | None = None
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated:
            tp, *metadata = get_args(tp)
            for meta in metadata:
                found = getattr(meta, "discriminator", None)
                if isinstance(found, str):
                    discriminator = found
        elif origin is typing.Union or origin is types.UnionType:
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
            return _pick(members, node, discriminator)
        else:
            return tp


def _pick(members: list[Any], node: Any, discriminator: str | None) -> Any:
    """The model among ``members`` whose discriminator Literal holds ``node``'s value.

    Without a declared discriminator, only required Literal fields decide: a Literal field
    with a default (``init: lazy``) is shared by every member and says nothing.
    """
    if not isinstance(node, dict):
        return None
    for member in members:
        if not (isinstance(member, type) and issubclass(member, BaseModel)):
            continue
        for name, field in member.model_fields.items():
            if discriminator is not None and name != discriminator:
                continue
            if discriminator is None and not field.is_required():
                continue
            if get_origin(field.annotation) is typing.Literal and node.get(name) in get_args(
                field.annotation
            ):
                return member
    return None
