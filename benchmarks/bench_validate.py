"""Benchmark manifest loading: the whole `provcfg validate` process and in-process parse+validate.

Run: .venv/bin/python benchmarks/bench_validate.py [--runs N] [--iterations N]

Budgets (docs/performance.md, "Manifest loading"): whole process median <= 0.25 s;
in-process parse+validate of a 10-provider manifest <= 2 ms median after imports.
Everything is measured side by side in one run and reported with its ratio to a floor
(`python -c pass`, `yaml.safe_load` of the same text), because this machine is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "providers.yaml"
SCRIPT = Path(sys.executable).with_name("provcfg")


def ten_providers() -> str:
    """A manifest with 10 providers of all kinds, aliases, pools, regions and alerts."""
    kinds = ["anthropic-api", "claude-code", "opencode", "codex"]
    lines = [
        "version: 1",
        "default_provider: p0",
        "models:",
        "  sonnet: {anthropic-api: claude-sonnet-4-5-20250929, claude-code: claude-sonnet-4-5,",
        "           opencode: anthropic/claude-sonnet-4-5, codex: gpt-5-codex}",
        "  haiku: {anthropic-api: claude-haiku-4-5-20251001, claude-code: claude-haiku-4-5}",
        "cache:",
        "  providers: {backend: memory, max_size: 16, ttl: 1h}",
        "  cli_paths: {backend: memory, max_size: 64, ttl: 1d}",
        '  responses: {backend: redis, url: "${REDIS_URL:-redis://127.0.0.1:6379/0}", ttl: 10m}',
        "pools:",
        "  anthropic: {max_connections: 100, max_keepalive_connections: 20, keepalive_expiry: 30s,",
        "              timeouts: {connect: 5s, read: 10m, write: 30s, pool: 10s}}",
        "providers:",
    ]
    for i in range(10):
        kind = kinds[i % 4]
        if kind == "anthropic-api":
            lines.append(
                f"  p{i}: {{kind: {kind}, base_url: https://api.anthropic.com, "
                f'api_key: "${{ANTHROPIC_API_KEY:-k}}", pool: anthropic, model: sonnet, '
                "transport: fast, timeout: 5m}"
            )
        else:
            lines.append(
                f"  p{i}: {{kind: {kind}, model: sonnet, timeout: 30m, init: lazy, "
                "extra_args: [--verbose], env: {A: b}}"
            )
    lines += [
        "monitoring:",
        "  alerts:",
        "    - {metric: first_chunk_seconds, provider: p0, quantile: 0.95, above: 1.2, window: 5m}",
    ]
    return "\n".join(lines) + "\n"


def median_seconds(fn: Callable[[], object], iterations: int) -> float:
    """Median wall time of ``fn`` over ``iterations`` calls (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def process_median(argv: list[str], runs: int) -> float:
    """Median wall time of running ``argv`` as a fresh process, interleaving nothing else."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}

    def once() -> None:
        subprocess.run(argv, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

    return median_seconds(once, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="process runs per command")
    parser.add_argument("--iterations", type=int, default=300, help="in-process iterations")
    args = parser.parse_args()

    from provcfg._loading import manifest_model_for, parse_manifest_text
    from provcfg.plugin import KindRegistry

    print(
        f"python {sys.version.split()[0]}, libyaml {yaml.__with_libyaml__}, cpus {os.cpu_count()}"
    )

    # Whole process: the floor, plain YAML parsing, and the real command, side by side.
    floor = process_median([sys.executable, "-c", "pass"], args.runs)
    plain = process_median(
        [sys.executable, "-c", f"import yaml; yaml.safe_load(open({str(EXAMPLE)!r}))"], args.runs
    )
    libs = process_median(
        [sys.executable, "-c", "import importlib.metadata, pydantic, pydantic.main, yaml"],
        args.runs,
    )
    models = process_median([sys.executable, "-c", "import provcfg._manifest"], args.runs)
    validate = process_median([str(SCRIPT), "validate", str(EXAMPLE)], args.runs)
    print("\nwhole process (median of", args.runs, "runs)")
    print(f"  python -c pass                 {floor * 1000:8.1f} ms")
    print(f"  python: yaml.safe_load example {plain * 1000:8.1f} ms  ({plain / floor:.1f}x floor)")
    print(f"  python: import pydantic, yaml   {libs * 1000:8.1f} ms  ({libs / floor:.1f}x floor)")
    print(
        f"  python: import provcfg._manifest {models * 1000:8.1f} ms  ({models / floor:.1f}x floor)"
    )
    print(
        f"  provcfg validate providers.yaml{validate * 1000:8.1f} ms"
        f"  ({validate / floor:.1f}x floor,"
        f" {validate / libs:.2f}x pydantic+yaml imports)"
        f" budget 250 ms: {'ok' if validate <= 0.25 else 'OVER'}"
    )

    # In process, after imports: 10 providers.
    text = ten_providers()
    data = text.encode()
    registry = KindRegistry.discover()
    manifest_model_for(registry)
    environ: dict[str, str] = {}

    def ours() -> object:
        return parse_manifest_text(data, file="bench.yaml", environ=environ, registry=registry)

    assert len(parse_manifest_text(data, file="b", environ={}, registry=registry).providers) == 10
    ours_s = median_seconds(ours, args.iterations)
    c_yaml = median_seconds(lambda: yaml.load(text, Loader=yaml.CSafeLoader), args.iterations)
    py_yaml = median_seconds(lambda: yaml.safe_load(text), args.iterations)
    discover = median_seconds(KindRegistry.discover, 50)
    with_env = median_seconds(
        lambda: parse_manifest_text(
            data, file="b", environ={"PROVCFG_PROVIDERS__P0__MAX_TOKENS": "9"}, registry=registry
        ),
        args.iterations // 3,
    )
    print(f"\nin process, 10 providers, {len(data)} bytes (median of {args.iterations})")
    print(f"  yaml.load CSafeLoader          {c_yaml * 1e3:8.3f} ms")
    print(f"  yaml.safe_load (pure Python)   {py_yaml * 1e3:8.3f} ms")
    print(
        f"  parse_manifest_text            {ours_s * 1e3:8.3f} ms"
        f"  ({ours_s / c_yaml:.1f}x CSafeLoader, {ours_s / py_yaml:.2f}x safe_load)"
        f" budget 2 ms: {'ok' if ours_s <= 0.002 else 'OVER'}"
    )
    print(f"  ... with one PROVCFG_ override {with_env * 1e3:8.3f} ms")
    print(f"  KindRegistry.discover()        {discover * 1e3:8.3f} ms  (registry=None pays this)")


if __name__ == "__main__":
    main()
