"""`provcfg init`: a manifest for this machine that validates, and the offline path that works."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from provcfg._cliprobe import AGENT_CLIS
from provcfg._initcmd import detect, manifest_text
from provcfg._loading import parse_manifest_text
from tests.support_agents import TESTED, fake_agent
from tests.support_fake_cli import process_gone
from tests.support_manifest import API_KEY, ENV_SECRET, ROOT, assert_no_secret, clean_env
from tests.support_services import free_port

PROVCFG = str(Path(sys.executable).with_name("provcfg"))
NO_CLIS = "/usr/bin:/bin"
COMMANDS = tuple(cli.command for cli in AGENT_CLIS)


def provcfg(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROVCFG, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _subsets() -> list[tuple[str, ...]]:
    return [c for n in range(len(COMMANDS) + 1) for c in itertools.combinations(COMMANDS, n)]


@pytest.mark.parametrize("keys", [(), ("ANTHROPIC_API_KEY",), ("OPENAI_API_KEY",),
                                  ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")])  # fmt: skip
@pytest.mark.parametrize("present", _subsets(), ids=lambda c: "+".join(c) or "none")
def test_every_combination_writes_a_manifest_that_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, present: tuple[str, ...], keys: tuple[str, ...]
) -> None:
    """For each set of installed CLIs and set keys: the manifest validates, declares exactly
    the CLIs found (plus api when ANTHROPIC_API_KEY is set, plus local), defaults to the first
    one that works, refers to keys as ${VAR} and never holds their values."""
    bin_dir = tmp_path / "bin"
    for command in present:
        fake_agent(bin_dir, command)
    env = {"PATH": f"{bin_dir}:{NO_CLIS}", "HOME": str(tmp_path)}
    env.update({name: API_KEY if name.startswith("ANTHROPIC") else ENV_SECRET for name in keys})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in {"ANTHROPIC_API_KEY", "OPENAI_API_KEY"} - set(keys):
        monkeypatch.delenv(name, raising=False)

    detection = detect(env, timeout=10)
    text = manifest_text(detection)
    manifest = parse_manifest_text(text.encode(), file="providers.yaml", environ=env)

    names = [cli.name for cli in AGENT_CLIS if cli.command in present]
    if "ANTHROPIC_API_KEY" in keys:
        names.append("api")
    names.append("local")
    assert list(manifest.providers) == names
    assert manifest.default_provider == names[0]
    assert text.startswith("# yaml-language-server: $schema=schemas/providers.schema.json\n")
    assert_no_secret(text)
    data: dict[str, Any] = yaml.safe_load(text)
    for name in names:
        spec = data["providers"][name]
        for variable, value in spec.get("env", {}).items():
            assert value == f"${{{variable}}}" and variable in keys
    if "api" in names:
        assert data["providers"]["api"]["api_key"] == "${ANTHROPIC_API_KEY}"
    for command in COMMANDS:
        assert (f"#   {command} {TESTED[command]} at " in text) == (command in present)
        assert (f"#   {command}: not found" in text) == (command not in present)


def test_cli_in_its_installers_folder_gets_search_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claude found only in ~/.claude/local (not on PATH) is written with that search path."""
    fake_agent(tmp_path / ".claude" / "local", "claude")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", NO_CLIS)
    detection = detect({}, timeout=10)
    text = manifest_text(detection)
    manifest = parse_manifest_text(text.encode(), file="providers.yaml", environ={})
    assert manifest.providers["claude"].search_paths == ("~/.claude/local",)  # type: ignore[union-attr]
    assert manifest.default_provider == "claude"


