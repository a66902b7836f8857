"""A table of bad manifests: each gives the exact line:column, a useful message, and no secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from provcfg._errors import ManifestError
from provcfg._loading import load_manifest
from tests.support_manifest import (
    API_KEY,
    ENV_SECRET,
    REDIS_PASSWORD,
    assert_no_secret,
    clean_env,
    load_text,
    run_cli,
)

# The head every case shares: line 1 version, lines 2-6 the provider `api` holding a secret,
# with `init:` set as real manifests do (a Literal field every provider kind shares: the
# did-you-mean must still pick the kind by its discriminator).
HEAD = f"""\
version: 1
providers:
  api:
    kind: anthropic-api
    api_key: {API_KEY}
    init: background
"""

# (id, manifest text, line, column, dotted loc, message fragment)
CASES: list[tuple[str, str, int, int, str, str]] = [
    (
        "typo-key",
        HEAD + "    bse_url: https://x\n",
        7,
        5,
        "providers.api.bse_url",
        "unknown key 'bse_url'; did you mean 'base_url'?",
    ),
    (
        "missing-version",
        HEAD.replace("version: 1\n", "# no version\n"),
        2,
        1,
        "version",
        "missing required key 'version'; add 'version: 1'",
    ),
    (
        "missing-kind",
        HEAD.replace("    kind: anthropic-api\n", ""),
        3,
        3,
        "providers.api.kind",
        "missing required key 'kind'; add kind: one of claude-code",
    ),
    (
        "unknown-kind",
        HEAD.replace("anthropic-api", "anthropic_api"),
        4,
        11,
        "providers.api.kind",
        "did you mean 'anthropic-api'?",
    ),
    (
        "bad-literal",
        HEAD + "    transport: fsat\n",
        7,
        16,
        "providers.api.transport",
        "must be one of sdk, fast; did you mean 'fast'?",
    ),
    (
        "bad-duration",
        HEAD + "    timeout: 5x\n",
        7,
        14,
        "providers.api.timeout",
        "not a duration; write 250ms",
    ),
    (
        "negative-duration",
        HEAD + "    timeout: -3\n",
        7,
        14,
        "providers.api.timeout",
        "cannot be negative",
    ),
    (
        "duplicate-key",
        HEAD + "    api_key: other\n",
        7,
        5,
        "providers.api.api_key",
        "duplicate key 'api_key' (first on line 5)",
    ),
    (
        "anchor",
        HEAD + "    model: &m sonnet-4\n",
        7,
        12,
        "providers.api.model",
        "anchors (&name) are not allowed",
    ),
    (
        "alias",
        HEAD + "  other: *api\n",
        7,
        10,
        "providers.other",
        "aliases (*name) are not allowed",
    ),
    (
        "tag",
        HEAD + "    model: !!python/name:os.system x\n",
        7,
        12,
        "providers.api.model",
        "tags (!name) are not allowed",
    ),
    ("multi-document", HEAD + "---\nversion: 1\n", 7, 1, "", "one YAML document"),
    ("list-root", "- version: 1\n", 1, 1, "", "must be a mapping (key: value lines), not a list"),
    ("scalar-root", "just text\n", 1, 1, "", "not a single value"),
    ("empty-file", "", 1, 1, "", "the manifest is empty"),
    ("comment-only", "# nothing here\n\n# still nothing\n", 4, 1, "", "the manifest is empty"),
    ("tab-indent", HEAD + "\tmodel: x\n", 7, 1, "", "tab in indentation"),
    ("syntax-unclosed-quote", HEAD + '    model: "sonnet\n', 8, 1, "", "YAML syntax error"),
    ("syntax-colon", HEAD + "    model: a: b\n", 7, 13, "", "a ':' inside an unquoted value"),
    ("control-char", HEAD + "    model: a\x07b\n", 7, 13, "", "character U+0007 is not allowed"),
    (
        "too-deep",
        "version: 1\nx: " + "[" * 70 + "]" * 70 + "\n",
        2,
        67,
        "x" + ".0" * 63,
        "nesting deeper than 64 levels",
    ),
    (
        "missing-variable",
        HEAD + '    base_url: "${NOPE_UNSET_VAR}"\n',
        7,
        15,
        "providers.api.base_url",
        "environment variable NOPE_UNSET_VAR is not set",
    ),
    (
        "malformed-variable",
        HEAD + '    base_url: "${1BAD}"\n',
        7,
        15,
        "providers.api.base_url",
        "malformed variable reference",
    ),
    (
        "default-provider",
        "default_provider: apii\n" + HEAD,
        1,
        19,
        "default_provider",
        "no provider named 'apii' (providers: api); did you mean 'api'?",
    ),
    (
        "unknown-pool",
        HEAD + "    pool: anthropc\npools:\n  anthropic: {}\n",
        7,
        11,
        "providers.api.pool",
        "no pool named 'anthropc' (pools: anthropic); did you mean",
    ),
    (
        "unknown-alias",
        HEAD + "    model: sonet\nmodels:\n  sonnet: {anthropic-api: claude-x-1}\n",
        7,
        12,
        "providers.api.model",
        "unknown model alias 'sonet'; did you mean 'sonnet'?",
    ),
    (
        "alias-without-kind",
        HEAD + "    model: haiku\nmodels:\n  haiku: {claude-code: h-4}\n",
        7,
        12,
        "providers.api.model",
        "alias 'haiku' has no model id for kind 'anthropic-api'",
    ),
    (
        "models-unknown-kind",
        HEAD + "models:\n  sonnet: {claude_code: s-4}\n",
        8,
        12,
        "models.sonnet.claude_code",
        "did you mean 'claude-code'?",
    ),
    (
        "alias-case",
        HEAD + "models:\n  sonnet: {codex: a-1}\n  Sonnet: {codex: b-1}\n",
        9,
        3,
        "models.Sonnet",
        "only by case",
    ),
    (
        "redis-no-url",
        HEAD + "cache:\n  responses: {backend: redis}\n",
        8,
        3,
        "cache.responses.url",
        "missing required key 'url'",
    ),
    (
        "redis-bad-scheme",
        HEAD + f"cache:\n  r: {{backend: redis, url: 'http://:{REDIS_PASSWORD}@h'}}\n",
        8,
        28,
        "cache.r.url",
        "must be a redis://, rediss:// or unix:// URL",
    ),
    (
        "providers-region-not-memory",
        HEAD + "cache:\n  providers: {backend: file, path: /tmp/x}\n",
        8,
        24,
        "cache.providers.backend",
        "must be backend: memory",
    ),
    (
        "alert-unknown-provider",
        HEAD + "monitoring:\n  alerts:\n    - {metric: error_rate, provider: ap, above: 1}\n",
        9,
        38,
        "monitoring.alerts.0.provider",
        "no provider named 'ap'",
    ),
    (
        "alert-no-threshold",
        HEAD + "monitoring:\n  alerts:\n    - metric: error_rate\n",
        9,
        7,
        "monitoring.alerts.0",
        "add above: <value>, below: <value> or above_baseline",
    ),
    (
        "api-key-bool",
        HEAD.replace(API_KEY, "true"),
        5,
        14,
        "providers.api.api_key",
        "must be a string; put the value in quotes",
    ),
    (
        "api-key-mapping",
        HEAD.replace(API_KEY, "{nested: " + API_KEY + "}"),
        5,
        14,
        "providers.api.api_key",
        "must be a string",
    ),
    (
        "bad-name",
        HEAD + "  my provider: {kind: codex}\n",
        7,
        3,
        "providers.my provider",
        "names use letters, digits",
    ),
    (
        "pool-zero",
        HEAD + "pools:\n  p: {max_connections: 0}\n",
        8,
        24,
        "pools.p.max_connections",
        "must be at least 1",
    ),
    ("version-2", HEAD.replace("version: 1", "version: 2"), 1, 10, "version", "must be 1"),
    (
        "yes-is-not-bool",
        HEAD + "  c: {kind: claude-code, partial_messages: yes}\n",
        7,
        44,
        "providers.c.partial_messages",
        "must be true or false",
    ),
    (
        "base-url-scheme",
        HEAD + "    base_url: ftp://example\n",
        7,
        15,
        "providers.api.base_url",
        "must be an http:// or https:// URL",
    ),
    (
        "no-providers",
        "version: 1\nproviders: {}\n",
        2,
        12,
        "providers",
        "declare at least one provider",
    ),
    (
        "cli-env-secret-mapping",
        HEAD + f"  c:\n    kind: codex\n    env: {{K: [{ENV_SECRET}]}}\n",
        9,
        14,
        "providers.c.env.K",
        "must be a string",
    ),
    ("empty-value", HEAD + "    base_url:\n", 7, 14, "providers.api.base_url", "has no value"),
    ("complex-key", HEAD + "  ? [a, b]\n  : 1\n", 7, 5, "providers", "a key must be a plain name"),
    ("unknown-top-level", HEAD + "pool:\n  x: {}\n", 7, 1, "pool", "did you mean 'pools'?"),
    (
        "typo-key-codex-with-unknown-models",
        HEAD + "  c: {kind: codex, unknown_models: error, init: lazy, sandbx: read-only}\n",
        7,
        55,
        "providers.c.sandbx",
        "unknown key 'sandbx'; did you mean 'sandbox'?",
    ),
    (
        "typo-key-opencode-with-init",
        HEAD + "  o: {kind: opencode, init: eager, agnt: build}\n",
        7,
        36,
        "providers.o.agnt",
        "unknown key 'agnt'; did you mean 'agent'?",
    ),
    (
        "typo-key-redis-region",
        HEAD + "cache:\n  r: {backend: redis, url: 'redis://h', ttl: 1m, socket_timout: 1}\n",
        8,
        50,
        "cache.r.socket_timout",
        "did you mean 'socket_timeout'?",
    ),
    (
        "unknown-kind-with-alias",
        HEAD + "  oc: {kind: open-code, model: sonnet}\nmodels:\n  sonnet: {claude-code: s-4}\n",
        7,
        14,
        "providers.oc.kind",
        "unknown kind 'open-code' (kinds: claude-code, opencode, codex, anthropic-api); "
        "did you mean 'opencode'?",
    ),
    (
        "redis-socket-timeout-huge",
        HEAD + "cache:\n  r: {backend: redis, url: 'redis://h', socket_timeout: 1e300}\n",
        8,
        57,
        "cache.r.socket_timeout",
        "must be at most 1d (86,400 seconds)",
    ),
    (
        "region-ttl-huge",
        HEAD + "cache:\n  r: {backend: redis, url: 'redis://h', ttl: 1e300}\n",
        8,
        46,
        "cache.r.ttl",
        "must be at most 365d",
    ),
    (
        "max-size-huge",
        HEAD + "cache:\n  m: {backend: memory, max_size: 99999999999999999999999999}\n",
        8,
        34,
        "cache.m.max_size",
        "must be at most 10,000,000",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "loc", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_manifest_is_positioned_and_secret_free(
    text: str, line: int, column: int, loc: str, fragment: str
) -> None:
    """Each bad manifest yields a problem at the exact line:column with a helpful message."""
    with pytest.raises(ManifestError) as info:
        load_text(text)
    problems = info.value.problems
    found = [p for p in problems if fragment in p.message]
    assert found, f"no problem mentions {fragment!r}: {[str(p) for p in problems]}"
    assert (found[0].line, found[0].column, found[0].loc) == (line, column, loc), str(found[0])
    assert found[0].file == "m.yaml"
    assert_no_secret(str(info.value), repr(info.value), *(repr(p) for p in problems))


def test_unknown_kind_is_reported_once() -> None:
    """A provider of an unknown kind has exactly one problem, its kind, with a did-you-mean:
    nothing about model ids for a kind that does not exist."""
    text = HEAD + "  oc: {kind: open-code, model: sonnet}\nmodels:\n  sonnet: {claude-code: s-4}\n"
    with pytest.raises(ManifestError) as info:
        load_text(text)
    (problem,) = info.value.problems
    assert problem.loc == "providers.oc.kind"
    assert "did you mean 'opencode'?" in problem.message


def test_typo_under_every_kind_suggests_that_kinds_key() -> None:
    """For every kind, with init: and unknown_models: set, a misspelled key of that kind
    gets a did-you-mean from that kind's own fields."""
    own = {
        "claude-code": "permision_mode",
        "opencode": "agnt",
        "codex": "sandbx",
        "anthropic-api": "bse_url",
    }
    for kind, typo in own.items():
        text = (
            "version: 1\nproviders:\n"
            f"  p: {{kind: {kind}, init: eager, unknown_models: error, {typo}: x}}\n"
        )
        with pytest.raises(ManifestError) as info:
            load_text(text)
        (problem,) = info.value.problems
        assert "did you mean" in problem.message, (kind, problem.message)
        assert problem.loc == f"providers.p.{typo}"


