"""`provcfg validate`, `show` and `schema` through the real console script, and main()'s guards."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from provcfg import _cli as cli
from provcfg._cli import COMMANDS, Command, main
from tests.support_manifest import (
    API_KEY,
    ENV_SECRET,
    EXAMPLE,
    REDIS_PASSWORD,
    ROOT,
    assert_no_secret,
    clean_env,
    run_cli,
)

SECRET_MANIFEST = f"""\
version: 1
default_provider: api
cache:
  r: {{backend: redis, url: "redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0", ttl: 90s}}
providers:
  api: {{kind: anthropic-api, api_key: "${{ANTHROPIC_API_KEY}}", timeout: 250ms}}
  c: {{kind: claude-code, env: {{TOKEN: {ENV_SECRET}}}, anthropic: x}}
"""


def test_validate_example_exits_zero_offline() -> None:
    """The example manifest validates from its folder with a bare environment."""
    done = run_cli("validate", cwd=ROOT)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "providers.yaml: ok (5 providers)\n",
        "",
    )


def test_validate_json_lists_every_problem(tmp_path: Path) -> None:
    """--format json gives file, line, column, loc and message for each problem; exit 1."""
    (tmp_path / "m.yaml").write_text(SECRET_MANIFEST)
    done = run_cli(
        "validate",
        "m.yaml",
        "--format",
        "json",
        cwd=tmp_path,
        env=clean_env(ANTHROPIC_API_KEY=API_KEY),
    )
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["valid"] is False
    (problem,) = report["problems"]
    message = problem.pop("message")
    assert problem == {"file": "m.yaml", "line": 7, "column": 63, "loc": "providers.c.anthropic"}
    assert message.startswith("unknown key 'anthropic'; remove it (allowed: model, models,")
    assert report["files"] == [{"file": "m.yaml", "valid": False, "problems": 1}]
    assert_no_secret(done.stdout, done.stderr)


def test_validate_several_files_and_exit_codes(tmp_path: Path) -> None:
    """Valid + invalid gives 1; any unreadable file gives 2; problems of all files are listed."""
    shutil.copy(EXAMPLE, tmp_path / "good.yaml")
    (tmp_path / "bad.yaml").write_text("version: 1\nproviders: {a: {kind: nope}}\n")
    done = run_cli("validate", "good.yaml", "bad.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "good.yaml: ok" in done.stdout and "bad.yaml:2:" in done.stdout
    done = run_cli("validate", "good.yaml", "bad.yaml", "missing.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert "missing.yaml:0:0: file not found" in done.stdout


def test_usage_errors_exit_two_without_traceback() -> None:
    """Unknown commands and options are usage errors (2), with argparse's message."""
    for args in (("frobnicate",), ("validate", "--format", "xml"), ()):
        done = run_cli(*args)
        assert done.returncode == 2, args
        assert "usage: provcfg" in done.stderr and "Traceback" not in done.stderr


def test_show_masks_secrets_and_validates_again(tmp_path: Path) -> None:
    """`show` prints the effective manifest with secrets masked; its output validates again."""
    manifest = SECRET_MANIFEST.replace(", anthropic: x", "")
    (tmp_path / "m.yaml").write_text(manifest)
    env = clean_env(ANTHROPIC_API_KEY=API_KEY, PROVCFG_PROVIDERS__API__MAX_TOKENS="99")
    done = run_cli("show", "m.yaml", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert_no_secret(done.stdout, done.stderr)
    assert "url: redis://:**********@127.0.0.1:6379/0" in done.stdout
    assert "api_key: '**********'" in done.stdout
    assert "max_tokens: 99" in done.stdout
    assert "ttl: 90s" in done.stdout and "timeout: 250ms" in done.stdout
    (tmp_path / "shown.yaml").write_text(done.stdout)
    again = run_cli("show", "shown.yaml", cwd=tmp_path)
    assert (again.returncode, again.stdout) == (0, done.stdout)


def test_show_json(tmp_path: Path) -> None:
    """`show --format json` is JSON with the same masking."""
    done = run_cli(
        "show", str(EXAMPLE), "--format", "json", env=clean_env(ANTHROPIC_API_KEY=API_KEY)
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["providers"]["api"]["api_key"] == "**********"
    assert data["pools"]["anthropic"]["timeouts"]["read"] == "10m"
    assert_no_secret(done.stdout)


def test_show_invalid_manifest_exits_one(tmp_path: Path) -> None:
    """`show` of an invalid manifest prints the problems on stderr and exits 1."""
    (tmp_path / "m.yaml").write_text("version: 1\nproviders: {}\n")
    done = run_cli("show", "m.yaml", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert "m.yaml:2:12: providers: declare at least one provider" in done.stderr


def test_schema_check_and_output(tmp_path: Path) -> None:
    """`schema -o` writes the schema; `--check` passes on it and fails (1) once it drifts."""
    target = tmp_path / "s.json"
    assert run_cli("schema", "-o", str(target)).returncode == 0
    assert target.read_text() == (ROOT / "schemas" / "providers.schema.json").read_text()
    assert run_cli("schema", "--check", "-o", str(target)).returncode == 0
    target.write_text(target.read_text().replace('"version"', '"versoin"', 1))
    drift = run_cli("schema", "--check", "-o", str(target))
    assert drift.returncode == 1 and "out of date" in drift.stderr
    missing = run_cli("schema", "--check", "-o", str(tmp_path / "none.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    printed = run_cli("schema")
    assert json.loads(printed.stdout)["$schema"].startswith("https://json-schema.org/")


@pytest.fixture
def extra_command() -> Iterator[list[Command]]:
    """Room for a temporary subcommand in the command table."""
    added: list[Command] = []
    yield added
    for command in added:
        COMMANDS.remove(command)


def _add(table: list[Command], name: str, error: BaseException) -> None:
    def run(args: object) -> int:
        raise error

    command = Command(name, "test", lambda parser: None, run, logs=False)  # keep global logging
    COMMANDS.append(command)
    table.append(command)


def test_internal_error_is_one_line_and_exit_70(
    extra_command: list[Command], capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected exception becomes 'provcfg: internal error: <type>' and exit 70."""
    _add(extra_command, "explode", RuntimeError(f"with data {API_KEY}"))
    assert main(["explode"]) == 70
    out, err = capsys.readouterr()
    assert out == ""
    assert "provcfg: internal error: RuntimeError" in err
    assert "Traceback" not in err
    assert_no_secret(err)


def test_keyboard_interrupt_exits_130(
    extra_command: list[Command], capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C ends the command with exit 130 and no traceback."""
    _add(extra_command, "interrupt", KeyboardInterrupt())
    assert main(["interrupt"]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_commands_registered_as_module_strings_are_imported_lazily(
    extra_command: list[Command], capsys: pytest.CaptureFixture[str]
) -> None:
    """A Command may name its runner as 'module:function', imported only when it runs."""
    command = Command("later", "test", lambda parser: None, "provcfg._cli:_run_schema")
    COMMANDS.append(command)
    extra_command.append(command)
    assert command.runner() is cli._run_schema
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("provcfg ")
