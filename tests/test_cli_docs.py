"""docs/cli.md's synopsis and the argument parser say the same thing, and every option is helped."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from provcfg._cli import COMMANDS, _parser
from provcfg.stub.command import _parser as stub_parser

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "cli.md"


@dataclass
class Synopsis:
    """One command as a synopsis line or a parser describes it."""

    options: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    """Option -> its documented choices (``text|json``), or None."""
    takes_value: dict[str, bool] = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)


def documented() -> dict[str, Synopsis]:
    """The synopsis block of docs/cli.md, parsed: ``[-o FILE]``, ``[--check]``,
    ``[--format text|json]``, ``FILE``, ``[FILE]``, ``[FILE...]``, ``PROMPT|-``."""
    match = re.search(r"<!-- synopsis[^>]*-->\n```\n(.*?)```", DOC.read_text(), re.S)
    assert match, "docs/cli.md lost its synopsis block"
    commands: dict[str, Synopsis] = {}
    for line in match.group(1).splitlines():
        words = re.findall(r"\[[^\]]*\]|\S+", line)
        assert words[0] == "provcfg", line
        # A command with actions of its own reads `provcfg alerts export ...`.
        size = 3 if len(words) > 2 and re.fullmatch(r"[a-z]+", words[2]) else 2
        name = " ".join(words[1:size])
        assert name not in commands, f"{name} documented twice"
        synopsis = commands[name] = Synopsis()
        for word in words[size:]:
            inner = word.strip("[]")
            if inner.startswith("-"):
                option, *argument = inner.split()
                choices = tuple(argument[0].split("|")) if argument and "|" in argument[0] else None
                synopsis.options[option] = choices
                synopsis.takes_value[option] = bool(argument)
            else:
                synopsis.positionals.append(inner.removesuffix("...").split("|")[0])
    return commands


def _from_parser(parser: argparse.ArgumentParser) -> tuple[Synopsis, list[argparse.Action]]:
    synopsis = Synopsis()
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    for action in actions:
        if action.option_strings:
            choices = tuple(action.choices) if action.choices else None
            for option in action.option_strings:
                synopsis.options[option] = choices
                synopsis.takes_value[option] = action.nargs != 0
        else:
            synopsis.positionals.append(action.metavar or action.dest.upper())  # type: ignore[arg-type]
    return synopsis, actions


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser (``alerts export`` for one with actions of its own); a
    passthrough command's own parser (stub)."""
    found: dict[str, argparse.ArgumentParser] = {}
    for name, parser in _subparsers(_parser()).items():
        actions = _subparsers(parser)
        own = [a for a in parser._actions if a.option_strings and a.dest != "help"]
        if not actions or own:  # `bench` runs by itself and has actions too
            found[name] = parser
        found.update({f"{name} {action}": p for action, p in actions.items()})
    found["stub"] = stub_parser()
    return found


NAMES = list(parsers())


def test_every_command_is_documented_and_nothing_else() -> None:
    """The synopsis lists exactly the commands (and their actions) of the command table."""
    assert list(documented()) == NAMES
    assert list(dict.fromkeys(name.split()[0] for name in NAMES)) == [c.name for c in COMMANDS]


@pytest.mark.parametrize("name", NAMES)
def test_synopsis_matches_the_parser(name: str) -> None:
    """Each documented option exists (by one of its names), each option of the parser is
    documented, with the same choices and whether it takes a value; positionals agree."""
    doc = documented()[name]
    actual, actions = _from_parser(parsers()[name])
    for option, choices in doc.options.items():
        assert option in actual.options, f"{name}: {option} is documented but does not exist"
        assert choices == actual.options[option], f"{name} {option}: choices differ"
        assert doc.takes_value[option] == actual.takes_value[option], f"{name} {option}"
    for action in actions:
        if action.option_strings:
            assert set(action.option_strings) & set(doc.options), (
                f"{name}: {'/'.join(action.option_strings)} is not in docs/cli.md's synopsis"
            )
    assert doc.positionals == actual.positionals, name


@pytest.mark.parametrize("name", NAMES)
def test_every_option_has_help(name: str) -> None:
    """Every argument of every command carries help text (what -h shows)."""
    _, actions = _from_parser(parsers()[name])
    for action in actions:
        assert action.help and action.help is not argparse.SUPPRESS, (
            f"{name}: {action.option_strings or action.dest} has no help text"
        )


def test_every_command_has_a_section() -> None:
    """Each command has its own `## \\`name\\`` section in docs/cli.md."""
    text = DOC.read_text()
    for command in COMMANDS:
        assert f"\n## `{command.name}`\n" in text, command.name
