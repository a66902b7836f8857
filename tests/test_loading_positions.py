"""Positions under every line ending, and output that a hostile file name cannot forge.

The loader's own checks (forbidden characters, tab indentation, bytes that are not
UTF-8) count lines as the YAML parser does: ``\\r\\n``, ``\\r``, ``\\n``, NEL, LS and PS
each end one line. A file name holding a newline, carriage return, escape sequence or
Unicode line separator is printed escaped everywhere (validate text and JSON, show,
run, watch lines, ``str`` of the error), so each problem stays exactly one line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from provcfg._errors import ManifestError, Problem, printable
from tests.support_manifest import clean_env, load_text, run_cli

BREAKS = {"LF": "\n", "CRLF": "\r\n", "CR": "\r", "NEL": "\x85", "LS": "\u2028", "PS": "\u2029"}

# Line 4 of each is bad in its own way; lines 1-3 are fine.
HEAD_LINES = ["version: 1", "providers:", "  api: {kind: anthropic-api}"]


def _text(lines: list[str], brk: str) -> str:
    return brk.join(lines) + brk


def _only(text: str | bytes) -> Problem:
    with pytest.raises(ManifestError) as info:
        load_text(text)
    assert len(info.value.problems) == 1, info.value
    return info.value.problems[0]


@pytest.mark.parametrize("name", BREAKS)
def test_forbidden_character_is_on_its_line(name: str) -> None:
    """A NUL on line 4 is reported at line 4, column 14, whatever ends the lines."""
    problem = _only(_text([*HEAD_LINES, "  b: {model: \x00}"], BREAKS[name]))
    assert (problem.line, problem.column) == (4, 14), problem
    assert "U+0000" in problem.message


@pytest.mark.parametrize("name", BREAKS)
def test_tab_indentation_is_on_its_line(name: str) -> None:
    """A tab indenting line 4 is reported at line 4, whatever ends the lines."""
    problem = _only(_text([*HEAD_LINES, " \tb: 1"], BREAKS[name]))
    assert (problem.line, problem.column) == (4, 2), problem
    assert "tab in indentation" in problem.message


@pytest.mark.parametrize("name", BREAKS)
def test_invalid_utf8_is_on_its_line(name: str) -> None:
    """A byte that is not UTF-8 on line 4 is reported at line 4, column of the byte."""
    data = (_text(HEAD_LINES, BREAKS[name]) + "  b: {model: ab").encode() + b"\xff}\n"
    problem = _only(data)
    assert (problem.line, problem.column) == (4, 16), problem
    assert "0xFF" in problem.message


@pytest.mark.parametrize("name", BREAKS)
def test_loader_and_parser_agree_on_lines(name: str) -> None:
    """The YAML parser's own error on line 4 and the loader's line count agree."""
    problem = _only(_text([*HEAD_LINES, "  b: [unclosed"], BREAKS[name]))
    assert problem.line in (4, 5), problem  # end of stream: the parser may point past it
    tab = _only(_text([*HEAD_LINES, "\tb: 1"], BREAKS[name]))
    assert tab.line == 4


def test_a_thousand_tab_lines_are_counted_not_listed() -> None:
    """Tabs on 5,000 lines: the first 100 are listed, the rest counted, positions right."""
    with pytest.raises(ManifestError) as info:
        load_text("version: 1\r" + "\tx: 1\r" * 5000)
    error = info.value
    assert len(error.problems) == 100 and error.omitted == 4900 and error.total == 5000
    assert [p.line for p in error.problems] == list(range(2, 102))
    assert str(error).endswith("... and 4,900 more problems")


# --------------------------------------------------------------------------- file names

HOSTILE_NAMES = {
    "newline": "a\nm.yaml:1:1: forged: fake problem\nb.yaml",
    "carriage-return": "a\rm.yaml:9:9: forged.yaml",
    "escape-sequence": "a\x1b[2K\x1b[1Gforged.yaml",
    "line-separator": "a\u2028forged\u2029x.yaml",
    "nel": "a\x85forged.yaml",
}


def test_problem_text_is_one_line_whatever_the_file_name() -> None:
    """str() and as_dict() of a Problem escape every non-printable character of each field."""
    for name in HOSTILE_NAMES.values():
        problem = Problem(name, 1, 2, "providers.a\nb", "bad\rvalue")
        text = str(problem)
        assert text.isprintable() and len(text.splitlines()) == 1
        for value in problem.as_dict().values():
            assert str(value).isprintable()
    assert printable("a\nb\x1b\u2028") == "a\\nb\\x1b\\u2028"


@pytest.mark.parametrize("kind", HOSTILE_NAMES)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_validate_prints_hostile_file_names_escaped(tmp_path: Path, kind: str, fmt: str) -> None:
    """`validate` of an invalid and a valid file with hostile names: no forged line."""
    bad = tmp_path / HOSTILE_NAMES[kind]
    good = tmp_path / (HOSTILE_NAMES[kind] + ".good")
    bad.write_text("version: 1\nproviders:\n  a: {kind: codex, bogus: 1}\n")
    good.write_text("version: 1\nproviders:\n  a: {kind: codex}\n")
    done = run_cli("validate", "--format", fmt, bad.name, good.name, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.isascii() or done.stdout.replace("\n", "").isprintable()
    if fmt == "json":
        report = json.loads(done.stdout)
        names = [report["problems"][0]["file"], *(f["file"] for f in report["files"])]
        assert all(n.isprintable() for n in names)
        assert report["problems"][0]["file"] == printable(bad.name)
        return
    lines = done.stdout.splitlines()
    assert len(lines) == 3, lines  # the problem, the ok line, the count
    assert lines[0].startswith(printable(bad.name) + ":3:")
    assert lines[1] == f"{printable(good.name)}: ok (1 providers)"


@pytest.mark.parametrize("command", ["show", "run", "validate"])
def test_unreadable_hostile_name_is_escaped(tmp_path: Path, command: str) -> None:
    """A missing file whose name holds a newline: the one error line is escaped."""
    name = HOSTILE_NAMES["newline"]
    argv = {"run": ["run", "-f", name, "hi"]}.get(command, [command, name])
    done = run_cli(*argv, cwd=tmp_path, env=clean_env())
    assert done.returncode == 2
    output = (done.stdout + done.stderr).strip()
    assert output.splitlines()[0] == printable(name) + ":0:0: file not found; check the path"


async def test_watch_lines_escape_the_file_name(tmp_path: Path) -> None:
    """`provcfg watch` with a file name holding a newline: every printed line is escaped."""
    path = tmp_path / "prov\nforged: line.yaml"
    path.write_text("version: 1\nproviders:\n  a: {kind: codex}\n")
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "provcfg"),
        "watch",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            first = (await process.stdout.readline()).decode()
            # An atomic save (a truncating write may be read empty first, which watch
            # reports as a save in progress: another line than the one tested here).
            saved = tmp_path / "next.yaml"
            saved.write_text("version: 1\nproviders:\n  a: {kind: codex, bogus: 1}\n")
            os.replace(saved, path)
            problem = (await process.stdout.readline()).decode()
            summary = (await process.stdout.readline()).decode()
        assert first.startswith(printable(str(path)) + ": generation 1 live")
        assert problem.startswith(printable(str(path)) + ":3:")
        assert "stays live" in summary
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_error_text_escapes_the_file_name(tmp_path: Path) -> None:
    """str(ManifestError) for a file with a hostile name has one line per problem."""
    from provcfg._loading import load_manifest

    path = tmp_path / HOSTILE_NAMES["newline"]
    path.write_text("version: 1\nproviders:\n  a: {kind: codex, bogus: 1}\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path, environ={})
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and lines[1].startswith(printable(str(path)) + ":3:")
