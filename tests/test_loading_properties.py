"""Property tests: valid manifests survive show -> validate; no input makes the loader crash."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provcfg import _yaml
from provcfg._errors import ManifestError
from provcfg._manifest import Manifest
from provcfg._render import effective_data, render_manifest
from tests.support_manifest import load_text

NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,7}", fullmatch=True)
TRICKY = st.sampled_from(
    [
        "3.10",
        "no",
        "yes",
        "on",
        "off",
        "null",
        "~",
        "true",
        "0x1F",
        "0o17",
        "1e3",
        ".inf",
        "${X}",
        "$${Y}",
        "$",
        "a: b",
        "#c",
        "'q'",
        '"d"',
        "- x",
        "  lead",
        "trail  ",
        "multi\nline",
        "",
        "*a",
        "&b",
        "!t",
        "%p",
        "@x",
        "`y`",
        "tab\tin",
        "\u2028",
        "caf\u00e9 \U0001f600",
    ]
)
TEXT = st.one_of(
    TRICKY,
    st.text(st.characters(codec="utf-8"), max_size=12),  # utf-8: no surrogates
)
# Within every duration field's range (the shortest maximum is kill_grace's hour).
DURATION = st.one_of(
    st.floats(min_value=0, max_value=3600, allow_nan=False),
    st.integers(min_value=0, max_value=3600),
    st.sampled_from(["250ms", "30s", "5m", "1h", "0.5s"]),
)
KINDS = ("claude-code", "opencode", "codex", "anthropic-api")


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    """Valid manifest data: cross references drawn from the declared names."""
    aliases = draw(st.lists(NAMES, max_size=3, unique_by=str.casefold))
    models = {
        alias: draw(
            st.dictionaries(
                st.sampled_from(KINDS), st.from_regex(r"[a-z]+-[0-9]", fullmatch=True), min_size=1
            )
        )
        for alias in aliases
    }
    pools = {
        name: draw(
            _optional(
                max_connections=st.integers(1, 500),
                keepalive_expiry=DURATION,
                timeouts=_optional(connect=DURATION, read=DURATION),
            )
        )
        for name in draw(st.lists(NAMES, max_size=2, unique=True))
    }
    cache = draw(
        _optional(
            providers=st.fixed_dictionaries(
                {"backend": st.just("memory")}, optional={"ttl": DURATION}
            ),
            responses=st.fixed_dictionaries(
                {
                    "backend": st.just("redis"),
                    "url": st.builds(lambda p: f"redis://:{p}@127.0.0.1:6379/0", NAMES),
                }
            ),
            files=st.fixed_dictionaries({"backend": st.just("file"), "path": TEXT.filter(bool)}),
        )
    )
    providers: dict[str, Any] = {}
    for name in draw(st.lists(NAMES, min_size=1, max_size=4, unique=True)):
        kind = draw(st.sampled_from(KINDS))
        usable = [a for a in aliases if kind in models[a]]
        spec: dict[str, Any] = {"kind": kind}
        spec.update(
            draw(
                _optional(
                    model=st.sampled_from(usable or ["claude-x-1"]),
                    init=st.sampled_from(["eager", "lazy", "background"]),
                    timeout=DURATION,
                )
            )
        )
        if kind == "anthropic-api":
            spec.update(
                draw(
                    _optional(
                        api_key=TEXT,
                        anthropic_version=TEXT,
                        max_tokens=st.integers(1, 10**6),
                        pool=st.sampled_from(sorted(pools)) if pools else st.nothing(),
                    )
                )
            )
        else:
            spec.update(
                draw(
                    _optional(
                        command=TEXT,
                        cwd=TEXT,
                        extra_args=st.lists(TEXT, max_size=3),
                        env=st.dictionaries(
                            st.from_regex(r"[A-Z_]{1,6}", fullmatch=True), TEXT, max_size=2
                        ),
                        kill_grace=DURATION,
                    )
                )
            )
        providers[name] = spec
    data: dict[str, Any] = {"version": 1, "providers": providers}
    if draw(st.booleans()):
        data["default_provider"] = draw(st.sampled_from(sorted(providers)))
    if models:
        data["models"] = models
    if pools:
        data["pools"] = pools
    if cache:
        data["cache"] = cache
    if draw(st.booleans()):
        data["monitoring"] = {
            "alerts": [
                {
                    "metric": "error_rate",
                    "above": draw(st.floats(0, 1)),
                    "provider": draw(st.sampled_from(sorted(providers))),
                }
            ]
        }
    return data


_NOT_YAML_PRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")


def _json_as_yaml(data: Any) -> str:
    """JSON text (valid YAML too): characters YAML may not hold raw are \\u-escaped."""
    text = json.dumps(data, ensure_ascii=False)
    return _NOT_YAML_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _escape(node: Any) -> Any:
    if isinstance(node, str):
        return node.replace("${", "$${")
    if isinstance(node, dict):
        return {k: _escape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_escape(v) for v in node]
    return node


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=manifests(), as_json=st.booleans())
def test_show_then_validate_is_unchanged(data: dict[str, Any], as_json: bool) -> None:
    """A valid manifest, shown and read back, gives the same masked manifest."""
    escaped = _escape(data)
    text = _json_as_yaml(escaped) if as_json else _yaml.dump(escaped)
    first = load_text(text)
    shown = render_manifest(first)
    second = load_text(shown)
    assert effective_data(second) == effective_data(first)
    assert render_manifest(second) == shown
    assert json.loads(render_manifest(second, "json")) == effective_data(first)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_manifest_error(raw: bytes) -> None:
    """Any byte string either loads or raises ManifestError, never anything else."""
    try:
        result = load_text(raw)
    except ManifestError as exc:
        assert exc.problems
    else:
        assert isinstance(result, Manifest)


YAMLISH = st.lists(
    st.sampled_from(
        [
            *"ab01:-{}[],&*!|>'\"#%@`~$. \t\n",
            "\u00e9",
            "version: 1\n",
            "providers:\n",
            "  a: {kind: codex}\n",
            "  - ",
            "? ",
            "---\n",
            "...\n",
            "${A}",
            "!!str ",
            "&x ",
            "*x",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(YAMLISH)
def test_yaml_like_text_raises_only_manifest_error(text: str) -> None:
    """Text made of YAML punctuation exercises the parser paths; only ManifestError escapes."""
    try:
        load_text(text)
    except ManifestError as exc:
        for problem in exc.problems:
            assert problem.line >= 0 and problem.column >= 0