def test_hanging_or_failing_cli_is_written_but_not_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claude that hangs on --version is stopped at the deadline (with its child), kept in the
    manifest with a pointer to doctor, and not chosen as default; a codex whose --version
    fails neither; the next working CLI is."""
    pids = tmp_path / "pids"
    fake_agent(tmp_path / "bin", "claude", hang=True, pid_file=pids)
    fake_agent(tmp_path / "bin", "codex", exit_code=1, output="broken")
    fake_agent(tmp_path / "bin", "opencode")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{NO_CLIS}")
    monkeypatch.setenv("HOME", str(tmp_path))
    detection = detect({}, timeout=0.5)
    text = manifest_text(detection)
    manifest = parse_manifest_text(text.encode(), file="providers.yaml", environ={})
    assert manifest.default_provider == "opencode"
    assert list(manifest.providers) == ["claude", "opencode", "codex", "local"]
    assert "claude: " in text and "did not answer --version in time" in text
    assert "--version exited with 1" in text
    assert all(process_gone(int(pid)) for pid in pids.read_text().split())


def test_init_then_run_stub_from_an_empty_folder(tmp_path: Path) -> None:
    """In an empty folder: init writes providers.yaml and the schema it names, validate passes,
    and `provcfg run --stub -p local` streams the stub's answer at once."""
    env = clean_env(PATH=NO_CLIS, HOME=str(tmp_path))
    done = provcfg("init", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("wrote providers.yaml (default_provider: local; local)\n")
    # The stub's own port (8765) may be taken on a shared machine: move it, as users can.
    env["PROVCFG_PROVIDERS__LOCAL__BASE_URL"] = f"http://127.0.0.1:{free_port()}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["providers.yaml", "schemas"]
    first = (tmp_path / "providers.yaml").read_text().splitlines()[0]
    schema = tmp_path / first.split("$schema=", 1)[1]
    assert json.loads(schema.read_text())["title"] == "provcfg providers.yaml"
    assert provcfg("validate", cwd=tmp_path, env=env).returncode == 0
    assert provcfg("schema", "--check", cwd=tmp_path, env=env).returncode == 0
    run = provcfg("run", "--stub", "-p", "local", "Say hi", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "Hello from the provcfg stub.\n"
    doctor = provcfg("doctor", cwd=tmp_path, env=env)
    assert doctor.returncode == 0, doctor.stdout  # nothing fails on a fresh init


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    """An existing FILE is left alone (exit 2, the message names --force); --force replaces it,
    and a schema file that differs is kept unless --force."""
    env = clean_env(PATH=NO_CLIS, HOME=str(tmp_path))
    target = tmp_path / "providers.yaml"
    target.write_text("mine\n")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "providers.schema.json").write_text("{}\n")
    done = provcfg("init", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert done.stderr == (
        "provcfg: providers.yaml already exists; pass --force to overwrite it, "
        "or give another FILE\n"
    )
    assert target.read_text() == "mine\n"
    other = provcfg("init", "other.yaml", cwd=tmp_path, env=env)
    assert other.returncode == 0, other.stderr
    assert "kept schemas/providers.schema.json: it differs" in other.stdout
    assert (tmp_path / "schemas" / "providers.schema.json").read_text() == "{}\n"
    forced = provcfg("init", "--force", cwd=tmp_path, env=env)
    assert forced.returncode == 0, forced.stderr
    assert target.read_text().startswith("# yaml-language-server:")
    assert json.loads((tmp_path / "schemas" / "providers.schema.json").read_text())["$defs"]


def test_init_into_a_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    """FILE in a folder that does not exist: exit 2 with the fix, nothing written."""
    env = clean_env(PATH=NO_CLIS, HOME=str(tmp_path))
    done = provcfg("init", "nope/providers.yaml", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "the folder nope does not exist; create it first" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_format_json_prints_what_it_detected(tmp_path: Path) -> None:
    """--format json: the file, the schema, the default, and per CLI found/path/version/tested;
    per key variable only whether it is set."""
    fake_agent(tmp_path / "bin", "codex", version="0.100.0")
    env = clean_env(
        PATH=f"{tmp_path / 'bin'}:{NO_CLIS}", HOME=str(tmp_path), OPENAI_API_KEY=ENV_SECRET
    )
    work = tmp_path / "work"
    work.mkdir()
    done = provcfg("init", "--format", "json", cwd=work, env=env)
    assert done.returncode == 0, done.stderr
    assert_no_secret(done.stdout, done.stderr, (work / "providers.yaml").read_text())
    report = json.loads(done.stdout)
    assert report["file"] == "providers.yaml"
    assert report["schema"] == "schemas/providers.schema.json"
    assert report["default_provider"] == "codex"
    assert report["providers"] == ["codex", "local"]
    assert report["env"] == {"ANTHROPIC_API_KEY": False, "OPENAI_API_KEY": True}
    codex = next(c for c in report["clis"] if c["command"] == "codex")
    assert codex == {
        "name": "codex",
        "kind": "codex",
        "command": "codex",
        "found": True,
        "path": str(tmp_path / "bin" / "codex"),
        "source": "PATH",
        "runnable": True,
        "version": "0.100.0",
        "version_status": "ok",
        "tested_version": TESTED["codex"],
        "tested": False,
        "install": "npm install -g @openai/codex",
    }
    claude = next(c for c in report["clis"] if c["command"] == "claude")
    assert claude["found"] is False and claude["path"] is None


def test_tested_versions_match_the_pinned_clis() -> None:
    """The versions doctor calls tested are the ones tools/clis/package.json pins."""
    pins = json.loads((ROOT / "tools" / "clis" / "package.json").read_text())["dependencies"]
    assert {cli.npm_package: cli.tested_version for cli in AGENT_CLIS} == pins