def test_table_is_large_enough() -> None:
    """The issue asks for at least 30 distinct bad manifests."""
    assert len({case[0] for case in CASES}) == len(CASES) >= 30


def test_non_utf8_bytes_point_at_the_byte() -> None:
    """Bytes that are not UTF-8 give the line and column of the first bad byte."""
    data = (HEAD + "    model: caf\xe9\n").encode("latin-1")
    with pytest.raises(ManifestError) as info:
        load_text(data)
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (7, 15)
    assert "not valid UTF-8" in problem.message


def test_file_over_the_size_cap_is_rejected(tmp_path: Path) -> None:
    """A file over the cap is refused before parsing, with the limit named."""
    path = tmp_path / "big.yaml"
    path.write_text(HEAD + "# " + "x" * 2000 + "\n")
    with pytest.raises(ManifestError, match="larger than the 1000-byte limit"):
        load_manifest(path, environ={}, max_bytes=1000)
    path.write_text(HEAD + "#" * (1024 * 1024))
    with pytest.raises(ManifestError, match="1048576-byte limit"):
        load_manifest(path, environ={})


def test_all_problems_reported_in_one_run_sorted() -> None:
    """Several independent problems come back together, ordered by position."""
    text = HEAD + "    transport: x\n    bse_url: y\ndefault_provider: nope\n"
    with pytest.raises(ManifestError) as info:
        load_text(text)
    places = [(p.line, p.column) for p in info.value.problems]
    assert len(places) == 3
    assert places == sorted(places)


CLI_CASES = [
    "typo-key",
    "duplicate-key",
    "redis-bad-scheme",
    "api-key-bool",
    "tab-indent",
    "cli-env-secret-mapping",
    "missing-variable",
    "alias",
]


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_bad_manifest_through_the_real_cli(tmp_path: Path, case_id: str) -> None:
    """`provcfg validate` prints FILE:LINE:COL: loc: message, exits 1, leaks nothing."""
    _, text, line, column, loc, fragment = next(c for c in CASES if c[0] == case_id)
    (tmp_path / "m.yaml").write_text(text)
    done = run_cli("validate", "m.yaml", cwd=tmp_path, env=clean_env(ANTHROPIC_API_KEY=API_KEY))
    assert done.returncode == 1, done.stderr
    expected = f"m.yaml:{line}:{column}: {loc}: " if loc else f"m.yaml:{line}:{column}: "
    assert any(row.startswith(expected) and fragment in row for row in done.stdout.splitlines()), (
        done.stdout
    )
    assert "Traceback" not in done.stderr
    assert_no_secret(done.stdout, done.stderr)
