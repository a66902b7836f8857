"""Generators of hostile manifests: many misspelled references, huge words, files at the size cap.

Each generator returns manifest text whose problems are many and whose naive did-you-mean,
listing or scrubbing costs grow with the product of two sizes. The tests check that
``provcfg validate`` of each finishes with bounded output; ``benchmarks/bench_validate_hostile.py``
times the same shapes.
"""

from __future__ import annotations

from collections.abc import Callable

MAX_BYTES = 1024 * 1024
"""The loader's default size cap (``provcfg._loading.DEFAULT_MAX_BYTES``)."""


def misspelled_pools(n: int) -> str:
    """``n`` pools and ``n`` providers, each naming a misspelled pool (the issue's case)."""
    lines = ["version: 1", "pools:"]
    lines += [f"  pool-number-{i:05d}: {{}}" for i in range(n)]
    lines.append("providers:")
    lines += [
        f"  p{i}: {{kind: anthropic-api, pool: pool-nmber-{i:05d}, api_key: k-{i:05d}-secret}}"
        for i in range(n)
    ]
    return "\n".join(lines) + "\n"


def misspelled_aliases(n: int) -> str:
    """``n`` model aliases and ``n`` providers whose ``model:`` misspells one."""
    lines = ["version: 1", "models:"]
    lines += [f"  alias{chr(97 + i % 26)}{i:05d}: {{codex: gpt-{i}}}" for i in range(n)]
    lines.append("providers:")
    lines += [
        f"  p{i}: {{kind: codex, model: alias{chr(97 + i % 26)}x{i:04d}, unknown_models: error}}"
        for i in range(n)
    ]
    return "\n".join(lines) + "\n"


def misspelled_alert_providers(n: int) -> str:
    """``n`` providers and ``n`` alerts naming a misspelled provider."""
    lines = ["version: 1", "providers:"]
    lines += [f"  provider-{i:05d}: {{kind: codex}}" for i in range(n)]
    lines += ["monitoring:", "  alerts:"]
    lines += [
        f"    - {{metric: error_rate, provider: provder-{i:05d}, above: 1}}" for i in range(n)
    ]
    return "\n".join(lines) + "\n"


def unknown_keys(n: int) -> str:
    """``n`` providers, each with three misspelled keys (did-you-mean over the fields)."""
    lines = ["version: 1", "providers:"]
    lines += [
        f"  p{i}: {{kind: anthropic-api, bse_url: x, api_kye: s{i:06d}x, trnsport: fast}}"
        for i in range(n)
    ]
    return "\n".join(lines) + "\n"


def unknown_kinds(n: int) -> str:
    """``n`` providers of a misspelled kind, each with a model alias."""
    lines = ["version: 1", "models:", "  sonnet: {claude-code: s-4}", "providers:"]
    lines += [f"  p{i}: {{kind: open-code, model: sonnet}}" for i in range(n)]
    return "\n".join(lines) + "\n"


def huge_words(size: int) -> str:
    """Keys, a pool reference, a kind, an alias and a variable name of ``size`` characters.

    Explicit keys (``? key``) because libyaml limits implicit ones to 1,024 characters.
    """
    word = "w" * size
    return (
        "version: 1\n"
        f"pools:\n  ? {word}\n  : {{}}\n"
        "providers:\n"
        f"  a:\n    kind: anthropic-api\n    pool: {word}x\n    ? {word}\n    : 1\n"
        f"  b:\n    kind: {word}\n"
        f'  c:\n    kind: codex\n    command: "${{{word}}}"\n    model: {word}\n'
        f"  ? {word}y\n  : {{kind: codex, bogus: 1}}\n"
    )


def tab_lines(n: int) -> str:
    """``n`` lines indented with a tab: one problem per line."""
    return "version: 1\nproviders:\n" + "\ta: 1\n" * n


def duplicate_keys(n: int) -> str:
    """One mapping with ``n`` duplicates of the same key."""
    return "version: 1\nproviders:\n  a: {kind: codex}\n" + "  a: {kind: codex}\n" * n


GENERATORS: dict[str, Callable[[int], str]] = {
    "misspelled-pools": misspelled_pools,
    "misspelled-aliases": misspelled_aliases,
    "misspelled-alert-providers": misspelled_alert_providers,
    "unknown-keys": unknown_keys,
    "unknown-kinds": unknown_kinds,
    "tab-lines": tab_lines,
    "duplicate-keys": duplicate_keys,
}
"""Name -> generator of ``n`` repetitions of one hostile shape."""


def largest_under(generate: Callable[[int], str], limit: int = MAX_BYTES) -> str:
    """The text of ``generate(n)`` for the largest ``n`` whose UTF-8 size is under ``limit``."""
    low, high = 1, 2
    while len(generate(high).encode()) < limit:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if len(generate(middle).encode()) < limit:
            low = middle
        else:
            high = middle
    return generate(low)
