"""Strict YAML for manifests: libyaml events -> plain data plus a position map.

PyYAML's loaders follow YAML 1.1 (``no`` is False, ``3.10`` is the float 3.1), accept
duplicate keys silently and expand aliases without limit. This module drives the
libyaml event parser (``yaml.CSafeLoader``; the pure-Python ``SafeLoader`` when libyaml
is absent) and builds the data itself, iteratively, so that:

* plain scalars follow the YAML 1.2 core schema; numbers keep their source text
  (:class:`YamlInt`, :class:`YamlFloat`) so a string field receives ``"3.10"``;
* duplicate keys, anchors, aliases and tags are positioned problems;
* nesting deeper than :data:`MAX_DEPTH` stops the parse;
* every key and value position is recorded by its loc tuple.

It is kept apart from :mod:`provcfg._loading` because it knows YAML and nothing of
the manifest; ``show`` uses :func:`dump` from here to write YAML that reads back the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = [
    "MAX_DEPTH",
    "Composed",
    "Loc",
    "Pos",
    "YamlFloat",
    "YamlInt",
    "YamlProblem",
    "compose",
    "dump",
    "resolve_plain",
]

MAX_DEPTH = 64

Loc = tuple[str | int, ...]
Pos = tuple[int, int]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"


class YamlInt(int):
    """An int read from a plain scalar; ``str()`` gives the text as written (``0x1F``)."""

    text: str

    def __new__(cls, value: int, text: str) -> YamlInt:
        self = super().__new__(cls, value)
        self.text = text
        return self

    def __str__(self) -> str:
        return self.text


class YamlFloat(float):
    """A float read from a plain scalar; ``str()`` gives the text as written (``3.10``)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, value: float, text: str) -> YamlFloat:
        self = super().__new__(cls, value)
        self.text = text
        return self

    def __str__(self) -> str:
        return self.text


_INT10 = re.compile(r"[-+]?[0-9]+")
_INT8 = re.compile(r"0o[0-7]+")
_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_START = frozenset("~nNtTfF0123456789+-.")


def resolve_plain(text: str) -> Any:
    """Resolve a plain (unquoted) scalar by the YAML 1.2 core schema.

    Returns None, a bool, a :class:`YamlInt`, a :class:`YamlFloat`, or ``text`` itself.
    """
    if text and text[0] not in _SPECIAL_START:
        return text
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    try:
        if _INT10.fullmatch(text):
            return YamlInt(int(text), text)
        if _INT8.fullmatch(text):
            return YamlInt(int(text[2:], 8), text)
        if _INT16.fullmatch(text):
            return YamlInt(int(text[2:], 16), text)
    except ValueError:  # more digits than int() accepts: leave it a string
        return text
    if _FLOAT.fullmatch(text):
        return YamlFloat(float(text), text)
    if _INF.fullmatch(text):
        return YamlFloat(float("-inf") if text[0] == "-" else float("inf"), text)
    if _NAN.fullmatch(text):
        return YamlFloat(float("nan"), text)
    return text


@dataclass(frozen=True, slots=True)
class YamlProblem:
    """A problem found while reading YAML: 1-based position, loc, message."""

    line: int
    column: int
    loc: Loc
    message: str


@dataclass(slots=True)
class Composed:
    """The result of :func:`compose`.

    ``data`` is the root mapping (None when ``fatal``), ``values``/``keys`` map a loc to the
    position of the value/key, ``poisoned`` holds locs whose value is unusable (an alias or
    a tag), so later validation problems under them are noise; ``plain_dollar`` holds locs
    of plain scalars containing ``$``, re-resolved after variable substitution.
    """

    data: dict[str, Any] | None
    values: dict[Loc, Pos] = field(default_factory=dict)
    keys: dict[Loc, Pos] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)
    poisoned: set[Loc] = field(default_factory=set)
    plain_dollar: set[Loc] = field(default_factory=set)
    fatal: bool = False


_SYNTAX_HINTS = (
    ("mapping values are not allowed", "a ':' inside an unquoted value? put the value in quotes"),
    ("cannot start any token", "quote the value (characters such as @ ` % cannot start one)"),
    ("could not find expected ':'", "each line of a mapping needs 'key: value'"),
    ("did not find expected key", "check the indentation of this line and the one before"),
    ("found unexpected end of stream", "a quote or bracket is not closed"),
)


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem = exc.problem or "invalid YAML"
    text = f"YAML syntax error: {problem}"
    if exc.context:
        text += f" ({exc.context})"
    for fragment, hint in _SYNTAX_HINTS:
        if fragment in problem:
            return f"{text}; {hint}"
    return text


class _Frame:
    __slots__ = ("container", "discard", "key", "loc", "seen")

    def __init__(self, container: dict[str, Any] | list[Any], loc: Loc) -> None:
        self.container = container
        self.loc = loc
        self.key: str | None = None  # the key whose value comes next
        self.discard = False  # that key was a duplicate: read its value, keep the first
        self.seen: dict[str, int] = {}


