"""Fuzz the loader: whatever the bytes, the outcome is a Manifest or a ManifestError.

Three generators feed ``parse_manifest_text``:

* **manifests**: data built from the real field names of every model (kinds, backends,
  pools, timeouts, alerts), each value of a right or a wrong type (durations, huge and
  non-finite numbers, secrets, lists, mappings), misspelled keys, then written as block
  YAML, flow (JSON) YAML, or with anchors, aliases, tags and merge keys spliced in;
* **YAML**: a grammar of YAML constructs: nested block and flow collections (deeper than
  the limit too), anchors, aliases, tags, merge keys, directives, document markers,
  block and quoted scalars with escapes, huge scalars, Unicode and control characters,
  every line ending, a byte order mark;
* **bytes**: raw bytes, and byte-level mutations of a valid manifest.

The only outcomes allowed: a ``Manifest``, or a ``ManifestError`` whose problems are
positioned (line and column >= 0), one printable line each, at most PROBLEM_LIMIT of them
(secrets have their own tests: a fuzzed value is only secret where its key says so);
and the memory one load allocates stays within a bound (tracemalloc). Time is bounded by
pytest-timeout, a hang guard, never asserted.

The normal run tries a few hundred examples in all (seconds). A soak run tries more:
``PROVCFG_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_loading_fuzz.py
-o timeout=0`` (documented in docs/manifest.md, "Fuzzing the loader").
"""

from __future__ import annotations

import json
import os
import tracemalloc
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from provcfg import _yaml
from provcfg._errors import PROBLEM_LIMIT, ManifestError
from provcfg._manifest import (
    AlertSpec,
    AnthropicApiSpec,
    ClaudeCodeSpec,
    CodexSpec,
    FileRegionSpec,
    Manifest,
    MemcachedRegionSpec,
    MemoryRegionSpec,
    OpenCodeSpec,
    PoolSpec,
    RedisRegionSpec,
    TimeoutsSpec,
)
from tests.support_manifest import API_KEY, EXAMPLE, load_text

EXAMPLES = int(os.environ.get("PROVCFG_FUZZ_EXAMPLES", "0")) or None
"""Examples per test in a soak run (PROVCFG_FUZZ_EXAMPLES); None: each test's own default."""
MEMORY_BOUND = 256 * 1024 * 1024
"""Most bytes one load may allocate at its peak (inputs are at most ~1 MiB)."""


def _settings(default: int) -> settings:
    return settings(
        max_examples=EXAMPLES or default,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


def check_outcome(text: str | bytes) -> None:
    """Load ``text``: a Manifest, or a ManifestError of well-formed problems; memory bounded."""
    tracemalloc.start()
    try:
        try:
            result = load_text(text)
        except ManifestError as exc:
            _check_error(exc)
        else:
            assert isinstance(result, Manifest)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"one load allocated {peak:,} bytes"


def _check_error(exc: ManifestError) -> None:
    assert exc.problems and len(exc.problems) <= PROBLEM_LIMIT
    assert exc.omitted >= 0 and exc.total == len(exc.problems) + exc.omitted
    for problem in exc.problems:
        assert problem.line >= 0 and problem.column >= 0, problem
        line = str(problem)
        assert line.isprintable() and "\n" not in line, line
        assert len(problem.message) < 2000, problem.message
    assert len(str(exc)) < 400_000


# --------------------------------------------------------------------------- manifests


def _fields(*models: type[BaseModel]) -> list[str]:
    return sorted({name for model in models for name in model.model_fields})


PROVIDER_FIELDS = _fields(AnthropicApiSpec, ClaudeCodeSpec, OpenCodeSpec, CodexSpec)
REGION_FIELDS = _fields(MemoryRegionSpec, FileRegionSpec, RedisRegionSpec, MemcachedRegionSpec)
POOL_FIELDS = _fields(PoolSpec)
TIMEOUT_FIELDS = _fields(TimeoutsSpec)
ALERT_FIELDS = _fields(AlertSpec)
TOP_FIELDS = _fields(Manifest)
KINDS = ["claude-code", "opencode", "codex", "anthropic-api", "open-code", "anthropic_api", ""]
BACKENDS = ["memory", "file", "redis", "memcached", "memcache", "Redis"]
NAMES = st.one_of(
    st.sampled_from(
        ["a", "b", "api", "Api", "p-1", "x.y", "providers", "cli_paths", "responses", "<<", "0"]
    ),
    st.sampled_from(["-bad", "white space", "x" * 80, "", "é"]),
    st.text(max_size=6),
)


def _typo(word: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(word),
        st.integers(0, max(0, len(word) - 1)).map(lambda i: word[:i] + word[i + 1 :]),
        st.integers(0, len(word)).map(lambda i: word[:i] + "x" + word[i:]),
        st.just(word.upper()),
    )


def _key(fields: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(fields), st.sampled_from(fields).flatmap(_typo), NAMES)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.sampled_from(
        [
            "250ms",
            "30s",
            "5m",
            "1h",
            "1d",
            "400d",
            "-3s",
            "1e300",
            ".inf",
            ".nan",
            "0x" + "f" * 400,
            "9" * 5000,
            "${HOME}",
            "${UNSET_VARIABLE_X}",
            "${A:-${B}}",
            "$${x}",
            "${",
            "redis://:pw@127.0.0.1:6379/0",
            "memcached://127.0.0.1:11211",
            "https://api.anthropic.com",
            "http://user:pass@127.0.0.1:1",
            API_KEY,
            "sonnet",
            "claude-sonnet-4-5",
            "lazy",
            "eager",
            "background",
            "fast",
            "sdk",
            "error",
            "passthrough",
        ]
    ),
    st.text(max_size=30),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(NAMES, inner, max_size=4)),
    max_leaves=5,
)


