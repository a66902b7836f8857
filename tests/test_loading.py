"""The loader: YAML 1.2 scalars, durations, ${VAR}, PROVCFG_ overrides, reading files, secrets."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from provcfg._errors import ManifestError
from provcfg._loading import ManifestReadError, load_manifest, parse_manifest_text
from provcfg._manifest import AnthropicApiSpec, ClaudeCodeSpec, RedisRegionSpec
from tests.support_manifest import (
    API_KEY,
    ENV_SECRET,
    EXAMPLE,
    assert_no_secret,
    load_text,
    problems_of,
    yaml_text,
)

MINIMAL = "version: 1\nproviders:\n  api: {kind: anthropic-api}\n"


def test_example_manifest_validates_offline() -> None:
    """providers.yaml validates with no environment at all, and `local` is the offline stub."""
    manifest = load_manifest(EXAMPLE, environ={})
    assert set(manifest.providers) >= {"claude", "api", "local", "opencode", "codex"}
    local = manifest.providers["local"]
    assert isinstance(local, AnthropicApiSpec)
    assert (local.base_url.get_secret_value(), local.pool, local.transport, local.init) == (
        "http://127.0.0.1:8765",
        "anthropic",
        "fast",
        "lazy",
    )
    assert local.api_key is not None and local.api_key.get_secret_value() == "stub"
    assert set(manifest.cache) == {"providers", "cli_paths", "responses"}
    assert EXAMPLE.read_text().startswith(
        "# yaml-language-server: $schema=schemas/providers.schema.json\n"
    )


def test_yaml_12_scalars_keep_strings() -> None:
    """`3.10` stays "3.10" in a string field; yes/no/on/off are strings, not booleans."""
    manifest = load_text(
        yaml_text(
            """
            version: 1
            providers:
              a: {kind: anthropic-api, model: 3.10, anthropic_version: 2023.06}
              o: {kind: opencode, agent: no, command: on, extra_args: [yes, off, 0x1F, 1e3, 007]}
            """
        )
    )
    api = manifest.providers["a"]
    assert (api.model, getattr(api, "anthropic_version", None)) == ("3.10", "2023.06")
    spec = manifest.providers["o"]
    assert (getattr(spec, "agent", None), getattr(spec, "command", None)) == ("no", "on")
    assert getattr(spec, "extra_args", None) == ("yes", "off", "0x1F", "1e3", "007")


def test_numbers_and_booleans_still_work_where_expected() -> None:
    """Plain numbers feed int/float fields and true/false feed booleans."""
    manifest = load_text(
        MINIMAL
        + "  c: {kind: claude-code, partial_messages: true, max_turns: 3, line_limit: 0x10000}\n"
        + "pools:\n  p: {max_connections: 7}\n"
    )
    claude = manifest.providers["c"]
    assert isinstance(claude, ClaudeCodeSpec)
    assert (claude.partial_messages, claude.max_turns, claude.line_limit) == (True, 3, 65536)
    assert manifest.pools["p"].max_connections == 7


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5", 1.5),
        ("2", 2.0),
        ("'45'", 45.0),
    ],
)
def test_durations_become_float_seconds(written: str, seconds: float) -> None:
    """Every duration form becomes float seconds."""
    manifest = load_text(f"version: 1\nproviders:\n  a: {{kind: codex, timeout: {written}}}\n")
    assert manifest.providers["a"].timeout == seconds


def test_variables_are_substituted() -> None:
    """${VAR}, ${VAR:-default}, an empty variable with a default, and $${ as a literal."""
    text = yaml_text(
        """
        version: 1
        providers:
          a:
            kind: anthropic-api
            base_url: "${BASE}"
            api_key: "${EMPTY:-fallback}"
            model: "${MISSING:-claude-x-1}"
            anthropic_version: "$${NOT_A_VAR}-${BASE:-no}"
            max_tokens: ${TOKENS:-4096}
        """
    )
    manifest = load_text(text, {"BASE": "http://127.0.0.1:9", "EMPTY": ""})
    spec = manifest.providers["a"]
    assert isinstance(spec, AnthropicApiSpec)
    assert spec.base_url.get_secret_value() == "http://127.0.0.1:9"
    assert spec.api_key == SecretStr("fallback")
    assert spec.model == "claude-x-1"
    assert spec.anthropic_version == "${NOT_A_VAR}-http://127.0.0.1:9"
    assert spec.max_tokens == 4096


def test_missing_variables_are_all_reported_by_name() -> None:
    """Each unset variable is its own problem naming the variable, never a value."""
    error = problems_of(
        MINIMAL + '  b: {kind: anthropic-api, api_key: "${KEY_ONE}", base_url: "${URL_TWO}"}\n',
        {"UNRELATED": API_KEY},
    )
    messages = [p.message for p in error.problems]
    assert any("KEY_ONE is not set" in m for m in messages)
    assert any("URL_TWO is not set" in m for m in messages)
    assert all(p.line == 4 for p in error.problems)


def test_substituted_secret_never_appears_in_errors() -> None:
    """A secret variable placed in a field where it is invalid is not echoed."""
    error = problems_of(
        MINIMAL + '  b: {kind: codex, sandbox: "${MY_TOKEN}", timeout: "${MY_TOKEN}"}\n',
        {"MY_TOKEN": API_KEY},
    )
    assert len(error.problems) == 2
    assert_no_secret(str(error), repr(error))


def test_env_override_beats_the_file_and_matches_keys_ignoring_case() -> None:
    """PROVCFG_PROVIDERS__API__BASE_URL overrides providers.API.base_url; bools and lists parse."""
    text = MINIMAL.replace("api:", "API:") + "  c: {kind: claude-code, env: {Keep: k}}\n"
    environ = {
        "PROVCFG_PROVIDERS__API__BASE_URL": "http://127.0.0.1:1234",
        "provcfg_default_provider": "c",
        "PROVCFG_PROVIDERS__C__PARTIAL_MESSAGES": "true",
        "PROVCFG_PROVIDERS__C__EXTRA_ARGS": '["--verbose"]',
        "PROVCFG_PROVIDERS__C__ENV__NEW_VAR": ENV_SECRET,
        "PROVCFG_PROVIDERS__C__ENV__KEEP": "changed",
        "PROVCFG_POOLS__P__TIMEOUTS__READ": "2m",
    }
    manifest = load_text(text, environ)
    assert set(manifest.providers) == {"API", "c"}
    spec = manifest.providers["API"]
    assert isinstance(spec, AnthropicApiSpec)
    assert spec.base_url.get_secret_value() == "http://127.0.0.1:1234"
    assert manifest.default_provider == "c"
    claude = manifest.providers["c"]
    assert isinstance(claude, ClaudeCodeSpec)
    assert claude.partial_messages is True
    assert claude.extra_args == ("--verbose",)
    assert {k: v.get_secret_value() for k, v in claude.env.items()} == {
        "Keep": "changed",
        "NEW_VAR": ENV_SECRET,
    }
    assert manifest.pools["p"].timeouts.read == 120.0


def test_env_override_problem_names_the_variable_at_line_zero() -> None:
    """A bad override is reported at line 0 with the variable's name, secret-free."""
    environ = {
        "PROVCFG_PROVIDERS__API__TRANSPORT": "fsat",
        "PROVCFG_PROVIDERS__API__API_KEY": '{"not": "a string"}',
        "PROVCFG_PROVIDERS__API__BASE_URL": f"ftp://{API_KEY}@example",
        "PROVCFG_PROVIDERS__NEW__MODEL": "x-1",
    }
    error = problems_of(MINIMAL, environ)
    by_loc = {p.loc: p for p in error.problems}
    assert by_loc["providers.api.transport"].line == 0
    assert "PROVCFG_PROVIDERS__API__TRANSPORT" in by_loc["providers.api.transport"].message
    assert "PROVCFG_PROVIDERS__API__BASE_URL" in by_loc["providers.api.base_url"].message
    assert "PROVCFG_PROVIDERS__NEW__MODEL" in by_loc["providers.new.kind"].message
    assert_no_secret(str(error))


def test_env_override_invalid_json_names_the_variable() -> None:
    """A list-valued override that is not JSON is a problem naming the variable."""
    error = problems_of(MINIMAL, {"PROVCFG_MONITORING__ALERTS": "[{broken"})
    (problem,) = error.problems
    assert (problem.line, problem.column) == (0, 0)
    assert "PROVCFG_MONITORING__ALERTS" in problem.message


def test_redis_url_password_is_secret() -> None:
    """The redis URL is a SecretStr; repr and str of the manifest never show the password."""
    text = (
        MINIMAL
        + "cache:\n  r: {backend: redis, url: 'redis://:"
        + ENV_SECRET
        + "@127.0.0.1:6379/0'}\n"
    )
    manifest = load_text(text)
    region = manifest.cache["r"]
    assert isinstance(region, RedisRegionSpec)
    assert region.url.get_secret_value().endswith("@127.0.0.1:6379/0")
    assert_no_secret(repr(manifest), str(manifest), repr(region))


def test_bytes_str_and_bom_are_accepted() -> None:
    """parse_manifest_text takes bytes or str, and ignores a UTF-8 byte order mark."""
    for data in (MINIMAL, MINIMAL.encode(), b"\xef\xbb\xbf" + MINIMAL.encode()):
        assert set(parse_manifest_text(data, file="x.yaml", environ={}).providers) == {"api"}


def test_parse_from_a_worker_thread() -> None:
    """The hot-reload path calls parse_manifest_text from a thread with bytes it read."""
    results: list[object] = []
    worker = threading.Thread(
        target=lambda: results.append(parse_manifest_text(MINIMAL.encode(), file="t", environ={}))
    )
    worker.start()
    worker.join()
    assert len(results) == 1 and "api" in getattr(results[0], "providers", {})


def test_unreadable_files(tmp_path: Path) -> None:
    """A missing file and a folder are ManifestReadError problems at line 0."""
    for path, fragment in ((tmp_path / "nope.yaml", "file not found"), (tmp_path, "is a folder")):
        with pytest.raises(ManifestReadError) as info:
            load_manifest(path, environ={})
        (problem,) = info.value.problems
        assert (problem.file, problem.line, fragment in problem.message) == (str(path), 0, True)


def test_errors_carry_the_file_name(tmp_path: Path) -> None:
    """Problems name the path as given, so editors can jump to it."""
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nproviders: {a: {kind: nope}}\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path, environ={})
    assert str(info.value).splitlines()[1].startswith(f"{path}:2:")


def test_manifest_is_frozen() -> None:
    """The validated manifest cannot be changed in place."""
    manifest = load_text(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        setattr(manifest, "default_provider", "x")  # noqa: B010 - mypy would refuse the plain form