def compose(text: str) -> Composed:
    """Parse one YAML document into plain data and positions; never raises for bad input.

    Problems that make the data unusable (syntax errors, no document, a second document,
    a non-mapping root, nesting deeper than :data:`MAX_DEPTH`, a collection used as a key)
    set ``fatal``; the others (duplicates, anchors, aliases, tags) are reported while
    composing goes on, so one run shows them all.
    """
    out = Composed(data=None)
    loader = _Loader(text)
    try:
        _compose_into(loader, out)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        out.problems.append(YamlProblem(line, col, (), _syntax_message(exc)))
        out.fatal = True
    except yaml.YAMLError as exc:
        # ReaderError and friends: the loader pre-screens characters, so this is rare.
        out.problems.append(YamlProblem(0, 0, (), f"YAML error: {type(exc).__name__}"))
        out.fatal = True
    finally:
        loader.dispose()
    if out.fatal:
        out.data = None
    return out


def _fail(out: Composed, mark: Any, message: str, loc: Loc = ()) -> None:
    out.problems.append(YamlProblem(mark.line + 1, mark.column + 1, loc, message))
    out.fatal = True


def _compose_into(loader: Any, out: Composed) -> None:
    get: Callable[[], Any] = loader.get_event
    get()  # StreamStartEvent
    event = get()
    if isinstance(event, yaml.StreamEndEvent):
        _fail(out, event.start_mark, "the manifest is empty; start it with 'version: 1'")
        return
    event = get()  # the event after DocumentStartEvent: the root node
    if not isinstance(event, yaml.MappingStartEvent):
        if isinstance(event, yaml.ScalarEvent) and event.implicit[0] and event.value == "":
            _fail(out, event.start_mark, "the manifest is empty; start it with 'version: 1'")
        else:
            found = "a list" if isinstance(event, yaml.SequenceStartEvent) else "a single value"
            _fail(
                out,
                event.start_mark,
                f"the manifest must be a mapping (key: value lines), not {found}",
            )
        return
    values, keys, problems = out.values, out.keys, out.problems

    def note(mark: Any, loc: Loc, message: str) -> None:
        problems.append(YamlProblem(mark.line + 1, mark.column + 1, loc, message))

    def check_node(ev: Any, loc: Loc) -> None:
        if ev.anchor is not None:
            note(ev.start_mark, loc, "anchors (&name) are not allowed; repeat the value instead")
        tag = ev.tag
        if tag is not None and not (tag == _STR_TAG and isinstance(ev, yaml.ScalarEvent)):
            note(
                ev.start_mark,
                loc,
                "tags (!name) are not allowed; quote a value to make it a string",
            )
            out.poisoned.add(loc)

    root: dict[str, Any] = {}
    start: Any = event.start_mark
    values[()] = (start.line + 1, start.column + 1)
    check_node(event, ())
    stack = [_Frame(root, ())]
    while stack:
        event = get()
        top = stack[-1]
        container = top.container
        etype = type(event)
        if etype is yaml.MappingEndEvent or etype is yaml.SequenceEndEvent:
            stack.pop()
            continue
        if type(container) is dict and top.key is None:
            # This node is a key.
            if etype is not yaml.ScalarEvent:
                what = "an alias" if etype is yaml.AliasEvent else "a list or mapping"
                _fail(out, event.start_mark, f"a key must be a plain name, not {what}", top.loc)
                return
            key = event.value
            loc = (*top.loc, key)
            check_node(event, loc)
            line = event.start_mark.line + 1
            first = top.seen.get(key)
            if first is not None:
                note(
                    event.start_mark,
                    loc,
                    f"duplicate key {key!r} (first on line {first}); remove one of them",
                )
                top.key = key
                top.discard = True
                continue
            top.seen[key] = line
            keys.setdefault(loc, (line, event.start_mark.column + 1))
            top.key = key
            continue
        # This node is a value.
        discard = False
        if type(container) is dict:
            key = top.key or ""
            discard = top.discard
            top.key, top.discard = None, False
            loc = (*top.loc, key)
        else:
            loc = (*top.loc, len(container))
        pos = (event.start_mark.line + 1, event.start_mark.column + 1)
        node: Any
        if etype is yaml.ScalarEvent:
            check_node(event, loc)
            if event.implicit[0]:
                node = resolve_plain(event.value)
                if "$" in event.value:
                    out.plain_dollar.add(loc)
            else:
                node = event.value
        elif etype is yaml.MappingStartEvent or etype is yaml.SequenceStartEvent:
            check_node(event, loc)
            if len(stack) >= MAX_DEPTH:
                _fail(out, event.start_mark, f"nesting deeper than {MAX_DEPTH} levels", loc)
                return
            node = {} if etype is yaml.MappingStartEvent else []
            stack.append(_Frame(node, loc))
        else:  # AliasEvent
            note(event.start_mark, loc, "aliases (*name) are not allowed; repeat the value instead")
            out.poisoned.add(loc)
            node = None
        if discard:
            continue
        values.setdefault(loc, pos)
        if type(container) is dict:
            container[loc[-1]] = node
        else:
            container.append(node)  # type: ignore[union-attr]
    event = get()  # DocumentEndEvent
    event = get()
    if not isinstance(event, yaml.StreamEndEvent):
        _fail(
            out,
            event.start_mark,
            "a manifest is one YAML document; remove the second '---' and what follows",
        )
        return
    out.data = root


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes every string a YAML 1.2 (or 1.1) reader would not read back as str."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # The emitter falls back to a quoted style by itself when "|" cannot hold the text.
    style = "|" if "\n" in value else None
    if style is None and not isinstance(resolve_plain(value), str):
        style = "'"
    return dumper.represent_scalar(_STR_TAG, value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump(data: Any) -> str:
    """YAML text for ``data`` (plain dicts, lists, str, numbers, bools, None), keys in order."""
    text: str = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
    return text