def _spec(fields: list[str], tag: str, tags: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {tag: st.one_of(st.sampled_from(tags), VALUES)},
        optional={},
    ).flatmap(
        lambda head: st.dictionaries(_key(fields), VALUES, max_size=4).map(
            lambda rest: {**head, **rest}
        )
    )


@st.composite
def manifest_data(draw: st.DrawFn) -> dict[str, Any]:
    """Manifest-shaped data from the real field names, values of right and wrong types."""
    data: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        data["version"] = draw(st.one_of(st.just(1), VALUES))
    providers = draw(st.dictionaries(NAMES, _spec(PROVIDER_FIELDS, "kind", KINDS), max_size=5))
    data["providers"] = (
        draw(st.one_of(st.just(providers), VALUES)) if draw(st.integers(0, 9)) == 0 else providers
    )
    if draw(st.booleans()):
        data["cache"] = draw(
            st.dictionaries(NAMES, _spec(REGION_FIELDS, "backend", BACKENDS), max_size=3)
        )
    if draw(st.booleans()):
        pools = draw(st.dictionaries(NAMES, st.dictionaries(_key(POOL_FIELDS), VALUES, max_size=5)))
        for spec in pools.values():
            if draw(st.booleans()):
                spec["timeouts"] = draw(st.dictionaries(_key(TIMEOUT_FIELDS), VALUES, max_size=4))
        data["pools"] = pools
    if draw(st.booleans()):
        data["models"] = draw(
            st.dictionaries(NAMES, st.dictionaries(st.sampled_from(KINDS), VALUES), max_size=3)
        )
    if draw(st.booleans()):
        data["monitoring"] = {
            "alerts": draw(st.lists(st.dictionaries(_key(ALERT_FIELDS), VALUES), max_size=3))
        }
    if draw(st.booleans()):
        data["default_provider"] = draw(st.one_of(NAMES, VALUES))
    for key in draw(st.lists(_key(TOP_FIELDS), max_size=2)):
        data.setdefault(key, draw(VALUES))
    return data


def _as_json(data: Any) -> str:
    return json.dumps(data, default=str, allow_nan=True)


@st.composite
def manifest_texts(draw: st.DrawFn) -> str:
    """manifest_data written as block YAML or flow YAML, then maybe spliced with YAML
    constructs the loader refuses (anchors, aliases, tags, merge keys)."""
    data = draw(manifest_data())
    try:
        text = _yaml.dump(data) if draw(st.booleans()) else _as_json(data)
    except (ValueError, TypeError, OverflowError):  # a float the dumper cannot write
        text = _as_json(data)
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(0, 3))):
        splice = draw(
            st.sampled_from(
                ["&a ", "*a", "!!str ", "!tag ", "<<: *a\n", "? ", "- ", "\t", "'", '"', "{", "]"]
            )
        )
        at = draw(st.integers(0, len(lines)))
        column = draw(st.integers(0, 12))
        if at < len(lines):
            line = lines[at]
            lines[at] = line[:column] + splice + line[column:]
        else:
            lines.append(splice)
    return "".join(lines)


@_settings(50)
@given(manifest_texts())
def test_fuzzed_manifests_load_or_fail_cleanly(text: str) -> None:
    """Manifests from real field names with wrong and right types: Manifest or ManifestError."""
    check_outcome(text)


# --------------------------------------------------------------------------- YAML grammar

