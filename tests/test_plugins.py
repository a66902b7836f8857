"""Plugin kinds from real `provcfg._providers` entry points validate and appear in the schema."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict

from provcfg._errors import ManifestError
from provcfg._loading import manifest_model_for, parse_manifest_text
from provcfg._manifest import Manifest
from provcfg.plugin import KindRegistry, ProviderKind
from tests.support_manifest import ROOT, clean_env, run_cli

PLUGIN_MODULE = '''
from typing import Literal
from pydantic import BaseModel, ConfigDict, SecretStr
from provcfg.plugin import ProviderKind


class EchoSpec(BaseModel):
    """An echo provider for tests."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)
    kind: Literal["echo"]
    greeting: str = "hello"
    token: SecretStr | None = None
    model: str | None = None


class NoKindSpec(BaseModel):
    greeting: str = "hello"


KIND = ProviderKind("echo", EchoSpec, "provcfg_testplugin:make")
BROKEN = ProviderKind("nokind", NoKindSpec, "provcfg_testplugin:make")
NOT_A_KIND = object()
'''


def _install_plugin(folder: Path, entry: str) -> dict[str, str]:
    """Write a module and its dist-info so importlib.metadata finds the entry point for real."""
    (folder / "provcfg_testplugin.py").write_text(PLUGIN_MODULE)
    info = folder / "provcfg_testplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: provcfg-testplugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(f"[provcfg.providers]\n{entry}\n")
    return clean_env(PYTHONPATH=str(folder))


MANIFEST = textwrap.dedent(
    """\
    version: 1
    default_provider: e
    providers:
      e: {kind: echo, greeting: hi, token: "${ECHO_TOKEN:-tok-SECRET-5151}"}
      api: {kind: anthropic-api}
    """
)


def test_plugin_kind_validates_through_the_cli(tmp_path: Path) -> None:
    """A manifest using the plugin kind validates; a typo in its field gets a suggestion."""
    env = _install_plugin(tmp_path, "echo = provcfg_testplugin:KIND")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    done = run_cli("validate", "m.yaml", cwd=tmp_path, env=env)
    assert (done.returncode, done.stdout) == (0, "m.yaml: ok (2 providers)\n"), done.stderr
    (tmp_path / "bad.yaml").write_text(MANIFEST.replace("greeting: hi", "greting: hi"))
    done = run_cli("validate", "bad.yaml", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert done.stdout.startswith(
        "bad.yaml:4:19: providers.e.greting: unknown key 'greting'; did you mean 'greeting'?"
    )
    shown = run_cli("show", "m.yaml", cwd=tmp_path, env=env)
    assert "token: '**********'" in shown.stdout and "SECRET" not in shown.stdout


def test_plugin_kind_is_in_the_schema(tmp_path: Path) -> None:
    """`provcfg schema` lists the plugin kind, and `--check` then reports drift (exit 1)."""
    env = _install_plugin(tmp_path, "echo = provcfg_testplugin:KIND")
    done = run_cli("schema", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert "EchoSpec" in schema["$defs"]
    assert schema["$defs"]["EchoSpec"]["properties"]["greeting"]["default"] == "hello"
    check = run_cli(
        "schema", "--check", "-o", str(ROOT / "schemas" / "providers.schema.json"), env=env
    )
    assert check.returncode == 1


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("echo = provcfg_testplugin:MISSING", "failed to load"),
        ("echo = provcfg_testplugin:NOT_A_KIND", "is not a provcfg ProviderKind"),
        ("nokind = provcfg_testplugin:BROKEN", 'must declare kind: Literal["nokind"]'),
    ],
)
def test_broken_plugins_give_a_clean_error(tmp_path: Path, entry: str, fragment: str) -> None:
    """A broken plugin is reported in one line, exit 2, no traceback."""
    env = _install_plugin(tmp_path, entry)
    (tmp_path / "m.yaml").write_text("version: 1\nproviders: {a: {kind: codex}}\n")
    done = run_cli("validate", "m.yaml", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert fragment in done.stderr and "Traceback" not in done.stderr


class _InlineSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["inline"]
    level: int = 1


def test_registry_models_are_memoized_and_builtins_use_manifest() -> None:
    """Built-in kinds validate with Manifest itself; a plugin set gets one memoized subclass."""
    builtin = KindRegistry.discover()
    assert manifest_model_for(builtin) is Manifest
    extended = KindRegistry(
        {
            **{k.name: k for k in builtin.kinds()},
            "inline": ProviderKind("inline", _InlineSpec, "x:y"),
        }
    )
    model = manifest_model_for(extended)
    assert model is manifest_model_for(extended) and issubclass(model, Manifest)
    assert "inline" in model.provider_kinds
    text = "version: 1\nmodels: {m: {inline: i-1}}\nproviders: {p: {kind: inline, level: 3}}\n"
    manifest = parse_manifest_text(text, file="x", environ={}, registry=extended)
    assert getattr(manifest.providers["p"], "level", None) == 3
    with pytest.raises(ManifestError, match="unknown provider kind 'inline'"):
        parse_manifest_text(text, file="x", environ={}, registry=builtin)