PLAIN = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_ -]{0,12}", fullmatch=True),
    st.sampled_from(["1", "-1", "0o17", "0x1F", "1e3", ".inf", ".NaN", "~", "null", "true", "no"]),
)
QUOTED = st.one_of(
    st.text(max_size=20).map(json.dumps),  # double-quoted with escapes
    st.text(alphabet=st.characters(blacklist_characters="'\n"), max_size=20).map(
        lambda t: f"'{t}'"
    ),
    st.sampled_from(['"\\x00"', '"\\u2028"', '"\\N"', '"\\uD800"', '"\\U0010FFFF"', '"\\e"']),
)
HUGE = st.sampled_from([10, 1_000, 100_000, 1_100_000]).flatmap(
    lambda n: st.sampled_from(["x", "9", "é", "\U0001f600", " "]).map(lambda c: c * n)
)
UNICODE = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=["Cs"]),
    max_size=12,
)
SCALAR_TEXT = st.one_of(PLAIN, QUOTED, UNICODE, HUGE.map(json.dumps))
PROPERTIES = st.sampled_from(["", "", "", "&a ", "!t ", "!!str ", "!!map ", "&b !!int "])


def _flow(depth: int) -> st.SearchStrategy[str]:
    if depth <= 0:
        return st.one_of(SCALAR_TEXT, st.just("*a"))
    inner = _flow(depth - 1)
    return st.one_of(
        SCALAR_TEXT,
        st.just("*a"),
        st.lists(st.tuples(PROPERTIES, inner).map("".join), max_size=3).map(
            lambda items: "[" + ", ".join(items) + "]"
        ),
        st.lists(st.tuples(SCALAR_TEXT, inner), max_size=3).map(
            lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        ),
    )


@st.composite
def block(draw: st.DrawFn, indent: int = 0, depth: int = 3) -> str:
    """A block mapping or sequence, with keys, values and YAML properties drawn freely."""
    pad = " " * indent
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        style = draw(st.integers(0, 6))
        key = draw(st.one_of(PLAIN, st.sampled_from(["version", "providers", "kind", "<<"])))
        prop = draw(PROPERTIES)
        if style == 0 and depth > 0:
            lines.append(f"{pad}{key}: {prop}\n" + draw(block(indent + 2, depth - 1)))
        elif style == 1:
            lines.append(f"{pad}- {prop}{draw(_flow(2))}\n")
        elif style == 2:
            lines.append(f"{pad}{key}: |\n{pad}  {draw(UNICODE)}\n{pad}  more\n")
        elif style == 3:
            lines.append(f"{pad}? {key}\n{pad}: {prop}{draw(_flow(2))}\n")
        elif style == 4:
            lines.append(f"{pad}<<: *a\n")
        else:
            lines.append(f"{pad}{key}: {prop}{draw(_flow(2))}\n")
    return "".join(lines)


@st.composite
def yaml_documents(draw: st.DrawFn) -> str:
    """Whole YAML texts: directives, markers, BOM, deep nesting, every line ending."""
    parts = []
    if draw(st.integers(0, 9)) == 0:
        parts.append("\ufeff")
    if draw(st.integers(0, 5)) == 0:
        parts.append(
            draw(st.sampled_from(["%YAML 1.2\n---\n", "%TAG ! tag:x,2000:\n---\n", "---\n"]))
        )
    parts.append(draw(st.sampled_from(["version: 1\n", "", "version: 1\nproviders:\n"])))
    parts.append(draw(block()))
    if draw(st.integers(0, 5)) == 0:
        depth = draw(st.integers(1, 200))
        parts.append("deep: " + "[" * depth + "]" * depth + "\n")
    if draw(st.integers(0, 5)) == 0:
        depth = draw(st.integers(1, 100))
        parts.append("".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + "  " * depth + "x\n")
    if draw(st.integers(0, 7)) == 0:
        parts.append(draw(st.sampled_from(["...\n", "---\nversion: 1\n", "# c\n", "\x00", "\x85"])))
    text = "".join(parts)
    ending = draw(st.sampled_from(["\n", "\r\n", "\r", "\x85", "\u2028", "\u2029"]))
    return text.replace("\n", ending)


@_settings(50)
@given(yaml_documents())
def test_fuzzed_yaml_loads_or_fails_cleanly(text: str) -> None:
    """YAML of every construct the loader refuses or accepts: Manifest or ManifestError."""
    check_outcome(text)


# --------------------------------------------------------------------------- bytes

SEED = EXAMPLE.read_bytes()


@st.composite
def mutated_example(draw: st.DrawFn) -> bytes:
    """The example manifest with bytes flipped, inserted, deleted or the file truncated."""
    data = bytearray(SEED)
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.integers(0, 3))
        if action == 0 and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == 1:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == 2:
            del data[at : at + draw(st.integers(1, 40))]
        else:
            del data[at:]
    return bytes(data)


@_settings(150)
@given(st.one_of(st.binary(max_size=4000), mutated_example()))
def test_fuzzed_bytes_load_or_fail_cleanly(data: bytes) -> None:
    """Raw bytes and mutations of the example manifest: Manifest or ManifestError."""
    check_outcome(data)
